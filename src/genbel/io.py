"""Atomic writes shared by every writer in genbel (corpora, tries, linkers, results, training runs).

A file or directory is written beside its target under a temporary name and renamed over the
target only when complete, so an error or an interrupt never leaves a half-written output, and a
failed swap puts the old target back. This is genbel's only atomic writer: write through it rather
than renaming temporaries by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "atomic_dir",
    "atomic_directory",
    "atomic_open",
    "atomic_write_json",
    "atomic_write_text",
    "write_json"
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_permissions(root: Path) -> None:
    """Give a finished temporary tree the usual umask-based modes: ``mkdtemp``/``mkstemp`` and
    safetensors create private (0700/0600) entries, which a shipped or shared output must not keep."""
    mask = _umask()
    for q in [root, *root.rglob("*")]:
        if not q.is_symlink():
            os.chmod(q, (0o777 if q.is_dir() else 0o666) & ~mask)


@contextmanager
def atomic_open(path: str | Path, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open a temporary text file beside ``path``; on success it is renamed over ``path``.

    When the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as fh:
            yield fh
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, encoding) as fh:
        fh.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=indent)


def write_json(path: str | Path, obj: Any) -> None:
    """Plain JSON write, for files inside a directory that :func:`atomic_dir` is building."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False)


def atomic_dir(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` and move the result to ``target``.

    The temporary directory lives beside ``target`` (same file system), so the final rename is
    atomic; an existing ``target`` is replaced only after the new content is complete, and a
    failure leaves neither a half-written directory nor a damaged old one behind.
    """
    with atomic_directory(target) as tmp:
        write(tmp)
    return Path(target)


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """The ``with`` form of :func:`atomic_dir`: yield a temporary directory beside ``target`` to fill;
    when the block ends without an error it replaces ``target`` (the old one is put back if the swap
    fails); when it raises, the temporary directory is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    try:
        yield tmp
        _default_permissions(tmp)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing ``target`` is moved aside first and restored if the
    second rename fails."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "x")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old / "x", target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
