"""Atomic file and directory writes used by the trainer and the synthetic-data generator."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temp file next to ``path`` and rename it over ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _default_permissions(Path(tmp))
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_permissions(root: Path) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the result the usual umask-based modes."""
    umask = os.umask(0)
    os.umask(umask)
    for q in [root, *root.rglob("*")]:
        os.chmod(q, (0o777 if q.is_dir() else 0o666) & ~umask)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory next to ``path``; on success it replaces ``path``.

    Nothing half-written is left behind: on an error the temp directory is removed.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
    try:
        yield tmp
        _default_permissions(tmp)
        if p.exists():
            old = p.parent / f".{p.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            p.rename(old)
            tmp.rename(p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
