"""The run framework shared by genbel's trainers (generative linkers and dense retrievers).

A run directory looks like::

    run/config.json                     every setting (a resumed run must use the same ones)
    run/log.jsonl                       one JSON row per logged step / epoch / evaluation
    run/checkpoints/<unit>-<n>/         one directory per checkpoint, written atomically, once:
        state.json                      position in training (step, epoch …) and other plain data
        rng.json                        Python, NumPy, torch (and CUDA) random states, as JSON
        <name>.pt                       tensors only (weights, optimizer, scheduler state)

:class:`RunDirectory` prepares the directory (the "different settings" check), writes, lists,
reads and prunes checkpoints and appends to the log; :func:`seed_all`, :func:`rng_state` and
:func:`restore_rng` make runs reproducible and resumable. Checkpoint files are read with
:func:`load_tensors`, which unpickles nothing but tensors and plain containers
(``torch.load(weights_only=True)``): a replaced checkpoint cannot run code on ``--resume``
(``E370``).
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbel.errors import ConfigError, Errors, GenbelError
from genbel.io import atomic_dir, atomic_write_text

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
RNG_FILE = "rng.json"


# ====================================================================== seeding and random states
def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global random states (Python, NumPy, torch, CUDA when available) as plain JSON data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore the random states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ====================================================================== safe tensor files
def save_tensors(path: str | Path, obj: Any) -> None:
    """Write tensors (or plain containers of tensors, numbers and strings: a state dict, an
    optimizer's state) to ``path`` with ``torch.save``."""
    torch.save(obj, path)


def load_tensors(path: str | Path) -> Any:
    """Read a file written by :func:`save_tensors`, on the CPU, unpickling nothing but tensors and
    plain data (``weights_only=True``). A file that holds anything else (e.g. an object whose
    unpickling would run code) is refused with ``E370`` before any of it is executed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        raise ConfigError(Errors.E370.format(path=path, reason=_short_reason(reason))) from None


def _short_reason(lines: list[str]) -> str:
    for line in lines:  # torch explains at length; keep what names the object found, not its advice
        if "unsupported" in line.lower():  # to allowlist it, which is what must not be done here
            return line.split(" Please use")[0].strip().rstrip(".")
    return lines[0].strip() if lines else "not a weights-only file"


# ====================================================================== settings
def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any], free: Iterable[str] = ()) -> list[str]:
    """Sorted names of the settings whose values differ, except those in ``free`` (settings that
    do not change the result, e.g. how often to log)."""
    skip = set(free)
    return sorted(k for k in set(old) | set(new) if k not in skip and old.get(k) != new.get(k))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(Errors.E016.format(path=path, reason=f"cannot parse: {e}")) from e


# ====================================================================== checkpoints
@dataclass
class Checkpoint:
    """A checkpoint directory and its ``state.json``."""

    path: Path
    number: int
    state: dict[str, Any]

    def tensors(self, name: str) -> Any:
        """The content of ``<name>.pt`` (tensors and plain data only, see :func:`load_tensors`)."""
        return load_tensors(self.path / f"{name}.pt")

    def restore_rng(self, rank: int = 0, world_size: int = 1) -> None:
        """Restore the random states saved with the checkpoint (``E351`` when they are missing, as
        in a checkpoint of an older genbel, which kept them in a pickle: such a run cannot resume).

        Rank ``r > 0`` of a run with several processes restores its own states (``rng-rank<r>.json``);
        a checkpoint written by fewer processes has none for it, and rank 0's are used (``E595``,
        logged)."""
        f = self.path / RNG_FILE
        if not f.is_file():
            raise ConfigError(Errors.E351.format(
                path=self.path, reason=f"{RNG_FILE} is missing (a checkpoint of an older genbel?); start a new run"
            ))
        own = self.path / rank_rng_file(rank)
        if rank > 0 and own.is_file():
            f = own
        elif rank > 0:
            found = int(self.state.get("world_size", 1))
            logger.warning(Errors.E595.format(path=self.path, found=found, rank=rank, world=world_size))
        restore_rng(_read_json(f))


def rank_rng_file(rank: int) -> str:
    """The random-state file of rank ``rank`` in a checkpoint (rank 0's is :data:`RNG_FILE`)."""
    return RNG_FILE if rank == 0 else f"rng-rank{rank}.json"


class RunDirectory:
    """A training run directory: settings, log and numbered checkpoints ``<unit>-<n>``.

    ``unit`` names what a checkpoint counts (``step``, ``epoch``); ``digits`` zero-pads the number
    (``step-0000100``) so that names sort like numbers.
    """

    def __init__(self, path: str | Path, *, unit: str = "step", digits: int = 0) -> None:
        self.path = Path(path)
        self.unit = unit
        self.digits = int(digits)
        self._name_re = re.compile(rf"^{re.escape(unit)}-(\d+)$")

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    # ------------------------------------------------------------------ settings
    def start(
        self,
        settings: Mapping[str, Any],
        *,
        resume: bool,
        free: Iterable[str] = (),
        read_settings: Callable[[Path], Mapping[str, Any]] | None = None,
        restart: bool = False,
        resume_needs_checkpoint: bool = True,
    ) -> None:
        """Prepare the directory for a run with ``settings`` and record them in ``config.json``.

        With ``resume``, the recorded settings must equal ``settings`` except for ``free``
        (``E352``), and unless ``resume_needs_checkpoint`` is False there must be a checkpoint
        (``E350``). Without it, a directory that already holds checkpoints is refused (``E352``),
        or with ``restart`` its checkpoints and log are removed and the run starts over.
        ``read_settings`` reads a recorded ``config.json`` for the comparison (default: as JSON).
        """
        cfg_file = self.path / CONFIG_FILE
        if resume:
            if resume_needs_checkpoint and not self.checkpoints():
                raise ConfigError(Errors.E350.format(path=self.path))
            if cfg_file.is_file():
                old = (read_settings or _read_json)(cfg_file)
                diff = settings_differences(old, settings, free)
                if diff:
                    raise ConfigError(Errors.E352.format(path=self.path, fields=", ".join(diff)))
        elif not restart and self.checkpoints():
            raise ConfigError(Errors.E352.format(
                path=self.path, fields="the directory already holds checkpoints; pass --resume to continue"
            ))
        if not resume and restart:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            (self.path / LOG_FILE).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg_file, json.dumps(dict(settings), indent=2, default=str) + "\n")

    # ------------------------------------------------------------------ log
    def log(self, **row: Any) -> None:
        """Append one JSON row to ``log.jsonl``."""
        with open(self.path / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, number: int) -> Path:
        return self.checkpoint_dir / f"{self.unit}-{number:0{self.digits}d}"

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint directories (with ``state.json``), oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.checkpoint_dir.iterdir()
            if (m := self._name_re.match(p.name)) and (p / STATE_FILE).is_file()
        ]
        return [p for _, p in sorted(found)]

    def read_checkpoint(self, path: str | Path) -> Checkpoint:
        """The checkpoint at ``path`` (``E351`` when its ``state.json`` is unreadable)."""
        path = Path(path)
        m = self._name_re.match(path.name)
        try:
            state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(Errors.E351.format(path=path, reason=str(e))) from e
        return Checkpoint(path, int(m.group(1)) if m else -1, state)

    def last_checkpoint(self) -> Checkpoint | None:
        """The newest complete checkpoint, or ``None``."""
        cks = self.checkpoints()
        return self.read_checkpoint(cks[-1]) if cks else None

    def write_checkpoint(
        self,
        number: int,
        state: Mapping[str, Any],
        tensors: Mapping[str, Any] | None = None,
        write: Callable[[Path], None] | None = None,
        rng_states: Sequence[Mapping[str, Any]] | None = None,
    ) -> Path:
        """Write checkpoint ``number`` atomically: ``write(dir)`` (e.g. a saved model), each of
        ``tensors`` as ``<name>.pt``, the random states and ``state.json``.

        ``rng_states`` are the random states of every rank of a run with several processes (rank
        order, from :meth:`genbel.training.distributed.DistContext.rng_states`); by default this
        process's."""

        def build(d: Path) -> None:
            if write is not None:
                write(d)
            for name, obj in (tensors or {}).items():
                save_tensors(d / f"{name}.pt", obj)
            for rank, st in enumerate(rng_states or [rng_state()]):
                (d / rank_rng_file(rank)).write_text(json.dumps(st), encoding="utf-8")
            (d / STATE_FILE).write_text(json.dumps(dict(state), indent=1), encoding="utf-8")

        return atomic_dir(self.checkpoint_path(number), build)

    def prune(self, keep: int, protect: Iterable[str | None] = ()) -> None:
        """Remove all checkpoints but the ``keep`` newest and those named in ``protect``."""
        cks = self.checkpoints()
        kept = set(cks[-keep:]) if keep > 0 else set()
        names = {p for p in protect if p}
        for p in cks:
            if p not in kept and p.name not in names:
                shutil.rmtree(p, ignore_errors=True)


def load_checkpoint_safely(fn: Callable[[], Any], path: Path) -> Any:
    """Run ``fn`` (reads of a checkpoint); turn I/O and format errors into ``E351``, keeping
    genbel's own coded errors (such as ``E370``) as they are."""
    try:
        return fn()
    except GenbelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise ConfigError(Errors.E351.format(path=path, reason=str(e))) from e


__all__ = [
    "CHECKPOINTS",
    "CONFIG_FILE",
    "LOG_FILE",
    "RNG_FILE",
    "STATE_FILE",
    "Checkpoint",
    "RunDirectory",
    "load_checkpoint_safely",
    "load_tensors",
    "rank_rng_file",
    "restore_rng",
    "rng_state",
    "save_tensors",
    "seed_all",
    "settings_differences",
]
