"""Synthetic contextual training examples (SynCABEL).

For KB concepts — first those that never occur in the training data, then the others — a
generator writes a sentence that uses one of the concept's names in a realistic biomedical context.
Each accepted sentence becomes one BigBio KB document (one passage, one entity: the name's span,
the concept's semantic group as type, the concept id as normalisation), appended to a JSONL file.

The generators (``hf:MODEL``, ``openai:URL``, ``template``) are in :mod:`genbel.training.generators`;
an endpoint that stays down or keeps answering garbage raises E353/E354, and a re-run resumes.

Quality control: the output is cut to its first line, stripped of quotes and labels such as
``Sentence:``, and rejected when the requested name does not occur in it verbatim (compared
case-insensitively by default: ``Breast cancer`` for ``breast cancer`` is accepted, ``breast
tumour`` for ``breast tumor`` is not), when it is too short or too long, when it talks about the task
instead of doing it (``Here is an example …``, the term in quotes, the group in parentheses — small
models do this often), or when the same sentence was already produced (duplicates are dropped across
the whole output, including earlier runs).

Resumable output: accepted documents are appended to ``OUT.partial`` as they come; a re-run skips
the concepts that already have their documents and continues; at the end the documents are written
to ``OUT`` atomically and the partial file is removed.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.errors import Errors, FormatError, GenbelError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.normalize import normalize_name
from genbel.training.generators import Generator, SynthRequest

logger = logging.getLogger(__name__)

MIN_CHARS = 20
MAX_CHARS = 600


# ====================================================================== requests and parsing
_LABEL = re.compile(r"^\s*(?:sentence|answer|output|example)\s*\d*\s*[:\-]\s*", re.IGNORECASE)
_MARK = re.compile(r"\[([^\[\]]+)\](?:\{[^{}]*\})?")


def clean_generation(text: str) -> str:
    """First non-empty line, without list bullets, ``Sentence:`` labels, quotes or ``[x]{G}`` markup."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line)
    line = _LABEL.sub("", line).strip()
    line = _MARK.sub(lambda m: m.group(1), line)
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'“”`":
        line = line[1:-1].strip()
    line = line.strip("“”").strip()
    return line


_META = re.compile(
    r"^(?:here(?: is|'s)|sure|certainly|this sentence|an? (?:example|sentence)\b)|\bexactly as written\b"
    r"|\b(?:the|this) term\b|\bbiomedical (?:research )?abstract\b",
    re.IGNORECASE,
)


def is_meta(text: str, request: SynthRequest) -> bool:
    """True for answers that talk about the task instead of doing it (echoed instructions, the group
    in parentheses, the term in quotes, a trailing colon announcing the sentence)."""
    return bool(
        _META.search(text)
        or f"({request.group})" in text
        or f'"{request.term}"' in text
        or text.rstrip().endswith(":")
    )


def find_span(text: str, term: str, case_sensitive: bool = False) -> tuple[int, int] | None:
    """Offsets of ``term`` in ``text`` as a whole token sequence (not inside a longer word), or ``None``."""
    flags = 0 if case_sensitive else re.IGNORECASE
    m = re.search(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", text, flags)
    return (m.start(), m.end()) if m else None


@dataclass
class SynthStats:
    requested: int = 0
    accepted: int = 0
    rejected_span: int = 0
    rejected_length: int = 0
    rejected_meta: int = 0
    duplicates: int = 0
    failed_requests: int = 0
    skipped_done: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def make_document(request: SynthRequest, text: str, span: tuple[int, int], index: int) -> Document:
    """A one-sentence BigBio document whose entity is the term's span."""
    from genbel.data.pubtator import infer_db_name

    doc_id = f"synth-{request.concept_id}-{index}"
    s, e = span
    ent = Entity(
        id=f"{doc_id}-e0",
        type=request.group,
        text=[text[s:e]],
        offsets=[(s, e)],
        normalized=[Normalization(infer_db_name(request.concept_id), request.concept_id)],
    )
    return Document(
        id=doc_id,
        document_id=doc_id,
        passages=[Passage(id=f"{doc_id}-p0", type="sentence", text=[text], offsets=[(0, len(text))])],
        entities=[ent],
    )


# ====================================================================== the run
def concept_order(
    kb: KnowledgeBase, seen_ids: Iterable[str] = (), seed: int = 0, concepts: Sequence[str] | None = None
) -> list[Concept]:
    """Concepts absent from the training data first, then the others; seeded shuffle within each part."""
    seen = {kb.resolve_id(i) for i in seen_ids}
    pool = [kb[c] for c in concepts] if concepts is not None else list(kb)
    rng = random.Random(seed)
    unseen = [c for c in pool if c.id not in seen]
    rest = [c for c in pool if c.id in seen]
    rng.shuffle(unseen)
    rng.shuffle(rest)
    return unseen + rest


def _read_partial(path: Path) -> list[Document]:
    from genbel.data.bigbio import document_from_dict

    docs: list[Document] = []
    if not path.exists():
        return docs
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                docs.append(document_from_dict(json.loads(line), f"{path}:{i}"))
            except (json.JSONDecodeError, GenbelError) as e:
                # a line cut by a crash mid-write: only the last line may be incomplete
                raise FormatError(Errors.E356.format(path=path, line=i, reason=str(e))) from e
    return docs


@dataclass
class SynthResult:
    out: Path
    documents: list[Document] = field(default_factory=list)
    stats: SynthStats = field(default_factory=SynthStats)


def synthesize(
    kb: KnowledgeBase,
    generator: Generator,
    out: str | Path,
    *,
    n: int,
    per_concept: int = 1,
    seen_ids: Iterable[str] = (),
    concepts: Sequence[str] | None = None,
    seed: int = 0,
    group: str | None = None,
    use_definitions: bool = True,
    case_sensitive: bool = False,
    max_attempts: int = 2,
    batch_size: int = 8,
    show_progress: bool = True,
) -> SynthResult:
    """Generate up to ``n`` synthetic documents (``per_concept`` per concept) into ``out`` (BigBio JSONL).

    ``seen_ids``: gold ids of the training data (those concepts come last). ``group`` overrides the
    entity type (default: the concept's first semantic group, else ``"Entity"``). Each concept gets
    up to ``max_attempts`` requests per document (a different synonym and seed each time).
    """
    from tqdm.auto import tqdm

    from genbel.data import write_corpus

    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    docs = _read_partial(partial)
    stats = SynthStats()
    seen_texts = {normalize_name(d.text) for d in docs}
    per_done: dict[str, int] = {}
    for d in docs:
        for e in d.entities:
            for gid in e.gold_ids:
                per_done[gid] = per_done.get(gid, 0) + 1
    if docs:
        logger.info("resuming %s: %d documents already generated", partial, len(docs))
    order = concept_order(kb, seen_ids, seed, concepts)
    bar = tqdm(total=n, initial=min(len(docs), n), desc="synthesizing", unit="doc", disable=not show_progress)
    with open(partial, "a", encoding="utf-8") as fh:
        todo: list[tuple[Concept, int, int]] = []  # (concept, doc index, attempt)

        def flush(batch: list[tuple[Concept, int, int]]) -> list[tuple[Concept, int, int]]:
            requests = []
            for c, k, attempt in batch:
                r = random.Random(f"{seed}:{c.id}:{k}:{attempt}")
                term = r.choice(c.names)
                defs = [d for d in c.definitions if d.strip()] if use_definitions else []
                typ = group or (c.semantic_groups[0] if c.semantic_groups else "Entity")
                requests.append(
                    SynthRequest(c.id, term, typ, defs[0] if defs else None, seed=r.randrange(2**31))
                )
            stats.requested += len(requests)
            texts = generator.generate(requests)
            retry: list[tuple[Concept, int, int]] = []
            for (c, k, attempt), req, raw in zip(batch, requests, texts):
                ok = False
                if raw is None:
                    stats.failed_requests += 1
                else:
                    text = clean_generation(raw)
                    span = find_span(text, req.term, case_sensitive)
                    if not (MIN_CHARS <= len(text) <= MAX_CHARS):
                        stats.rejected_length += 1
                    elif span is None:
                        stats.rejected_span += 1
                    elif is_meta(text, req):
                        stats.rejected_meta += 1
                    elif normalize_name(text) in seen_texts:
                        stats.duplicates += 1
                    else:
                        doc = make_document(req, text, span, k)
                        doc.validate()
                        seen_texts.add(normalize_name(text))
                        docs.append(doc)
                        fh.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
                        fh.flush()
                        stats.accepted += 1
                        bar.update(1)
                        ok = True
                if not ok and attempt + 1 < max_attempts:
                    retry.append((c, k, attempt + 1))
            return retry

        for c in order:
            if len(docs) >= n:
                break
            done = per_done.get(c.id, 0)
            if done >= per_concept:
                stats.skipped_done += 1
                continue
            for k in range(done, per_concept):
                todo.append((c, k, 0))
            pending = len(docs) + len(todo)
            if len(todo) >= batch_size or pending >= n:
                todo = flush(todo)
        while todo and len(docs) < n:
            todo = flush(todo)
    bar.close()
    final = docs[:n]
    write_corpus(final, out, "bigbio-jsonl")
    partial.unlink(missing_ok=True)
    logger.info("synthetic data: %s", stats.to_dict())
    return SynthResult(out, final, stats)
