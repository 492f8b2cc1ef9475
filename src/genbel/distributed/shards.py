"""Input shards and their output shards: which files a distributed run reads, what each one is named in
the output folder, and how one shard is read into documents.

An input is a folder (every file with a shard suffix below it, :data:`SHARD_SUFFIXES`, in sorted
order; hidden files and folders are skipped), a glob pattern (``shards/part-*.jsonl``), one file or a
list of files. Each file is one shard: its documents are read with genbel's readers
(:func:`genbel.data.formats.read_documents` for ``genbel annotate``, :func:`genbel.pipeline.read_input`
for ``genbel link``), or as records (:mod:`genbel.distributed.records`: Parquet, and JSON lines of
plain ``{id, text}`` records), and its output is the file of the same relative path with the output
format's extension (``in/2024/part-7.jsonl`` → ``out/2024/part-7.csv``).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from genbel.data.formats import OUTPUT_EXTENSIONS, detect_input_format, read_documents
from genbel.data.model import Document
from genbel.data.text import text_documents
from genbel.distributed.records import is_plain_records, read_jsonl_records, read_parquet_records
from genbel.errors import ConfigError, Errors, InputError

logger = logging.getLogger(__name__)

__all__ = [
    "SHARD_SUFFIXES",
    "Shard",
    "find_shards",
    "output_extension",
    "read_shard",
]

#: the file names a folder's shards end with (``.gz``: compressed PubTator or JSON lines)
SHARD_SUFFIXES: tuple[str, ...] = (
    ".bioc.json", ".bioc.xml", ".jsonl", ".ndjson", ".json", ".parquet", ".pubtator", ".txt", ".xml",
)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Shard:
    """One input file of a distributed run: its path, its path relative to the input root (``rel``,
    with ``/``) and the path of its output relative to the output folder (``out``)."""

    index: int
    path: str
    rel: str
    out: str


def _strip_suffix(name: str) -> str:
    """``part-1.bioc.json`` → ``part-1``; ``x.pubtator.gz`` → ``x``; an unknown suffix is kept."""
    low = name.lower()
    if low.endswith(".gz"):
        name, low = name[:-3], low[:-3]
    for suffix in sorted(SHARD_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix) and len(low) > len(suffix):
            return name[: -len(suffix)]
    return name


def output_extension(fmt: str) -> str:
    """The extension of an output shard in ``fmt`` (the first that :data:`OUTPUT_EXTENSIONS` gives
    it: ``bigbio-jsonl`` → ``.jsonl``; ``brat`` → ``""``, a folder); ``json``/``jsonl`` are BigBio."""
    fmt = {"json": "bigbio-json", "jsonl": "bigbio-jsonl"}.get(fmt, fmt)
    for suffix, f in OUTPUT_EXTENSIONS.items():
        if f == fmt:
            return suffix
    raise ConfigError(Errors.E022.format(value=fmt, field="--output-format", known=", ".join(OUTPUT_EXTENSIONS.values())))


def _is_shard(p: Path, root: Path) -> bool:
    name = p.name.lower().removesuffix(".gz")
    return (
        p.is_file()
        and name.endswith(SHARD_SUFFIXES)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _files(source: str | Path | Sequence[str | Path]) -> tuple[Path, list[Path]]:
    """The input root and its shard files."""
    if not isinstance(source, str | os.PathLike):
        files = [Path(s) for s in source]
        for f in files:
            if not f.is_file():
                raise InputError(Errors.E006.format(path=f))
        if not files:
            raise InputError(Errors.E581.format(source="[]", reason="the list of shards is empty"))
        root = Path(os.path.commonpath([str(f.absolute().parent) for f in files]))
        return root, [f.absolute() for f in files]
    text = str(source)
    p = Path(source)
    if p.is_dir():
        files = sorted((f for f in p.rglob("*") if _is_shard(f, p)), key=lambda f: f.relative_to(p).as_posix())
        if not files:
            raise InputError(Errors.E581.format(
                source=p, reason=f"the folder holds no file ending in {', '.join(SHARD_SUFFIXES)}",
            ))
        return p.absolute(), [f.absolute() for f in files]
    if p.is_file():
        return p.absolute().parent, [p.absolute()]
    if _GLOB_CHARS & set(text):
        files = sorted(Path(f).absolute() for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if not files:
            raise InputError(Errors.E581.format(source=text, reason="the pattern matches no file"))
        return Path(os.path.commonpath([str(f.parent) for f in files])), files
    raise InputError(Errors.E006.format(path=p))


def find_shards(source: str | Path | Sequence[str | Path], out_format: str, out: str | Path) -> tuple[Path, list[Shard]]:
    """The input root and the shards of ``source`` (a folder, a glob pattern, a file or a list of files)
    with their output names in ``out_format``. E581 when there is none, E582 when two shards would be
    written to one output, E585 when the output folder ``out`` lies inside the input folder."""
    root, files = _files(source)
    out_abs = Path(out).absolute()
    folder = isinstance(source, str | os.PathLike) and Path(source).is_dir()
    if folder and out_abs.resolve().is_relative_to(root.resolve()):  # its outputs would be read as inputs
        raise ConfigError(Errors.E585.format(out=out, input=root))
    ext = output_extension(out_format)
    shards: list[Shard] = []
    seen: dict[str, str] = {}
    for i, f in enumerate(files):
        rel = f.relative_to(root).as_posix()
        name = _strip_suffix(rel) + ext
        if name in seen:
            raise ConfigError(Errors.E582.format(out=out, first=seen[name], second=rel, name=name))
        seen[name] = rel
        shards.append(Shard(i, str(f), rel, name))
    return root, shards


def _text_ids(docs: list[Document], shard: Shard) -> list[Document]:
    """Documents of a text shard in a subfolder, with the ids a single-process run over the input folder
    gives them (the path relative to the folder: ``sub/notes``, ``sub/notes-p2``)."""
    rel_id = Path(shard.rel).with_suffix("").as_posix() if shard.rel.lower().endswith(".txt") else shard.rel
    stem = Path(shard.rel).name
    stem = stem[: -len(".txt")] if stem.lower().endswith(".txt") else stem
    if rel_id == stem:
        return docs
    return [text_documents(d.text, rel_id + d.document_id[len(stem):], "file")[0] for d in docs]


def read_shard(
    shard: Shard,
    *,
    command: str,
    input_format: str = "auto",
    split: str = "auto",
    encoding: str = "utf-8",
    keep_annotations: bool = False,
    folder_input: bool = False,
) -> tuple[list[Document], bool]:
    """The documents of one shard and whether they are ``[mention]{Group}`` markup lines (``link``).

    ``command`` is ``annotate`` (any input format of :func:`genbel.data.formats.read_documents`; the
    shard's own annotations dropped unless ``keep_annotations``) or ``link`` (the formats of
    :func:`genbel.pipeline.read_input`). Parquet shards and JSON lines of plain records are read as
    records by both. ``folder_input``: the shard is a file of an input folder, so ``split="auto"``
    keeps a text file whole (one document per file), as ``genbel annotate FOLDER`` does.
    Errors are the readers' (naming file and line) or E522 for a shard without documents.
    """
    path = Path(shard.path)
    name = path.name.lower()
    is_markup = False
    if name.endswith(".parquet"):
        docs = read_parquet_records(path)
    elif input_format in ("auto", "bigbio-jsonl", "jsonl") and name.endswith((".jsonl", ".ndjson", ".json")) \
            and is_plain_records(path, encoding):
        docs = read_jsonl_records(path, encoding)
    elif command == "link":
        from genbel.pipeline import read_input

        docs, is_markup = read_input(path, input_format)
    else:
        fmt = detect_input_format(path, encoding) if input_format == "auto" else input_format
        mode = "file" if split == "auto" and folder_input else split
        docs = read_documents(path, fmt, keep_annotations=keep_annotations, split=mode, encoding=encoding)
        if fmt in ("text", "txt", "plain"):
            docs = _text_ids(docs, shard)
    if command == "annotate" and not keep_annotations:
        docs = [d if not d.entities else Document(d.id, d.document_id, d.passages, []) for d in docs]
    if not docs:
        raise InputError(Errors.E522.format(path=path, reason="the shard holds no document"))
    logger.debug("%s: %d documents", path, len(docs))
    return docs, is_markup
