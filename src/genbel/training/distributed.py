"""Several training processes (one per CPU share or GPU) with ``torchrun`` and DistributedDataParallel.

genbel's trainers (``genbel train``, ``genbel train-retriever``) run unchanged under ``torchrun``::

    torchrun --nproc_per_node 2 -m genbel.cli.main train ...      # or: genbel train --nproc 2 ...

:func:`setup` reads the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), joins the process group (NCCL when the rank has a GPU, gloo on
CPUs) and returns a :class:`DistContext`; without that environment it returns the one-process
context, whose methods do nothing, so the trainers have one code path.

What the trainers do with it, so that a run with ``N`` processes is the one-process run with the
same **global** batch:

* every rank builds the same data and the same global batches (seeded samplers), and trains on its
  contiguous share of each batch (:meth:`DistContext.shard`; ``batch_size`` must be a multiple of
  ``N``, ``E590``); the number of optimizer steps and the learning-rate schedule do not change;
* the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (:meth:`DistContext.wrap`),
  which averages the gradients; losses that are means over the global batch are scaled so that this
  average is the one-process gradient (see the trainers);
* in-batch negatives (retriever losses) see the whole global batch: :meth:`DistContext.gather`
  all-gathers embeddings with their gradient (``torch.distributed.nn.functional.all_gather``);
* the settings and the data are compared across ranks before training (``E591``, ``E592``);
* rank 0 alone writes the run directory, logs, checkpoints and the final model
  (:meth:`DistContext.on_main` runs a write there and gives its error, if any, to every rank, so
  no rank waits forever for a rank that failed); every rank's random state is kept in the
  checkpoint (:meth:`DistContext.rng_states`) and each rank resumes from the same checkpoint with
  its own.

:func:`launch` re-starts the current command under ``torch.distributed.run`` (torchrun's
library form) for ``--nproc N``.
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from genbel.errors import ConfigError, Errors, GenbelError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: environment variables torchrun sets for each worker
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    # ------------------------------------------------------------------ facts
    @property
    def enabled(self) -> bool:
        """True with two or more processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and shows progress."""
        return self.rank == 0

    def device(self, requested: str = "auto") -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` on GPUs, else the CPU (``requested`` as
        ``auto``/``cpu``/``cuda``)."""
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        if requested.startswith("cuda") and self.enabled:
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)

    # ------------------------------------------------------------------ data
    def per_rank(self, batch_size: int, what: str = "batch_size") -> int:
        """Examples per rank in a global batch of ``batch_size`` (``E590`` unless it divides)."""
        if batch_size % self.world_size:
            raise ConfigError(Errors.E590.format(
                field=what, value=batch_size, world=self.world_size,
                lower=batch_size - batch_size % self.world_size or self.world_size,
                upper=batch_size + self.world_size - batch_size % self.world_size,
            ))
        return batch_size // self.world_size

    def shard_bounds(self, n: int) -> tuple[int, int]:
        """``(start, end)`` of this rank's contiguous share of ``n`` items (the shares of ranks
        ``0 … N-1`` follow one another; the first ``n mod N`` ranks get one more)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def shard(self, items: Sequence[T]) -> Sequence[T]:
        """This rank's contiguous share of a global batch (:meth:`shard_bounds`)."""
        lo, hi = self.shard_bounds(len(items))
        return items[lo:hi]

    # ------------------------------------------------------------------ model
    def wrap(self, model: torch.nn.Module, find_unused: bool = False) -> torch.nn.Module:
        """The model in :class:`DistributedDataParallel` (the model itself with one process).
        Parameters frozen before the call are left out of the gradient exchange; ``find_unused``
        for models with trainable parameters the loss does not reach (a BERT pooler under mean
        pooling). Call the wrapper once per optimizer step (one forward pass, one backward)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        dev = next(model.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        # buffers (rotary frequencies, position ids) are equal on every rank: no exchange per forward
        return DistributedDataParallel(
            model, device_ids=ids, forward_sync_buffers=False, find_unused_parameters=find_unused
        )

    def average_grad(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average the gradients of ``params`` that live outside the wrapped model over the ranks
        (what DistributedDataParallel does for the model's)."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world_size

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape on all ranks), rank order, **with gradient**: the
        backward pass sums the gradients every rank's loss gives each piece and returns the sum to
        the rank that owns it."""
        if not self.enabled:
            return [tensor]
        import warnings

        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():
            # torch suggests its private _functional_collectives instead, whose backward needs a
            # reduce-scatter that gloo lacks; this one sums the gradients through all-to-all on gloo
            warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
            return list(all_gather(tensor))

    def gather_padded(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`gather` for pieces whose first dimension differs across ranks (a short last batch):
        each is padded to the longest for the exchange and cut back; gradients flow as in :meth:`gather`."""
        if not self.enabled:
            return [tensor]
        sizes = self.all_gather_object(int(tensor.shape[0]))
        most = max(sizes)
        pad = tensor.new_zeros((most - tensor.shape[0], *tensor.shape[1:]))
        full = self.gather(torch.cat([tensor, pad]) if len(pad) else tensor)
        return [t[:n] for t, n in zip(full, sizes)]

    # ------------------------------------------------------------------ collectives
    def all_sum(self, value: float | torch.Tensor) -> float:
        """The sum of ``value`` over ranks (a plain number, no gradient)."""
        if not self.enabled:
            return float(value)
        t = torch.tensor(float(value), dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t)
        return float(t)

    def _comm_device(self) -> torch.device:
        """Where tensors exchanged by the process group live: NCCL exchanges GPU tensors only."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def all_gather_object(self, obj: T) -> list[T]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 (e.g. a write) and give its result to every rank; a genbel error
        raised there is raised on every rank (the others would otherwise wait for rank 0 forever)."""
        if not self.enabled:
            return fn()
        result: Any = None
        failure: tuple[str, str] | None = None
        if self.is_main:
            try:
                result = fn()
            except GenbelError as e:
                failure = (type(e).__name__, str(e))
                err = e
            except Exception as e:  # noqa: BLE001 - the other ranks learn of it, then it is raised here
                failure = ("RuntimeError", f"{type(e).__name__}: {e}")
                err = e
        result, failure = self.broadcast((result, failure))
        if failure is not None:
            if self.is_main:
                raise err
            raise _rebuild(*failure)
        return result

    # ------------------------------------------------------------------ checks
    def check_same(self, what: str, values: Mapping[str, Any]) -> None:
        """``values`` (settings or a data summary) must be equal on every rank: ``E591`` for
        ``what="settings"``, ``E592`` for anything else, naming the fields that differ."""
        if not self.enabled:
            return
        mine = json.loads(json.dumps(dict(values), sort_keys=True, default=str))
        every = self.all_gather_object(mine)
        diff = sorted({k for other in every for k in set(other) | set(mine) if other.get(k) != mine.get(k)})
        if diff:
            shown = "; ".join(
                f"{k}: " + ", ".join(f"rank {r}={every[r].get(k)!r}" for r in range(self.world_size))
                for k in diff[:3]
            )
            code = Errors.E591 if what == "settings" else Errors.E592
            raise ConfigError(code.format(what=what, fields=shown))

    def rng_states(self) -> list[dict[str, Any]]:
        """Every rank's random states (:func:`genbel.training.run.rng_state`), rank order, on every rank."""
        from genbel.training.run import rng_state

        return self.all_gather_object(rng_state())


def _rebuild(kind: str, message: str) -> Exception:
    """An error raised on rank 0, re-raised on another rank with the same class and message."""
    todo, known = [GenbelError], {}
    while todo:  # GenbelError and its subclasses by name
        c = todo.pop()
        known[c.__name__] = c
        todo.extend(c.__subclasses__())
    cls = known.get(kind)
    if cls is not None:
        return cls(message)
    return RuntimeError(f"rank 0 failed: {message}")


# ====================================================================== set-up
_CONTEXT: DistContext | None = None


def under_torchrun() -> bool:
    """True when the environment of a torchrun worker is set (``WORLD_SIZE`` and ``RANK``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(Errors.E593.format(reason=f"{name} is not set"))
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(Errors.E593.format(reason=f"{name}={raw!r} is not a whole number")) from None


def setup(device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """The context of this process: the one-process context outside torchrun; under torchrun the
    process group is joined (once; NCCL for GPU ranks, gloo otherwise) and destroyed at exit."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    if not under_torchrun():
        return DistContext()
    world, rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    local = _env_int("LOCAL_RANK", rank)
    if not 0 <= rank < world:
        raise ConfigError(Errors.E593.format(reason=f"RANK={rank} is not in 0..WORLD_SIZE-1={world - 1}"))
    if world == 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    import torch.distributed as dist

    if not dist.is_available():
        raise ConfigError(Errors.E593.format(reason="this torch build has no torch.distributed"))
    gpu = (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda")
    backend = "nccl" if gpu else "gloo"
    if gpu:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ConfigError(Errors.E593.format(reason="MASTER_ADDR is not set"))
        _env_int("MASTER_PORT")
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        atexit.register(_teardown)
    _CONTEXT = DistContext(rank=rank, world_size=world, local_rank=local, backend=dist.get_backend())
    logger.info("rank %d of %d (local %d) joined the %s process group", rank, world, local, _CONTEXT.backend)
    return _CONTEXT


def _teardown() -> None:
    global _CONTEXT
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = None


def teardown() -> None:
    """Leave the process group (if this module joined one); :func:`setup` may be called again."""
    _teardown()


# ====================================================================== re-launch
def strip_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == option:
            skip = True
            continue
        if a.startswith(option + "="):
            continue
        out.append(a)
    return out


def launch(nproc: int, argv: Sequence[str] | None = None, module: str = "genbel.cli.main") -> int:
    """Run ``python -m module ARGV`` in ``nproc`` processes under ``torch.distributed.run`` (torchrun on
    this machine, a free port); ``--nproc`` is removed from ``argv`` (default: this command's
    arguments). Returns the exit code (0 when every rank succeeded)."""
    if nproc < 1:
        raise ConfigError(Errors.E594.format(value=nproc, reason="must be >= 1"))
    if under_torchrun():
        raise ConfigError(Errors.E594.format(
            value=nproc, reason="this process already runs under torchrun; leave --nproc out"
        ))
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = strip_option(list(sys.argv[1:] if argv is None else argv), "--nproc")
    cmd = ["--standalone", "--nnodes", "1", "--nproc_per_node", str(nproc), "-m", module, *args]
    logger.info("launching %d processes: torchrun %s", nproc, " ".join(cmd))
    try:
        torchrun.main(cmd)
    except ChildFailedError as e:
        codes = sorted({f.exitcode for f in e.failures.values()})
        logger.error("training process(es) %s failed (exit code %s); the error is printed above",
                     ", ".join(str(r) for r in sorted(e.failures)), "/".join(map(str, codes)))
        return max((c for c in codes if c and c > 0), default=1)
    return 0


__all__ = [
    "ENV_VARS",
    "DistContext",
    "launch",
    "setup",
    "strip_option",
    "teardown",
    "under_torchrun",
]
