"""``genbel link`` (link a file's mentions with any linker) and ``genbel export`` (HF remote-code model)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from genbel.data.model import Document, Entity, Passage
from genbel.errors import ConfigError, Errors, InputError

err_console = Console(stderr=True)

INPUT_FORMATS = ("auto", "pubtator", "bigbio-json", "bigbio-jsonl", "markup")
OUTPUT_FORMATS = ("json", "jsonl")


def read_markup(path: Path) -> list[Document]:
    """One document per non-blank line of ``[mention]{Group}`` markup (``#`` lines are comments).

    The document id is the line number; the entity id is ``T1``; its type is the group (``""`` for ``{}``).
    """
    from genbel.linkers.prompts import parse_markup
    from genbel.textio import iter_lines

    docs: list[Document] = []
    for lineno, raw in enumerate(iter_lines(path), 1):  # BOM dropped; bad bytes: E155 (file:line)
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        q = parse_markup(line, f"{path}:{lineno}")
        text = q.context or q.text
        ent = Entity("T1", q.type or "", [q.text], [(q.start or 0, q.end or len(q.text))])
        docs.append(
            Document(
                str(lineno), str(lineno), [Passage("p0", "sentence", [text], [(0, len(text))])], [ent]
            )
        )
    if not docs:
        raise InputError(Errors.E016.format(path=path, reason="no [mention]{Group} line"))
    return docs


def _looks_like_markup(path: Path) -> bool:
    from genbel.linkers.prompts import MARKUP
    from genbel.textio import iter_lines

    for raw in iter_lines(path):  # BOM dropped; bad bytes: E155 (file:line)
        line = raw.strip()
        if line and not line.startswith("#"):
            return bool(MARKUP.search(line)) and not line.startswith(("{", '[{"'))
    return False


def read_input(path: Path, input_format: str) -> tuple[list[Document], bool]:
    """Documents of ``path`` and whether they came from markup lines."""
    from genbel.data import load_corpus

    if input_format not in INPUT_FORMATS:
        raise ConfigError(
            Errors.E021.format(field="--input-format", reason=f"{input_format!r} ({'|'.join(INPUT_FORMATS)})")
        )
    if not path.is_file():
        raise InputError(Errors.E006.format(path=path))
    if input_format == "markup" or (input_format == "auto" and _looks_like_markup(path)):
        return read_markup(path), True
    return load_corpus(path, None if input_format == "auto" else input_format), False


def check_markup_groups(docs: list[Document], kb: Any, path: Path) -> None:
    """Every ``{Group}`` of a markup file must name a group (E250 with ``file:line`` otherwise)."""
    from genbel.linkers.groups import resolve_group

    groups = kb.semantic_groups
    for d in docs:
        for e in d.entities:
            if e.type:
                resolve_group(e.type, groups, f"{path}:{d.document_id}")


def linked_documents(docs: list[Document], results: list, kb_name: str) -> list[dict]:
    """BigBio dicts of ``docs``; each linked entity gets ``candidates`` and ``normalized`` = the top code.

    Gold normalizations of the input (if any) are kept as ``gold_normalized``.
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
                continue  # filtered out by --entity-types
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


def write_output(docs: list[dict], path: Path, fmt: str) -> None:
    """BigBio JSON (a list, one document a line) or JSONL, written atomically."""
    from genbel.io import atomic_open

    with atomic_open(path) as fh:
        if fmt == "jsonl":
            for d in docs:
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        else:
            fh.write("[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n]\n")


def _load_kb(kb: str | None, kb_format: str | None, linker: str):
    from genbel.kb import KnowledgeBase, load_kb

    if kb is not None:
        return load_kb(kb, format=kb_format)
    _, _, path = linker.partition(":")
    if path and (Path(path) / "kb").is_dir():
        return KnowledgeBase.from_disk(Path(path) / "kb")
    raise ConfigError(Errors.E014.format(where="genbel link", field="--kb (the linker has no saved kb/)"))


def link_cmd(
    input_path: Path = typer.Argument(
        ...,
        metavar="INPUT",
        help="BigBio JSON/JSONL, PubTator, or text lines with \\[mention]{Group} markup.",
    ),
    linker: str = typer.Option(..., "--linker", help="NAME[:PATH], e.g. generative:runs/smollm2 or tfidf."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (BigBio JSON or JSONL with candidates)."),
    kb: str | None = typer.Option(
        None, "--kb", help="KB file or built KB directory (default: the linker's kb/)."
    ),
    kb_format: str | None = typer.Option(
        None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"
    ),
    fmt: str = typer.Option("json", "--format", help="Output format: json|jsonl (one document per line)."),
    input_format: str = typer.Option("auto", "--input-format", help="|".join(INPUT_FORMATS)),
    k: int = typer.Option(5, "-k", help="Candidates per mention."),
    num_beams: int | None = typer.Option(
        None, "--num-beams", help="Beam size (generative; default max(5, k))."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Mentions per generate() call (generative)."
    ),
    constrained: bool = typer.Option(
        True, "--constrained/--unconstrained", help="Trie-constrained decoding."
    ),
    group_restriction: bool = typer.Option(
        True,
        "--group-restriction/--no-group-restriction",
        help="Restrict decoding to the mention's semantic group.",
    ),
    entity_types: str | None = typer.Option(
        None, "--entity-types", help="Comma-separated entity types to link."
    ),
    abbreviations: bool = typer.Option(
        False,
        "--abbreviations/--no-abbreviations",
        help="Link the long form of abbreviations (Schwartz-Hearst).",
    ),
    linker_options: list[str] | None = typer.Option(
        None, "--set", help="Linker option KEY=VALUE (repeatable), e.g. mode=constrain for hybrid."
    ),
) -> None:
    """Link every mention of INPUT and write ranked candidates per entity."""
    from genbel.linkers.registry import create_linker, parse_options

    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(Errors.E021.format(field="--format", reason=f"{fmt!r} (json|jsonl)"))
    docs, is_markup = read_input(input_path, input_format)
    kb_obj = _load_kb(kb, kb_format, linker)
    if is_markup:
        check_markup_groups(docs, kb_obj, input_path)
    options: dict[str, Any] = {}
    if linker.partition(":")[0] == "generative":
        options = {"constrained": constrained, "restrict_to_group": group_restriction}
        if num_beams is not None:
            options["num_beams"] = num_beams
        if batch_size is not None:
            options["batch_size"] = batch_size
    options.update(parse_options(linker_options))
    lk = create_linker(linker, kb_obj, **options)
    types = [t.strip() for t in entity_types.split(",") if t.strip()] if entity_types else None
    t0 = time.perf_counter()
    results = lk.link_documents(docs, k=k, expand_abbreviations=abbreviations, entity_types=types)
    dt = time.perf_counter() - t0
    write_output(linked_documents(docs, results, kb_obj.name), out, fmt)
    rate = len(results) / dt if dt > 0 else float("inf")
    err_console.print(
        f"linked {len(results)} mentions in {len(docs)} documents in {dt:.1f} s "
        f"({rate:,.1f} mentions/s) → {out}",
        highlight=False,
    )


def export_cmd(
    linker_dir: Path = typer.Argument(..., metavar="DIR", help="A saved generative linker directory."),
    out: Path = typer.Argument(
        ..., metavar="OUT", help="Folder to write (must not exist, or be a linker dir)."
    ),
    kb: str | None = typer.Option(None, "--kb", help="KB to use instead of the linker's saved kb/."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
) -> None:
    """Export a generative linker as a Hugging Face folder with .sample() (trust_remote_code=True)."""
    from genbel.kb import load_kb
    from genbel.linkers.export import export_linker

    kb_obj = load_kb(kb, format=kb_format) if kb is not None else None
    export_linker(linker_dir, out, kb=kb_obj)
    err_console.print(
        f"exported {linker_dir} → {out} (load with trust_remote_code=True; needs genbel)", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("link")(link_cmd)
    app.command("export")(export_cmd)
