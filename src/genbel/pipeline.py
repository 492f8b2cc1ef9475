"""Glue between corpora, KBs and linkers that the command line and Python users share.

* :func:`read_input` / :func:`read_markup`: documents of a corpus file or of ``[mention]{Group}``
  markup lines;
* :func:`load_augmented_kb`: a KB (:func:`genbel.kb.open_kb`) with the mentions of annotated corpora
  added as synonyms;
* :func:`linker_kb`: the KB to link against, given ``--kb`` or a saved linker with a ``kb/`` folder;
* :func:`generative_options`: the generative decoding options of ``genbel link``;
* :func:`linked_documents` / :func:`write_linked`: BigBio documents with ranked candidates per entity.

>>> from genbel.pipeline import read_input, linked_documents
>>> docs, _ = read_input("mentions.txt")            # markup lines or a corpus file
>>> results = linker.link_documents(docs, k=5)
>>> out = linked_documents(docs, results, kb.name)  # BigBio dicts with "candidates"
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbel.data import load_corpus, load_documents
from genbel.data.model import Document, Entity, Passage
from genbel.errors import ConfigError, Errors, InputError
from genbel.generation.prompts import MARKUP, parse_markup
from genbel.kb import KnowledgeBase, augment_kb, open_kb

if TYPE_CHECKING:
    from genbel.data.queries import Candidate, MentionQuery

logger = logging.getLogger(__name__)

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "check_markup_groups",
    "generative_options",
    "linked_documents",
    "linker_kb",
    "linker_path",
    "load_augmented_kb",
    "looks_like_markup",
    "read_input",
    "read_markup",
    "write_linked",
]

#: input formats of :func:`read_input` (``auto``: markup lines or a detected corpus format)
INPUT_FORMATS: tuple[str, ...] = ("auto", "pubtator", "bigbio-json", "bigbio-jsonl", "markup")
#: output formats of :func:`write_linked`
OUTPUT_FORMATS: tuple[str, ...] = ("json", "jsonl")
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
    with p.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            q = parse_markup(line, f"{p}:{lineno}")
            text = q.context or q.text
            ent = Entity("T1", q.type or "", [q.text], [(q.start or 0, q.end or len(q.text))])
            docs.append(
                Document(
                    str(lineno), str(lineno), [Passage("p0", "sentence", [text], [(0, len(text))])], [ent]
                )
            )
    if not docs:
        raise InputError(Errors.E016.format(path=p, reason="no [mention]{Group} line"))
    return docs


def looks_like_markup(path: str | Path) -> bool:
    """Whether the first non-comment line of ``path`` holds ``[mention]{Group}`` markup (not JSON)."""
    with Path(path).open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
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
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
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


def linker_kb(kb: str | Path | None, kb_format: str | None, linker_spec: str) -> KnowledgeBase:
    """The KB to link against: ``kb`` (:func:`genbel.kb.open_kb`) when given, else the ``kb/`` folder
    of the saved linker that ``linker_spec`` (``NAME:PATH``) names; E014 when there is neither."""
    if kb is not None:
        return open_kb(kb, kb_format)
    _, _, path = linker_spec.partition(":")
    if path and (Path(path) / LINKER_KB_DIR).is_dir():
        return KnowledgeBase.load(Path(path) / LINKER_KB_DIR)
    raise ConfigError(Errors.E014.format(where="genbel link", field="--kb (the linker has no saved kb/)"))


# ----------------------------------------------------------------------------- linker options
def linker_path(spec: str) -> str | None:
    """The path of a ``NAME:PATH`` linker spec (``generative:runs/x`` → ``runs/x``; else ``None``)."""
    _, _, path = spec.partition(":")
    return path or None


def generative_options(
    linker_spec: str,
    *,
    constrained: bool = True,
    restrict_to_group: bool = True,
    num_beams: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Decoding options for :func:`genbel.linkers.create_linker` when ``linker_spec`` is a generative
    linker (``generative[:PATH]``); ``{}`` for any other linker (they take none of these)."""
    if linker_spec.partition(":")[0] != "generative":
        return {}
    options: dict[str, Any] = {"constrained": constrained, "restrict_to_group": restrict_to_group}
    if num_beams is not None:
        options["num_beams"] = num_beams
    if batch_size is not None:
        options["batch_size"] = batch_size
    return options


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


def write_linked(docs: Sequence[dict], path: str | Path, fmt: str = "json") -> None:
    """Write :func:`linked_documents` output atomically: BigBio JSON (a list, one document a line)
    or JSONL (``fmt``, one of :data:`OUTPUT_FORMATS`)."""
    from genbel.io import atomic_open

    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(Errors.E022.format(value=fmt, field="--format", known="json, jsonl"))
    with atomic_open(Path(path)) as fh:
        if fmt == "jsonl":
            for d in docs:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        else:
            fh.write("[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n]\n")
