"""``genbel annotate``: raw text (or any corpus format) in, detected and linked mentions out."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from genbel.cli.engine import batch_docs_option, check_engine, engine_option, print_run, workers_option
from genbel.cli.link import document_level_linker, document_level_option, ensemble_option
from genbel.data.formats import INPUT_FORMATS, OUTPUT_FORMATS
from genbel.data.text import TEXT_SPLITS

err_console = Console(stderr=True)


def annotate_cmd(
    input_path: str = typer.Argument(
        ..., metavar="INPUT",
        help="A text file, a folder of .txt files, '-' (standard input), or a PubTator, BigBio, BioC or brat corpus.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o",
        help="Output: .csv .tsv .json .jsonl .pubtator .xml (BioC) .bioc.json, or a folder (brat).",
    ),
    kb: str = typer.Option("default", "--kb", help="KB file or built KB directory (default: the bundled MEDIC)."),
    kb_format: str | None = typer.Option(None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"),
    linker: str = typer.Option("default", "--linker", help="NAME[:PATH] (default: genbel's default linker)."),
    detector: str = typer.Option(
        "default", "--detector", help="Mention detector: default | dictionary | tagger[:PATH] | combined[:PATH]."
    ),
    input_format: str = typer.Option("auto", "--input-format", help="|".join(INPUT_FORMATS)),
    out_format: str | None = typer.Option(
        None, "--output-format", help=f"{'|'.join(OUTPUT_FORMATS)}; default: from the extension of --out."
    ),
    split: str = typer.Option(
        "auto", "--split",
        help=f"{'|'.join(TEXT_SPLITS)}: plain text as one document per file or per blank-line paragraph "
        "(auto: per file in a folder, per paragraph in one file).",
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the input."),
    keep_annotations: bool = typer.Option(
        False, "--keep-annotations", help="Link the input's own annotations instead of detecting mentions."
    ),
    k: int = typer.Option(5, "-k", min=1, help="Candidates per mention."),
    abbreviations: bool = typer.Option(
        True, "--abbreviations/--no-abbreviations", help="Link a defined short form as its long form."
    ),
    linker_options: list[str] | None = typer.Option(
        None, "--set", help="Linker option KEY=VALUE (repeatable)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run from OUT.partial (same input and settings)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    engine: str = engine_option(),
    workers: int | None = workers_option(),
    batch_docs: int | None = batch_docs_option(),
    document_level: bool = document_level_option(),
    ensemble: bool = ensemble_option(),
) -> None:
    """Find the biomedical mentions of INPUT and link each to KB concepts.

    Every entity is written with its offsets into the input text, type, top concept (id, preferred
    name, score) and ranked candidates. Documents are written to OUT.partial as they are done; OUT
    appears when all are. After an interrupt, rerun the same command with --resume.

    With --engine ray, INPUT holds shards and OUT is a folder: one output shard per input shard
    (--output-format, default jsonl); --resume skips the shards already written."""
    from genbel.linkers.registry import parse_options

    linker, doc_options = document_level_linker(linker, document_level, ensemble)
    if check_engine(engine, workers, batch_docs):
        from genbel.distributed import BATCH_DOCS, annotate_dataset

        run = annotate_dataset(
            input_path, out, kb=kb, kb_format=kb_format, linker=linker,
            linker_options={**doc_options, **parse_options(linker_options)},
            detector=detector, keep_annotations=keep_annotations, k=k, expand_abbreviations=abbreviations,
            input_format=input_format, output_format=out_format or "bigbio-jsonl", split=split, encoding=encoding,
            workers=workers or 1, batch_docs=batch_docs or BATCH_DOCS, resume=resume, progress=False if quiet else None,
        )
        print_run(run, "annotated")
        return
    from genbel.annotate import annotate_to_file, is_folder_format, make_detector, make_linker
    from genbel.cli.link import _progress_bar, _resume_hint
    from genbel.data.formats import output_format_of, read_documents
    from genbel.io import check_output
    from genbel.kb import open_kb
    from genbel.pipeline import linker_path, partial_path

    fmt = output_format_of(out, out_format)
    inputs = [None if input_path == "-" else Path(input_path), linker_path(linker)]
    check_output(out, inputs, stores=[kb], kind="dir" if is_folder_format(fmt) else "file")
    check_output(partial_path(out), inputs, stores=[kb])
    docs = read_documents(
        input_path, input_format, keep_annotations=keep_annotations, split=split, encoding=encoding
    )
    kb_obj = open_kb(kb, kb_format)
    det = None if keep_annotations else make_detector(detector, kb_obj)
    options = {**doc_options, **parse_options(linker_options)}
    lk = make_linker(linker, kb_obj, **options)
    settings = {
        "kb_fingerprint": kb_obj.fingerprint(),
        "linker": linker,
        "linker_options": options,
        "detector_spec": None if keep_annotations else detector,
    }
    t0 = time.perf_counter()
    with _resume_hint(out, "annotated"), _progress_bar(disable=quiet, desc="annotating") as progress:
        run = annotate_to_file(
            docs, out, kb=kb_obj, linker=lk, detector=det, fmt=fmt, k=k,
            expand_abbreviations=abbreviations, settings=settings, resume=resume, progress=progress,
        )
    dt = time.perf_counter() - t0
    rate = run.n_documents / dt if dt > 0 else float("inf")
    chars = run.n_characters / dt if dt > 0 else float("inf")
    resumed = f" (resumed after {run.resumed} documents)" if run.resumed else ""
    err_console.print(
        f"annotated {run.n_documents} documents ({run.n_mentions} mentions linked) in {dt:.1f} s "
        f"({rate:,.1f} documents/s, {chars:,.0f} characters/s){resumed} → {out} ({run.format})",
        highlight=False, soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate_cmd)
