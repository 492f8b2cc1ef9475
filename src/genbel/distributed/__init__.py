"""Annotation and linking at corpus scale on Ray (``pip install 'genbel[distributed]'``).

``genbel annotate … --engine ray`` and ``genbel link … --engine ray`` do what the single-process commands
do, over many input shards at once (sharded JSONL of BigBio documents or of plain ``{id, text}``
records, Parquet, or a folder of PubTator/BioC/text files: each file is a shard): Ray Data hands the
shards to a pool of actors, each loading the KB, the detector and the linker once, which read whole
shards and detect and link their documents, and one output shard is written per input shard,
atomically. A resumed run skips the shards already written. Modules, one per job:

* :mod:`~genbel.distributed.shards`: which files are shards, their output names, reading one;
* :mod:`~genbel.distributed.records`: Parquet rows and plain JSON records → documents;
* :mod:`~genbel.distributed.workers`: the actor (:class:`~genbel.distributed.workers.ShardWorker`), which reads and links shards;
* :mod:`~genbel.distributed.manifest`: the run record in the output folder, and what ``resume`` skips;
* :mod:`~genbel.distributed.runner`: the Ray Data plan, the driver that writes shards, the progress bar.

Example::

    from genbel.distributed import annotate_dataset

    run = annotate_dataset("pubmed/shards/", "pubmed/annotated/", detector="dictionary", linker="tfidf",
                           workers=2, resume=True)
    print(run.n_written, "shards,", run.documents_per_second, "documents/s")

Ray runs locally unless ``address`` (or ``RAY_ADDRESS``) names a cluster, or Ray is already
initialised in the process (then its cluster is used and left running).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genbel.distributed.runner import BATCH_DOCS, DatasetRun, run_job
from genbel.distributed.workers import Job

__all__ = ["BATCH_DOCS", "DatasetRun", "Job", "annotate_dataset", "link_dataset"]


def annotate_dataset(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    kb: str | Path = "default",
    kb_format: str | None = None,
    linker: str = "default",
    linker_options: dict[str, Any] | None = None,
    detector: str = "default",
    keep_annotations: bool = False,
    k: int = 5,
    expand_abbreviations: bool = True,
    input_format: str = "auto",
    output_format: str = "bigbio-jsonl",
    split: str = "auto",
    encoding: str = "utf-8",
    workers: int = 1,
    batch_docs: int = BATCH_DOCS,
    cpus_per_worker: float = 1,
    gpus_per_worker: float | None = None,
    resume: bool = False,
    progress: bool | None = None,
    address: str | None = None,
) -> DatasetRun:
    """What ``genbel annotate`` does, over the shards of ``source``, on Ray.

    ``source`` is a folder of shards, a glob pattern, a file or a list of files; ``out`` the output
    folder, which gets one shard per input shard in ``output_format`` (any of
    :data:`genbel.data.formats.OUTPUT_FORMATS`) and the run record ``_genbel_run.json``. The KB,
    ``linker``, ``detector`` and their options are specs (each actor builds its own), as on the command
    line; ``k``, ``expand_abbreviations``, ``keep_annotations``, ``input_format``, ``split`` and
    ``encoding`` are those of :func:`genbel.annotate.annotate_to_file` and ``genbel annotate``.

    ``workers`` actors with ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs each (``None``: one
    GPU each when the Ray cluster has enough of them) take one shard at a time and link its documents
    ``batch_docs`` at a time (shards are the unit of work: give many more shards than workers).
    ``resume`` skips the shards whose output an earlier run with the same settings wrote (E456 for
    other settings); ``progress`` shows a bar of shards (``None``: on a terminal). ``address`` is a Ray
    cluster's address. Errors: E580 (a bad shard, naming file and line), E581 (no shard), E582 (two
    shards with one output name), E585 (output inside the input folder), E586 (Ray failed); E450 when
    Ray is not installed.
    """
    job = Job(
        "annotate", kb=str(kb), kb_format=kb_format, linker=linker, linker_options=dict(linker_options or {}),
        detector=None if keep_annotations else detector, k=k, expand_abbreviations=expand_abbreviations,
        input_format=input_format, split=split, encoding=encoding, keep_annotations=keep_annotations,
        output_format=_output_format(output_format, "annotate"),
    )
    return run_job(source, out, job, workers=workers, batch_docs=batch_docs, cpus_per_worker=cpus_per_worker,
                   gpus_per_worker=gpus_per_worker, resume=resume, progress=progress, address=address)


def link_dataset(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    kb: str | Path | None = None,
    kb_format: str | None = None,
    linker: str | None = None,
    linker_options: dict[str, Any] | None = None,
    k: int = 5,
    expand_abbreviations: bool = False,
    entity_types: Sequence[str] | None = None,
    input_format: str = "auto",
    output_format: str = "jsonl",
    workers: int = 1,
    batch_docs: int = BATCH_DOCS,
    cpus_per_worker: float = 1,
    gpus_per_worker: float | None = None,
    resume: bool = False,
    progress: bool | None = None,
    address: str | None = None,
) -> DatasetRun:
    """What ``genbel link`` does (link the mentions the shards already have, write BigBio with ranked
    candidates), over the shards of ``source``, on Ray. ``output_format`` is ``json`` or ``jsonl``;
    ``kb=None`` is the linker's KB as in ``genbel link`` (the bundled KB for the shipped models).
    The other arguments are those of :func:`annotate_dataset`."""
    from genbel.linkers.registry import resolve_alias

    job = Job(
        "link", kb=None if kb is None else str(kb), kb_format=kb_format,
        linker=resolve_alias(linker) if linker is not None else None, linker_options=dict(linker_options or {}),
        detector=None, k=k, expand_abbreviations=expand_abbreviations,
        entity_types=tuple(entity_types) if entity_types else None, input_format=input_format,
        keep_annotations=True, output_format=_output_format(output_format, "link"),
    )
    return run_job(source, out, job, workers=workers, batch_docs=batch_docs, cpus_per_worker=cpus_per_worker,
                   gpus_per_worker=gpus_per_worker, resume=resume, progress=progress, address=address)


def _output_format(fmt: str, command: str) -> str:
    """The canonical output format name (E022 for an unknown one)."""
    if command == "link":
        from genbel.pipeline import OUTPUT_FORMATS
        from genbel.errors import ConfigError, Errors

        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(Errors.E022.format(value=fmt, field="--output-format", known=", ".join(OUTPUT_FORMATS)))
        return fmt
    from genbel.data.formats import output_format_of

    return output_format_of("x", fmt)
