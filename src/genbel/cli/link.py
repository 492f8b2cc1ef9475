"""``genbel link`` (link a file's mentions with any linker) and ``genbel export`` (HF remote-code model)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from genbel.errors import ConfigError, Errors
from genbel.pipeline import INPUT_FORMATS, OUTPUT_FORMATS

err_console = Console(stderr=True)


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
    k: int = typer.Option(5, "-k", min=1, help="Candidates per mention."),
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
    from genbel.data import parse_entity_types
    from genbel.linkers.registry import create_linker, parse_options
    from genbel.pipeline import (
        check_markup_groups,
        generative_options,
        linked_documents,
        linker_kb,
        read_input,
        write_linked,
    )

    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(Errors.E022.format(value=fmt, field="--format", known="json, jsonl"))
    docs, is_markup = read_input(input_path, input_format)
    kb_obj = linker_kb(kb, kb_format, linker)
    if is_markup:
        check_markup_groups(docs, kb_obj, input_path)
    options = generative_options(
        linker, constrained=constrained, restrict_to_group=group_restriction, num_beams=num_beams,
        batch_size=batch_size,
    )
    options.update(parse_options(linker_options))
    lk = create_linker(linker, kb_obj, **options)
    t0 = time.perf_counter()
    results = lk.link_documents(
        docs, k=k, expand_abbreviations=abbreviations, entity_types=parse_entity_types(entity_types)
    )
    dt = time.perf_counter() - t0
    write_linked(linked_documents(docs, results, kb_obj.name), out, fmt)
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
    from genbel.kb import open_kb
    from genbel.linkers.hf_export import export_linker

    kb_obj = open_kb(kb, kb_format) if kb is not None else None
    export_linker(linker_dir, out, kb=kb_obj)
    err_console.print(
        f"exported {linker_dir} → {out} (load with trust_remote_code=True; needs genbel)", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("link")(link_cmd)
    app.command("export")(export_cmd)
