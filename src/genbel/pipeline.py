"""Glue between corpora, KBs and linkers that the command line and Python users share.

* :func:`read_input` / :func:`read_markup`: documents of a corpus file or of ``[mention]{Group}``
  markup lines;
* :func:`load_augmented_kb`: a KB (:func:`genbel.kb.open_kb`) with the mentions of annotated corpora
  added as synonyms;
* :func:`linker_kb`: the KB to link against, given ``--kb``, a saved linker with a ``kb/`` folder, or
  the bundled KB for the default linker and the shipped models (:func:`kb_spec_for`);
* :func:`generative_options`: the generative decoding options of ``genbel link``;
* :func:`linked_documents` / :func:`write_linked`: BigBio documents with ranked candidates per entity;
* :func:`output_format`: the output format of a path (``.json`` / ``.jsonl``);
* :func:`link_to_file`: link documents and write them incrementally (one flushed JSONL line per
  document in ``OUT.partial``), resumable after an interrupt, renamed to ``OUT`` when complete.

>>> from genbel.pipeline import read_input, linked_documents
>>> docs, _ = read_input("mentions.txt")            # markup lines or a corpus file
>>> results = linker.link_documents(docs, k=5)
>>> out = linked_documents(docs, results, kb.name)  # BigBio dicts with "candidates"
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbel.data import load_corpus, load_documents
from genbel.data.model import Document, Entity, Passage
from genbel.errors import ConfigError, Errors, InputError
from genbel.generation.prompts import MARKUP, parse_markup
from genbel.io import atomic_open, check_input_file, output_errors
from genbel.kb import KnowledgeBase, augment_kb, open_kb
from genbel.textio import iter_lines

if TYPE_CHECKING:
    from genbel.data.queries import Candidate, MentionQuery

logger = logging.getLogger(__name__)

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "LinkRun",
    "check_markup_groups",
    "generative_options",
    "kb_spec_for",
    "link_to_file",
    "linked_documents",
    "linker_kb",
    "linker_path",
    "load_augmented_kb",
    "looks_like_markup",
    "output_format",
    "partial_path",
    "read_input",
    "read_markup",
    "uses_shipped_models",
    "write_linked",
]

#: input formats of :func:`read_input` (``auto``: markup lines or a detected corpus format)
INPUT_FORMATS: tuple[str, ...] = ("auto", "pubtator", "bigbio-json", "bigbio-jsonl", "markup")
#: output formats of :func:`write_linked`
OUTPUT_FORMATS: tuple[str, ...] = ("json", "jsonl")
#: file name extensions of each output format (:func:`output_format`)
OUTPUT_EXTENSIONS: dict[str, str] = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: the folder of a saved linker that holds its KB
LINKER_KB_DIR = "kb"


# ----------------------------------------------------------------------------- markup
def read_markup(path: str | Path) -> list[Document]:
    """One document per non-blank line of ``[mention]{Group}`` markup (``#`` lines are comments).

    The document id is the line number; the entity id is ``T1``; its type is the group (``""`` for ``{}``).
    Raises E011 for a malformed line (``file:line``) and E016 when the file has no markup line.
    """
    p = Path(path)
    docs: list[Document] = []
    for lineno, raw in enumerate(iter_lines(p), 1):  # BOM dropped; bad bytes: E157 (file:line)
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        q = parse_markup(line, f"{p}:{lineno}")
        text = q.context or q.text
        ent = Entity("T1", q.type or "", [q.text], [(q.start or 0, q.end or len(q.text))])
        docs.append(
            Document(str(lineno), str(lineno), [Passage("p0", "sentence", [text], [(0, len(text))])], [ent])
        )
    if not docs:
        raise InputError(Errors.E016.format(path=p, reason="no [mention]{Group} line"))
    return docs


def looks_like_markup(path: str | Path) -> bool:
    """Whether the first non-comment line of ``path`` holds ``[mention]{Group}`` markup (not JSON)."""
    for raw in iter_lines(path):  # BOM dropped; bad bytes: E157 (file:line)
        line = raw.strip()
        if line and not line.startswith("#"):
            return bool(MARKUP.search(line)) and not line.startswith(("{", '[{"'))
    return False


def read_input(path: str | Path, input_format: str = "auto") -> tuple[list[Document], bool]:
    """Documents of ``path`` and whether they came from markup lines.

    ``input_format`` is one of :data:`INPUT_FORMATS`; ``auto`` reads markup lines when the file
    starts with one, else a corpus in the detected format (strictly, as :func:`genbel.data.load_corpus`).
    """
    p = Path(path)
    if input_format not in INPUT_FORMATS:
        raise ConfigError(
            Errors.E022.format(value=input_format, field="--input-format", known=", ".join(INPUT_FORMATS))
        )
    check_input_file(p, "corpus or markup")
    if input_format == "markup" or (input_format == "auto" and looks_like_markup(p)):
        return read_markup(p), True
    return load_corpus(p, None if input_format == "auto" else input_format), False


def check_markup_groups(docs: Iterable[Document], kb: KnowledgeBase, path: str | Path) -> None:
    """Every ``{Group}`` of a markup file must name a group of ``kb`` (E250 with ``file:line`` otherwise)."""
    from genbel.kb.semantic_groups import resolve_group

    groups = kb.semantic_groups
    for d in docs:
        for e in d.entities:
            if e.type:
                resolve_group(e.type, groups, f"{path}:{d.document_id}")


# ----------------------------------------------------------------------------- KBs
def load_augmented_kb(
    spec: str | Path,
    format: str | None = None,  # noqa: A002 - the public keyword is ``format``
    augment: Sequence[str | Path] = (),
    data_dir: str | Path | None = None,
) -> tuple[KnowledgeBase, list[tuple[str, int]]]:
    """The KB ``spec`` names (:func:`genbel.kb.open_kb`) with the mention strings of the annotated
    corpora ``augment`` added as synonyms of their gold concepts (:func:`genbel.kb.augment_kb`).

    Each corpus is a file or a ``NAME:SPLIT`` dataset under ``data_dir``, read leniently
    (:func:`genbel.data.load_documents`). Returns the KB and ``(corpus, names added)`` per corpus.
    """
    kb = open_kb(spec, format)
    added: list[tuple[str, int]] = []
    for source in augment:
        added.append((str(source), augment_kb(kb, load_documents(source, data_dir))))
    return kb, added


def uses_shipped_models(linker_spec: str | None) -> bool:
    """Whether ``linker_spec`` is the default pipeline or only shipped models: ``None`` (no linker
    named), the default's spec, an alias of one (``default``, ``dense``, ``generative``), or
    ``NAME:default`` parts joined by ``+``. The shipped models were trained for the bundled KB, which
    they link against by default."""
    from genbel.linkers import default
    from genbel.linkers.registry import resolve_alias

    if linker_spec is None:
        return True
    spec = resolve_alias(linker_spec)
    if spec == default.DEFAULT_LINKER:
        return True
    return all(part.partition(":")[2] == "default" for part in spec.split("+"))


def kb_spec_for(kb: str | Path | None, linker_spec: str | None, where: str = "genbel link") -> str | Path:
    """The KB a command uses: ``kb`` when given, else the bundled KB (``"default"``) for the default
    linker and the shipped models (:func:`uses_shipped_models`); E014 for any other linker."""
    if kb is not None:
        return kb
    if uses_shipped_models(linker_spec):
        logger.info("no KB given: using the bundled KB")
        return "default"
    raise ConfigError(Errors.E014.format(
        where=where, field="--kb (the linker is not a shipped model and has no saved kb/)",
    ))


def linker_kb(kb: str | Path | None, kb_format: str | None, linker_spec: str | None) -> KnowledgeBase:
    """The KB to link against: ``kb`` (:func:`genbel.kb.open_kb`) when given, else the ``kb/`` folder
    of the saved linker that ``linker_spec`` (``NAME:PATH``) names, else the bundled KB for the
    default linker (``None``) and shipped models (:func:`kb_spec_for`); E014 when there is none."""
    if kb is None and linker_spec is not None:
        path = linker_path(linker_spec)
        if path and (Path(path) / LINKER_KB_DIR).is_dir():
            return KnowledgeBase.load(Path(path) / LINKER_KB_DIR)
    return open_kb(kb_spec_for(kb, linker_spec), kb_format)


# ----------------------------------------------------------------------------- linker options
def linker_path(spec: str | None) -> str | None:
    """The path of a ``NAME:PATH`` linker spec (``generative:runs/x`` → ``runs/x``; else ``None``)."""
    _, _, path = (spec or "").partition(":")
    return path or None


def generative_options(
    linker_spec: str | None,
    *,
    constrained: bool = True,
    restrict_to_group: bool = True,
    num_beams: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Decoding options for :func:`genbel.linkers.create_linker` when ``linker_spec`` is a generative
    linker (``generative[:PATH]``, ``document:PATH``); ``{}`` for any other linker (they take none of these) and for
    ``None`` (the default linker)."""
    from genbel.linkers.registry import resolve_alias

    if linker_spec is None or resolve_alias(linker_spec).partition(":")[0] not in ("generative", "document"):
        return {}
    options: dict[str, Any] = {"constrained": constrained, "restrict_to_group": restrict_to_group}
    if num_beams is not None:
        options["num_beams"] = num_beams
    if batch_size is not None:
        options["batch_size"] = batch_size
    return options


def explained_document(docs: Sequence[Document], doc_id: str, path: str | Path) -> Document:
    """The document ``--explain DOC_ID`` names (E631 when ``path`` has none with that id)."""
    for d in docs:
        if str(d.document_id) == doc_id:
            return d
    some = ", ".join(str(d.document_id) for d in docs[:5]) + (" …" if len(docs) > 5 else "")
    raise InputError(Errors.E631.format(doc_id=doc_id, path=path, some=some or "none"))


def explanation_path(out: str | Path, doc_id: str) -> Path:
    """Where ``--explain DOC_ID`` writes its HTML page: beside ``out``, ``OUT.explain-DOC_ID.html``."""
    out = Path(out)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)
    return out.with_name(f"{out.name}.explain-{safe}.html")


# ----------------------------------------------------------------------------- output
def linked_documents(
    docs: Sequence[Document],
    results: Sequence[tuple[MentionQuery, Sequence[Candidate]]],
    kb_name: str,
) -> list[dict]:
    """BigBio dicts of ``docs``; each linked entity gets ``candidates`` and ``normalized`` = the top code.

    ``results`` are the ``(query, candidates)`` pairs of :meth:`genbel.linkers.Linker.link_documents`.
    Gold normalizations of the input (if any) are kept as ``gold_normalized``; entities without a
    result (filtered out by entity type) are written unchanged.
    """
    from genbel.data.pubtator import infer_db_name

    by_key: dict[tuple[str | None, str | None, int | None, int | None], list] = {}
    for q, cands in results:
        by_key.setdefault((q.doc_id, q.entity_id, q.start, q.end), []).append(cands)
    out: list[dict] = []
    for d in docs:
        dd = d.to_dict()
        for e, ed in zip(d.entities, dd["entities"]):
            hits = by_key.get((d.document_id, e.id, e.start, e.end))
            if not hits:
                continue  # filtered out by entity type
            cands = hits.pop(0)
            if ed["normalized"]:
                ed["gold_normalized"] = ed["normalized"]
            ed["candidates"] = [c.to_dict() for c in cands]
            ed["normalized"] = (
                [{"db_name": infer_db_name(cands[0].concept_id, kb_name), "db_id": cands[0].concept_id}]
                if cands
                else []
            )
        out.append(dd)
    return out


def output_format(path: str | Path, fmt: str | None = None, option: str = "--output-format") -> str:
    """The output format of ``path``: ``fmt`` when given (one of :data:`OUTPUT_FORMATS`, else E022),
    else the one its extension names (:data:`OUTPUT_EXTENSIONS`; E455 for any other extension, so that
    ``-o x.csv`` does not silently write JSON)."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(Errors.E022.format(value=fmt, field=option, known=", ".join(OUTPUT_FORMATS)))
        return fmt
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in OUTPUT_EXTENSIONS:
        raise ConfigError(
            Errors.E455.format(path=p, suffix=suffix, known=", ".join(OUTPUT_EXTENSIONS), option=option)
        )
    return OUTPUT_EXTENSIONS[suffix]


def _dump(d: dict) -> str:
    return json.dumps(d, ensure_ascii=False)


def write_linked(docs: Iterable[dict], path: str | Path, fmt: str = "json") -> None:
    """Write :func:`linked_documents` output atomically: BigBio JSON (a list, one document a line)
    or JSONL (``fmt``, one of :data:`OUTPUT_FORMATS`). An :class:`OSError` is E453 naming ``path``."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(Errors.E022.format(value=fmt, field="--output-format", known=", ".join(OUTPUT_FORMATS)))
    with output_errors(path), atomic_open(Path(path)) as fh:
        if fmt == "jsonl":
            fh.writelines(_dump(d) + "\n" for d in docs)
        else:
            fh.write("[")
            for i, d in enumerate(docs):
                fh.write(("\n" if i == 0 else ",\n") + _dump(d))
            fh.write("\n]\n")


# ----------------------------------------------------------------------------- incremental linking
PARTIAL_SUFFIX = ".partial"
_HEADER_KEY = "genbel_partial_output"


def partial_path(out: str | Path) -> Path:
    """Where :func:`link_to_file` writes ``out`` while linking: ``OUT.partial`` beside it."""
    p = Path(out)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (the input of a resumable run is recorded by content)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LinkRun:
    """What :func:`link_to_file` did: documents and mentions linked now, documents taken from the
    partial output of an earlier run (``resumed``), and the output path."""

    out: Path
    n_documents: int
    n_mentions: int
    resumed: int


def _read_partial(partial: Path, settings: dict[str, Any], docs: Sequence[Document]) -> int:
    """Validate the partial output of an earlier run and cut it after its last complete document;
    the number of documents it holds. E456 when its settings differ or it does not match ``docs``."""
    good = 0  # byte offset after the last complete line
    n = 0
    with open(partial, "rb") as fh:
        header = fh.readline()
        try:
            head = json.loads(header) if header.endswith(b"\n") else None
        except ValueError:
            head = None
        if not isinstance(head, dict) or _HEADER_KEY not in head:
            raise InputError(Errors.E456.format(path=partial, reason="not a genbel partial output"))
        old = head[_HEADER_KEY]
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise InputError(Errors.E456.format(
                path=partial,
                reason=f"it was written with other settings ({', '.join(diff)})",
            ))
        good = fh.tell()
        for line in fh:
            if not line.endswith(b"\n"):
                break  # cut by the interrupt
            try:
                doc_id = json.loads(line).get("document_id")
            except (ValueError, AttributeError):
                break
            if n >= len(docs) or doc_id != docs[n].document_id:
                raise InputError(Errors.E456.format(
                    path=partial,
                    reason=f"its document {n + 1} ({doc_id!r}) is not document {n + 1} of the input",
                ))
            n += 1
            good = fh.tell()
    with open(partial, "r+b") as fh:
        fh.truncate(good)
    return n


def _chunks(docs: Sequence[Document], start: int, mentions: int) -> Iterable[list[Document]]:
    """Consecutive documents from ``start``, about ``mentions`` entities (at least one document) a chunk."""
    chunk: list[Document] = []
    size = 0
    for d in docs[start:]:
        chunk.append(d)
        size += len(d.entities) or 1
        if size >= mentions:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def link_to_file(
    docs: Sequence[Document],
    linker: Any,
    out: str | Path,
    *,
    kb_name: str,
    fmt: str | None = None,
    k: int = 5,
    expand_abbreviations: bool = False,
    entity_types: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    resume: bool = False,
    chunk_mentions: int = 256,
    progress: Callable[[int, int], None] | None = None,
    prepare: Callable[[list[Document]], list[Document]] | None = None,
    write: Callable[[Iterable[dict], Path], Any] | None = None,
) -> LinkRun:
    """Link ``docs`` with ``linker`` and write them, with candidates (:func:`linked_documents`), to ``out``.

    Documents are linked in chunks of about ``chunk_mentions`` mentions and appended, in input order,
    to ``OUT.partial`` (:func:`partial_path`: a JSONL file whose first line records ``settings``), one
    flushed line per document; when all are written the output appears at ``out`` in one rename
    (``fmt`` or the extension's format, :func:`output_format`) and the partial file is removed.

    With ``resume``, an existing partial file of a run with equal ``settings`` (the caller's record of
    input, KB, linker, k …; E456 when they differ) is kept up to its last complete document and
    linking continues after it; without it, a partial file is replaced. ``progress(done, total)`` is
    called with document counts after each chunk. Returns a :class:`LinkRun`.

    ``prepare(chunk)`` (``genbel annotate``: mention detection) turns each chunk of documents into the
    documents to link, and ``write(documents, out)`` writes the complete output instead of
    :func:`write_linked` (then ``fmt`` is not checked); a document without entities counts as one
    mention in a chunk.
    """
    from genbel.data import filter_entity_types

    out = Path(out)
    fmt = output_format(out, fmt) if write is None else (fmt or "")
    if entity_types:
        filter_entity_types(docs, entity_types)  # E012 once for the whole input when no type occurs
    settings = dict(settings or {})
    settings.setdefault("k", k)
    settings.setdefault("kb", kb_name)
    settings.setdefault("expand_abbreviations", expand_abbreviations)
    settings.setdefault("entity_types", sorted(entity_types) if entity_types else None)
    settings = json.loads(json.dumps(settings))  # the form it is read back in
    partial = partial_path(out)
    done = 0
    if partial.exists() and resume:
        done = _read_partial(partial, settings, docs)
        logger.info("%s: resuming after %d of %d documents", partial, done, len(docs))
    elif partial.exists():
        logger.warning("%s: replacing the partial output of an earlier run (--resume continues it)", partial)
    elif resume:
        logger.info("%s: no partial output to resume; linking from the start", partial)
    resumed = done
    n_mentions = 0
    with output_errors(partial):
        if done == 0:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(partial, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(_dump({_HEADER_KEY: settings}) + "\n")
        if progress is not None:
            progress(done, len(docs))
        with open(partial, "a", encoding="utf-8", newline="\n") as fh:
            for chunk in _chunks(docs, done, chunk_mentions):
                if prepare is not None:
                    chunk = prepare(chunk)
                results = linker.link_documents(
                    chunk, k=k, expand_abbreviations=expand_abbreviations, entity_types=entity_types
                )
                fh.writelines(_dump(d) + "\n" for d in linked_documents(chunk, results, kb_name))
                fh.flush()
                n_mentions += len(results)
                done += len(chunk)
                if progress is not None:
                    progress(done, len(docs))
            os.fsync(fh.fileno())
    _finish(partial, out, fmt, write)
    return LinkRun(out=out, n_documents=len(docs) - resumed, n_mentions=n_mentions, resumed=resumed)


def _finish(
    partial: Path, out: Path, fmt: str, write: Callable[[Iterable[dict], Path], Any] | None = None
) -> None:
    """Write the documents of a complete partial file to ``out`` (atomically) and remove it."""

    def documents() -> Iterable[dict]:
        with open(partial, encoding="utf-8") as fh:
            fh.readline()  # the settings
            for line in fh:
                yield json.loads(line)

    if write is None:
        write_linked(documents(), out, fmt)
    else:
        write(documents(), out)
    partial.unlink()
