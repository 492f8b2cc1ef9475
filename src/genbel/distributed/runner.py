"""The driver of a distributed run: Ray Data reads the shards, a pool of actors detects and links, and
the driver writes one output shard per input shard.

The plan, as Ray Data runs it (streaming, with back-pressure)::

    from_items(shards) -> map_batches(ShardWorker, batch_size=1,    # one shard per call, read in the actor
                                      compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
                                      num_cpus, num_gpus)             # → one row per document

A shard is the unit of work: an actor works on one shard while the next one waits at it (so there is
no gap between shards), and an actor with room takes the next shard. Ray itself is started lean
(:func:`_ray`: no dashboard; Ray Data's progress bars and plan logs off unless genbel logs at INFO).

The driver gathers each shard's linked documents, and when the last one has arrived writes the shard
with the single-process writers (:func:`genbel.data.formats.write_documents`, :func:`genbel.pipeline.write_linked`),
atomically: an output shard that exists is complete. A tqdm bar counts shards. A bad shard stops the
run with E580 (naming its file and line) before anything of it is written; the shards already
written stay, and ``resume`` skips them (:mod:`genbel.distributed.manifest`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genbel.deps import require
from genbel.distributed.manifest import finish_run, start_run
from genbel.distributed.shards import Shard, find_shards
from genbel.distributed.workers import BATCH_DOCS, Job, ShardWorker
from genbel.errors import ConfigError, Errors, GenbelError, InputError
from genbel.io import check_output, output_errors

logger = logging.getLogger(__name__)

__all__ = ["BATCH_DOCS", "DatasetRun", "run_job"]

#: shard tasks queued on an actor at a time: the next shard waits at the actor, so that it does not
#: wait for the driver's next scheduling round (Ray Data polls every 0.1 s: a gap after every shard)
TASKS_IN_FLIGHT = 2


@dataclass
class DatasetRun:
    """What a distributed run did: shards in the input, written now and skipped (already done by an
    earlier run), documents and mentions linked now, wall time and workers."""

    out: Path
    n_shards: int
    n_written: int
    n_skipped: int
    n_documents: int
    n_mentions: int
    seconds: float
    workers: int
    #: seconds until the first output shard was written (Ray start, actor setup, one shard), and its documents
    first_shard_seconds: float = 0.0
    first_shard_documents: int = 0

    @property
    def documents_per_second(self) -> float:
        return self.n_documents / self.seconds if self.seconds > 0 else float("inf")

    @property
    def steady_documents_per_second(self) -> float:
        """Documents/s after the first shard: without Ray's start and the actors' model loading."""
        dt = self.seconds - self.first_shard_seconds
        n = self.n_documents - self.first_shard_documents
        return n / dt if dt > 0 and n > 0 else float("nan")


@contextmanager
def _ray(address: str | None, cpus_needed: float) -> Iterator[Any]:
    """Ray, started here (a local instance, or a connection to ``address`` / ``RAY_ADDRESS``) unless it
    is already running in this process; stopped at the end when started here."""
    import ray

    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                  "log_to_driver": True}
        if address is None and not os.environ.get("RAY_ADDRESS"):
            # a local instance: the pool may ask for more CPUs than the machine has (they share them)
            kwargs["num_cpus"] = max(os.cpu_count() or 1, int(cpus_needed + 0.999))
        ray.init(address=address, **kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _from_items(ray: Any, items: list[dict[str, Any]]) -> Any:
    """One block per shard, so that shards are read in parallel (``override_num_blocks`` since Ray 2.10)."""
    try:
        return ray.data.from_items(items, override_num_blocks=len(items))
    except TypeError:  # pragma: no cover - Ray 2.9
        return ray.data.from_items(items, parallelism=len(items))


def _write_shard(out: Path, shard: Shard, docs: list[dict], job: Job) -> None:
    """Write one output shard atomically with the single-process writers."""
    target = out / shard.out
    with output_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        if job.command == "annotate":
            from genbel.data.formats import write_documents

            write_documents(docs, target, job.output_format)
        else:
            from genbel.pipeline import write_linked

            write_linked(docs, target, job.output_format)


def _raise(row_error: str, kind: str, shard: Shard) -> None:
    if kind == "setup":
        raise ConfigError(row_error)  # the linker's or KB's own coded message
    raise InputError(Errors.E580.format(shard=shard.path, reason=row_error))


def _check_resources(ray: Any, workers: int, cpus: float, gpus: float) -> None:
    have = ray.cluster_resources()
    if workers * cpus > have.get("CPU", 0):
        raise ConfigError(Errors.E023.format(
            value=workers, field="--workers",
            constraint=f"at most {int(have.get('CPU', 0) // cpus)} with {cpus:g} CPUs each "
            f"(the Ray cluster has {have.get('CPU', 0):g} CPUs)",
        ))
    if gpus and workers * gpus > have.get("GPU", 0):
        raise ConfigError(Errors.E023.format(
            value=workers, field="--workers",
            constraint=f"at most {int(have.get('GPU', 0) // gpus)} with {gpus:g} GPUs each "
            f"(the Ray cluster has {have.get('GPU', 0):g} GPUs)",
        ))


def _quiet_ray_data(ray: Any) -> None:
    """Our bar counts shards; Ray Data's own bars and plan logs only when genbel logs at INFO."""
    verbose = logging.getLogger("genbel").getEffectiveLevel() <= logging.INFO
    ray.data.DataContext.get_current().enable_progress_bars = verbose
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.ERROR)


def run_job(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    job: Job,
    *,
    workers: int = 1,
    batch_docs: int = BATCH_DOCS,
    cpus_per_worker: float = 1,
    gpus_per_worker: float | None = None,
    resume: bool = False,
    progress: bool | None = None,
    address: str | None = None,
) -> DatasetRun:
    """Run ``job`` over the shards of ``source`` on Ray and write one output shard per input shard into
    the folder ``out``. See :func:`genbel.distributed.annotate_dataset` for the arguments."""
    require("ray", extra="distributed", feature="the ray engine (--engine ray)")
    if workers < 1:
        raise ConfigError(Errors.E023.format(value=workers, field="--workers", constraint="at least 1"))
    if batch_docs < 1:
        raise ConfigError(Errors.E023.format(value=batch_docs, field="--batch-docs", constraint="at least 1"))
    out = Path(out)
    inputs = [source] if isinstance(source, str | os.PathLike) else list(source)
    check_output(out, [i for i in inputs if Path(i).exists()], stores=[job.kb], kind="run")
    root, shards = find_shards(source, job.output_format, out)
    if job.folder_input is False and isinstance(source, str | os.PathLike) and Path(source).is_dir():
        job = Job(**{**asdict(job), "folder_input": True})
    kb = job.open_kb()  # its fingerprint goes into the run record; errors here stop before Ray starts
    settings = job.settings(kb.fingerprint())
    done = start_run(out, settings, shards, resume=resume)
    todo = [s for s in shards if s.index not in done]
    by_index = {s.index: s for s in todo}
    t0 = time.perf_counter()
    first: list[float] = []  # seconds and documents at the first shard written
    n_docs = n_mentions = written = 0
    if todo:
        n_docs, n_mentions, written = _run(todo, by_index, out, job, shards, done, workers=workers,
                                           batch_docs=batch_docs, cpus=cpus_per_worker, gpus=gpus_per_worker,
                                           progress=progress, address=address, t0=t0, first=first)
    seconds = time.perf_counter() - t0
    first_s, first_n = first if first else (0.0, 0)
    run = DatasetRun(out, len(shards), written, len(done), n_docs, n_mentions, seconds, workers, first_s, int(first_n))
    finish_run(out, settings, shards, documents=n_docs, mentions=n_mentions, seconds=round(seconds, 3),
               workers=workers, skipped=len(done), first_shard_seconds=round(first_s, 3),
               first_shard_documents=int(first_n))
    logger.info("%s: %d shards written, %d skipped, %d documents in %.1f s", out, written, len(done), n_docs, seconds)
    return run


def _run(
    todo: list[Shard], by_index: dict[int, Shard], out: Path, job: Job, shards: list[Shard], done: set[int],
    *, workers: int, batch_docs: int, cpus: float, gpus: float | None, progress: bool | None, address: str | None,
    t0: float, first: list[float],
) -> tuple[int, int, int]:
    from tqdm import tqdm

    with _ray(address, workers * cpus) as ray:
        from ray.data import ActorPoolStrategy

        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= workers else 0.0
        _check_resources(ray, workers, cpus, gpus)
        _quiet_ray_data(ray)
        ds = _from_items(ray, [asdict(s) for s in todo])
        ds = ds.map_batches(
            ShardWorker,
            fn_constructor_kwargs={"job": job, "threads": max(1, int(cpus)), "batch_docs": batch_docs},
            batch_size=1, compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT),
            num_cpus=cpus, num_gpus=gpus,
        )
        pending: dict[int, dict[int, tuple[str, int]]] = {}
        n_docs = n_mentions = written = 0
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(total=len(shards), initial=len(done), unit="shard", desc="shards", disable=not show,
                   file=sys.stderr)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for i, pos, n, doc, mentions, error, kind in zip(
                    batch["shard"], batch["pos"], batch["n"], batch["doc"], batch["mentions"],
                    batch["error"], batch["error_kind"], strict=True,
                ):
                    shard = by_index[int(i)]
                    if error:
                        _raise(str(error), str(kind), shard)
                    got = pending.setdefault(shard.index, {})
                    got[int(pos)] = (str(doc), int(mentions))
                    if len(got) < int(n):
                        continue
                    docs = [json.loads(got[p][0]) for p in range(int(n))]
                    _write_shard(out, shard, docs, job)
                    del pending[shard.index]
                    written += 1
                    n_docs += len(docs)
                    if not first:
                        first += [time.perf_counter() - t0, len(docs)]
                    n_mentions += sum(m for _, m in got.values())
                    bar.update(1)
                    bar.set_postfix(documents=n_docs, refresh=False)
        except GenbelError:
            raise
        except Exception as e:  # a worker died, ran out of memory, or a bug in a linker: say so, keep the shards
            if not isinstance(e, ray.exceptions.RayError) and type(e).__module__.split(".")[0] != "ray":
                raise
            head = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise GenbelError(Errors.E586.format(
                kind=type(e).__name__, reason=head, done=len(done) + written,
            )) from e
        finally:
            bar.close()
    return n_docs, n_mentions, written
