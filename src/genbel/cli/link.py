"""``genbel link`` (link a file's mentions with any linker) and ``genbel export`` (HF remote-code model)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from genbel.cli.engine import batch_docs_option, check_engine, engine_option, print_run, workers_option
from genbel.io import check_output
from genbel.linkers.default import DEFAULT_LINKER
from genbel.pipeline import INPUT_FORMATS

err_console = Console(stderr=True)


def document_level_option() -> bool:
    return typer.Option(
        False, "--document-level",
        help="Link each document's mentions in order with a memory of its earlier predictions (LongBEL), "
        "with the shipped generative model or the generative --linker.",
    )


def ensemble_option() -> bool:
    return typer.Option(
        False, "--ensemble", help="Document-level + mention-level ensemble (implies --document-level)."
    )


def document_level_linker(linker: str | None, document_level: bool, ensemble: bool) -> tuple[str | None, dict]:
    """``--document-level`` / ``--ensemble`` of ``genbel link`` and ``genbel annotate``: the linker spec
    and options they stand for (:func:`genbel.linkers.default.document_level_spec`); ``linker`` and no
    options when neither is given."""
    if not (document_level or ensemble):
        return linker, {}
    from genbel.linkers.default import document_level_spec

    return document_level_spec(linker, ensemble=ensemble, option="--ensemble" if ensemble else "--document-level")


def link_cmd(
    input_path: Path = typer.Argument(
        ...,
        metavar="INPUT",
        help="BigBio JSON/JSONL, PubTator, or text lines with \\[mention]{Group} markup.",
    ),
    linker: str | None = typer.Option(
        None, "--linker",
        help=f"NAME[:PATH] or an alias, e.g. tfidf, generative, generative:runs/smollm2 "
        f"(default: {DEFAULT_LINKER}).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output file: BigBio .json or .jsonl with candidates (format from the extension).",
    ),
    kb: str | None = typer.Option(
        None, "--kb",
        help="KB file or built KB directory (default: the linker's kb/; the bundled KB for shipped models).",
    ),
    kb_format: str | None = typer.Option(
        None, "--kb-format", help="medic|ctd|biosyn|umls|obo|jsonl|tsv|genbel"
    ),
    out_format: str | None = typer.Option(
        None, "--output-format", help="json|jsonl (one document per line); default: the extension of --out.",
    ),
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
    resume: bool = typer.Option(
        False, "--resume",
        help="Continue an interrupted run: keep the documents already in OUT.partial (same settings).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    engine: str = engine_option(),
    workers: int | None = workers_option(),
    batch_docs: int | None = batch_docs_option(),
    document_level: bool = document_level_option(),
    ensemble: bool = ensemble_option(),
    explain: str | None = typer.Option(
        None, "--explain", metavar="DOC_ID",
        help="Also write the saliency maps of document DOC_ID as HTML, beside OUT (with --document-level).",
    ),
) -> None:
    """Link every mention of INPUT and write ranked candidates per entity.

    Documents are written to OUT.partial as they are linked; OUT appears when all are done. After an
    interrupt, rerun the same command with --resume to continue where it stopped.

    With --engine ray, INPUT holds shards and OUT is a folder: one output shard per input shard
    (--output-format json|jsonl, default jsonl); --resume skips the shards already written."""
    from genbel.data import parse_entity_types
    from genbel.errors import ConfigError, Errors
    from genbel.linkers.default import default_linker
    from genbel.linkers.registry import parse_options, resolve_alias
    from genbel.pipeline import (
        check_markup_groups,
        explained_document,
        explanation_path,
        file_digest,
        generative_options,
        link_to_file,
        linker_kb,
        linker_path,
        output_format,
        partial_path,
        read_input,
    )

    linker, doc_options = document_level_linker(linker, document_level, ensemble)
    if not (document_level or ensemble) and explain is not None:
        raise ConfigError(Errors.E632)
    if check_engine(engine, workers, batch_docs):
        from genbel.distributed import BATCH_DOCS, link_dataset

        if explain is not None:
            raise ConfigError(Errors.E587.format(option="--explain"))
        options = generative_options(
            linker, constrained=constrained, restrict_to_group=group_restriction, num_beams=num_beams,
            batch_size=batch_size,
        )
        options.update(doc_options)
        options.update(parse_options(linker_options))
        run = link_dataset(
            input_path, out, kb=kb, kb_format=kb_format, linker=linker, linker_options=options, k=k,
            expand_abbreviations=abbreviations, entity_types=parse_entity_types(entity_types),
            input_format=input_format, output_format=out_format or "jsonl", workers=workers or 1,
            batch_docs=batch_docs or BATCH_DOCS, resume=resume, progress=False if quiet else None,
        )
        print_run(run, "linked")
        return
    fmt = output_format(out, out_format)
    linker = resolve_alias(linker) if linker is not None else None
    inputs = [input_path, linker_path(linker)]
    check_output(out, inputs, stores=[kb])
    check_output(partial_path(out), inputs, stores=[kb])
    if explain is not None:
        check_output(explanation_path(out, explain), inputs, stores=[kb], option="--explain")
    docs, is_markup = read_input(input_path, input_format)
    explained = explained_document(docs, explain, input_path) if explain is not None else None
    kb_obj = linker_kb(kb, kb_format, linker)
    if is_markup:
        check_markup_groups(docs, kb_obj, input_path)
    options = generative_options(
        linker, constrained=constrained, restrict_to_group=group_restriction, num_beams=num_beams,
        batch_size=batch_size,
    )
    options.update(doc_options)
    options.update(parse_options(linker_options))
    t_setup = time.perf_counter()
    lk = default_linker(kb_obj, linker, **options)
    t_setup = time.perf_counter() - t_setup
    spec = getattr(lk, "spec", lk.name)  # the spec the linker was built from (an alias resolved)
    settings = {
        "input": str(input_path.resolve()),
        "input_sha256": file_digest(input_path),
        "input_format": input_format,
        "kb_fingerprint": kb_obj.fingerprint(),
        "linker": spec,
        "linker_options": options,
    }
    t0 = time.perf_counter()
    with _resume_hint(out, "linked"), _progress_bar(disable=quiet) as progress:
        run = link_to_file(
            docs, lk, out, kb_name=kb_obj.name, fmt=fmt, k=k, expand_abbreviations=abbreviations,
            entity_types=parse_entity_types(entity_types), settings=settings, resume=resume,
            progress=progress,
        )
    dt = time.perf_counter() - t0
    if explained is not None:
        _write_explanation(lk, explained, explanation_path(out, explain), abbreviations, entity_types)
    rate = run.n_mentions / dt if dt > 0 else float("inf")
    resumed = f" (resumed after {run.resumed} documents)" if run.resumed else ""
    stats = getattr(lk, "embedding_stats", None)  # dense linkers: how the setup got the name vectors
    err_console.print(
        f"linked {run.n_mentions} mentions in {run.n_documents} documents in {dt:.1f} s "
        f"({rate:,.1f} mentions/s){resumed} with {spec} against {kb_obj.name} → {out}; "
        f"setup (linker and KB index) {t_setup:.1f} s"
        + (f": {stats}" if stats is not None else ""),
        highlight=False,
        soft_wrap=True,
    )


def _write_explanation(lk, document, path: Path, abbreviations: bool, entity_types: str | None) -> None:
    """``--explain``: the saliency maps of one document's mentions as one HTML page at ``path``."""
    from genbel.data import parse_entity_types
    from genbel.io import atomic_write_text
    from genbel.linkers.document import explainer

    page = explainer(lk).explain(document, abbreviations, parse_entity_types(entity_types))
    atomic_write_text(path, page)
    err_console.print(f"saliency maps of document {document.document_id} → {path}", highlight=False)


@contextmanager
def _resume_hint(out: Path, done: str) -> Iterator[None]:
    """On Ctrl-C, say where the documents ``done`` so far are and how to continue (then re-raise)."""
    from genbel.pipeline import partial_path

    try:
        yield
    except KeyboardInterrupt:
        if partial_path(out).exists():
            err_console.print(
                f"the documents {done} so far are in {partial_path(out)}; "
                "rerun the same command with --resume to continue",
                highlight=False, soft_wrap=True,
            )
        raise


@contextmanager
def _progress_bar(disable: bool = False, desc: str = "linking") -> Iterator[Callable[[int, int], None]]:
    """A documents progress bar on stderr (tqdm), shown only on a terminal and without --quiet."""
    from tqdm import tqdm

    bar = tqdm(unit="doc", desc=desc, disable=disable or not sys.stderr.isatty(), file=sys.stderr)

    def update(done: int, total: int) -> None:
        if bar.total != total:  # the first call: documents already in a resumed partial output
            bar.reset(total=total)
            bar.initial = bar.n = bar.last_print_n = done  # not counted in this run's rate
            bar.refresh()
        else:
            bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


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

    check_output(out, [linker_dir], stores=[kb], kind="dir", option="OUT")
    kb_obj = open_kb(kb, kb_format) if kb is not None else None
    export_linker(linker_dir, out, kb=kb_obj)
    err_console.print(
        f"exported {linker_dir} → {out} (load with trust_remote_code=True; needs genbel)", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("link")(link_cmd)
    app.command("export")(export_cmd)
