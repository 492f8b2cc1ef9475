"""The record of a distributed run in its output folder, and which shards a resumed run skips.

``OUT/_genbel_run.json`` holds the run's settings (command, KB fingerprint, linker, detector, k, formats
…), each input shard's size and modification time, and whether the run finished. Output shards are
written atomically (:mod:`genbel.io`), so an output shard that exists is complete. With ``resume``, a
shard is skipped when its output exists and its input is unchanged since the recorded run; a run
with other settings is refused (E456), as ``genbel link --resume`` refuses another run's partial output.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genbel.distributed.shards import Shard
from genbel.errors import Errors, InputError
from genbel.io import atomic_write_json, output_errors
from genbel.textio import read_json

logger = logging.getLogger(__name__)

__all__ = ["RUN_FILE", "finish_run", "start_run"]

#: the run record in the output folder
RUN_FILE = "_genbel_run.json"
_KEY = "genbel_distributed_run"


def _stat(shard: Shard) -> dict[str, int]:
    st = os.stat(shard.path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record(settings: Mapping[str, Any], shards: Sequence[Shard], **extra: Any) -> dict[str, Any]:
    return {_KEY: {
        "settings": json.loads(json.dumps(dict(settings))),  # the form it is read back in
        "shards": {s.rel: {"out": s.out, **_stat(s)} for s in shards},
        **extra,
    }}


def _exists(path: Path) -> bool:
    return path.is_file() or path.is_dir()


def start_run(
    out: str | Path, settings: Mapping[str, Any], shards: Sequence[Shard], *, resume: bool = False
) -> set[int]:
    """Write the run record into the output folder ``out`` (created) and return the indexes of the
    shards to skip: with ``resume``, those whose output exists and whose input is unchanged since the
    recorded run (E456 when that run had other settings); without it, none (existing output shards
    are replaced, each atomically, as they are done)."""
    out = Path(out)
    path = out / RUN_FILE
    done: set[int] = set()
    if resume and path.is_file():
        old = read_json(path, expect=dict).get(_KEY)
        if not isinstance(old, dict):
            raise InputError(Errors.E456.format(path=path, reason="not the record of a genbel distributed run"))
        now = json.loads(json.dumps(dict(settings)))
        before = old.get("settings", {})
        diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if diff:
            raise InputError(Errors.E456.format(
                path=path, reason=f"it was written with other settings ({', '.join(diff)})"
            ))
        recorded = old.get("shards", {})
        for s in shards:
            if not _exists(out / s.out):
                continue
            if recorded.get(s.rel) == {"out": s.out, **_stat(s)}:
                done.add(s.index)
            else:
                logger.warning("%s changed since its output %s was written: annotating it again", s.path, s.out)
        logger.info("%s: resuming, %d of %d shards already done", out, len(done), len(shards))
    elif resume:
        logger.info("%s: no earlier run to resume; starting from the first shard", path)
    else:
        existing = sum(_exists(out / s.out) for s in shards)
        if existing:
            logger.warning("%s: replacing %d output shards of an earlier run (--resume keeps them)", out, existing)
    with output_errors(path):
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, _record(settings, shards, complete=False))
    return done


def finish_run(out: str | Path, settings: Mapping[str, Any], shards: Sequence[Shard], **totals: Any) -> None:
    """Mark the run complete in its record, with ``totals`` (documents, mentions, seconds …)."""
    path = Path(out) / RUN_FILE
    with output_errors(path):
        atomic_write_json(path, _record(settings, shards, complete=True, **totals))
