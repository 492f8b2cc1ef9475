"""``--engine local|ray`` of ``genbel annotate`` and ``genbel link``: the shared options and the summary
line of a distributed run (:mod:`genbel.distributed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from genbel.errors import ConfigError, Errors

if TYPE_CHECKING:
    from genbel.distributed import DatasetRun

err_console = Console(stderr=True)

#: ``local``: one process (the default); ``ray``: Ray Data over input shards, one output shard each
ENGINES: tuple[str, ...] = ("local", "ray")


def engine_option() -> str:
    return typer.Option(
        "local", "--engine",
        help="local: one process (default). ray: INPUT is a folder, glob or file of shards (JSONL, Parquet, "
        "PubTator, BioC, text), OUT a folder with one output shard per input shard (pip install 'genbel\\[distributed]').",
    )


def workers_option() -> int | None:
    return typer.Option(None, "--workers", min=1, help="--engine ray: actors, each loading the models once (default 1).")


def batch_docs_option() -> int | None:
    return typer.Option(
        None, "--batch-docs", min=1, help="--engine ray: documents an actor detects and links at a time (default 32); a document is never split."
    )


def check_engine(engine: str, workers: int | None, batch_docs: int | None) -> bool:
    """Whether the ray engine runs; E022 for an unknown engine, E583 for ray options without it."""
    if engine not in ENGINES:
        raise ConfigError(Errors.E022.format(value=engine, field="--engine", known=", ".join(ENGINES)))
    if engine == "local":
        for option, value in (("--workers", workers), ("--batch-docs", batch_docs)):
            if value is not None:
                raise ConfigError(Errors.E583.format(option=option))
    return engine == "ray"


def print_run(run: DatasetRun, verb: str) -> None:
    """The summary line of a distributed run."""
    skipped = f", {run.n_skipped} already done" if run.n_skipped else ""
    err_console.print(
        f"{verb} {run.n_documents} documents ({run.n_mentions} mentions linked) in {run.n_written} shards"
        f"{skipped} in {run.seconds:.1f} s ({run.documents_per_second:,.1f} documents/s with {run.workers} "
        f"worker{'s' if run.workers != 1 else ''}, Ray's start and model loading included) → {run.out}/",
        highlight=False, soft_wrap=True,
    )
