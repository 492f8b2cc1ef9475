"""Synthetic contextual training examples (SynCABEL).

For KB concepts — first those that never occur in the training data, then the others — a
generator writes a sentence that uses one of the concept's names in a realistic biomedical context.
Each accepted sentence becomes one BigBio KB document (one passage, one entity: the name's span,
the concept's semantic group as type, the concept id as normalisation), appended to a JSONL file.

Generators (:func:`make_generator` parses ``hf:MODEL``, ``openai:URL`` or ``template``):

* :class:`HFGenerator` — a local Hugging Face causal LM (e.g. ``hf:smollm2-135m``) prompted through
  its chat template, sampling with a fixed seed per request (reproducible, independent of batching);
* :class:`OpenAIGenerator` — any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM,
  llama.cpp server, Ollama, OpenAI), stdlib :mod:`urllib`, with a timeout and retries; an endpoint
  that stays down or keeps answering garbage raises E353/E354, and a re-run resumes;
* :class:`TemplateGenerator` — deterministic sentence templates (no model; a baseline and for tests).

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
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.errors import ConfigError, Errors, FormatError, GenbelError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.normalize import normalize_name

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = "You write single sentences in the style of biomedical research abstracts."
USER_PROMPT = (
    'Write one realistic sentence from a biomedical abstract that uses the term "{term}" ({group}) '
    "exactly as written.{definition} Answer with the sentence only."
)

MIN_CHARS = 20
MAX_CHARS = 600


# ====================================================================== requests and parsing
@dataclass
class SynthRequest:
    """What to generate: a sentence using ``term`` (a name of ``concept_id``)."""

    concept_id: str
    term: str
    group: str
    definition: str | None = None
    seed: int = 0

    def messages(self) -> list[dict[str, str]]:
        d = f" (It means: {self.definition.strip()[:300]})" if self.definition else ""
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT.format(term=self.term, group=self.group, definition=d)},
        ]


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


# ====================================================================== generators
class Generator(Protocol):
    """Turns requests into raw texts (``None`` for a request that produced nothing)."""

    name: str

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]: ...


class TemplateGenerator:
    """Fills biomedical sentence templates (per semantic group; a generic set for other groups)."""

    name = "template"
    TEMPLATES: dict[str, tuple[str, ...]] = {
        "Disorders": (
            "Patients with {t} were enrolled in a prospective cohort study.",
            "We describe a family in which several members developed {t}.",
            "The prevalence of {t} was higher in the exposed group than in controls.",
            "Mutations in this gene have been reported in individuals with {t}.",
            "{T} was diagnosed in 12 of the 85 patients during follow-up.",
            "Treatment options for {t} remain limited.",
        ),
        "Chemicals & Drugs": (
            "Rats were treated with {t} for four weeks.",
            "The effect of {t} on blood pressure was assessed in healthy volunteers.",
            "{T} induced a dose-dependent increase in enzyme activity.",
            "Plasma concentrations of {t} were measured by HPLC.",
        ),
        "*": (
            "The role of {t} was examined in this study.",
            "Changes in {t} were observed in the treated group.",
            "{T} was assessed in all participants at baseline.",
        ),
    }

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        out: list[str | None] = []
        for r in requests:
            pool = self.TEMPLATES.get(r.group, self.TEMPLATES["*"])
            t = random.Random(f"{self.seed}:{r.concept_id}:{r.term}:{r.seed}").choice(pool)
            out.append(t.replace("{T}", r.term[:1].upper() + r.term[1:]).replace("{t}", r.term))
        return out


class HFGenerator:
    """A local causal LM through its chat template; nucleus sampling seeded per request."""

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.9,
        batch_size: int = 8,
        device: str | None = None,
        model_obj=None,
        tokenizer=None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from genbel.models import resolve_model

        self.name = f"hf:{model}"
        if model_obj is None:
            ref = resolve_model(model)
            tokenizer = AutoTokenizer.from_pretrained(ref)
            model_obj = AutoModelForCausalLM.from_pretrained(ref)
        self.model = model_obj.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size

    def _prompt_ids(self, r: SynthRequest) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(r.messages(), add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n".join(m["content"] for m in r.messages()) + "\n"
        return list(tok(text).input_ids)

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        import torch

        out: list[str | None] = []
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        dev = next(self.model.parameters()).device
        for r in requests:  # one at a time: the seed fixes each request's sample whatever the batching
            ids = self._prompt_ids(r)
            torch.manual_seed(r.seed)
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=torch.tensor([ids], device=dev),
                    attention_mask=torch.ones(1, len(ids), device=dev, dtype=torch.long),
                    do_sample=True,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=pad,
                )
            out.append(self.tokenizer.decode(gen[0, len(ids) :], skip_special_tokens=True))
        return out


class OpenAIGenerator:
    """An OpenAI-compatible chat-completions endpoint (``/v1/chat/completions``)."""

    def __init__(
        self,
        url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        temperature: float = 0.7,
        max_tokens: int = 96,
    ) -> None:
        u = url.rstrip("/")
        if not u.endswith("/chat/completions"):
            u = u + ("/chat/completions" if u.endswith("/v1") else "/v1/chat/completions")
        self.url = u
        self.name = f"openai:{url}"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _post(self, payload: dict) -> dict:
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - user-given endpoint
            body = resp.read().decode("utf-8", errors="replace")
        return json.loads(body)

    def complete(self, r: SynthRequest) -> str:
        payload = {
            "model": self.model,
            "messages": r.messages(),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": r.seed,
            "n": 1,
        }
        last = ""
        down = False
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                obj = self._post(payload)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                down, last = True, str(getattr(e, "reason", e))
                continue
            except json.JSONDecodeError as e:
                down, last = False, f"the response is not JSON ({e.msg})"
                continue
            try:
                content = obj["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise TypeError("content is not a string")
                return content
            except (KeyError, IndexError, TypeError) as e:
                down, last = False, f"no choices[0].message.content in the response ({e})"
        if down:
            raise GenbelError(
                Errors.E353.format(url=self.url, reason=f"unreachable after {self.retries} tries: {last}")
            )
        raise GenbelError(Errors.E354.format(url=self.url, tries=self.retries, reason=last))

    def generate(self, requests: Sequence[SynthRequest]) -> list[str | None]:
        return [self.complete(r) for r in requests]


def make_generator(
    spec: str,
    *,
    seed: int = 0,
    model: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
) -> Generator:
    """``template`` | ``hf:MODEL`` | ``openai:URL`` (``model`` = the model name the endpoint serves)."""
    kind, _, arg = spec.partition(":")
    if kind == "template" and not arg:
        return TemplateGenerator(seed)
    if kind == "hf" and arg:
        return HFGenerator(arg)
    if kind == "openai" and arg:
        return OpenAIGenerator(
            arg, model=model or "default", api_key=api_key, timeout=timeout, retries=retries
        )
    raise ConfigError(Errors.E355.format(spec=spec))


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
