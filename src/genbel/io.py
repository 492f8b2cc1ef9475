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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

from genbel.errors import ConfigError, Errors, InputError, OutputError

__all__ = [
    "atomic_dir",
    "atomic_directory",
    "atomic_open",
    "atomic_write_json",
    "atomic_write_text",
    "check_input_file",
    "check_output",
    "output_errors",
    "write_json",
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


# ----------------------------------------------------------------------------- output checks
def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: equal resolved paths (symlinks), or the same inode
    (hard links) when both exist."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    """Whether ``child`` lies strictly inside the directory ``parent`` (after resolving symlinks)."""
    c, p = child.resolve(), parent.resolve()
    return c != p and c.is_relative_to(p)


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    *,
    stores: Iterable[str | os.PathLike | None] = (),
    kind: Literal["file", "dir", "run"] = "file",
    option: str = "--out",
) -> Path:
    """Check, before any work, that ``path`` can be written as an output and overwrites no input.

    ``inputs`` are the files and directories the command reads (``None`` and names that are no path,
    such as ``default``, are harmless); ``stores`` are input directories that are one unit, such as a
    KB store (nothing may be written inside them; they count as inputs too). ``kind`` is what is
    written at ``path``: ``file`` (one file,
    replaced atomically), ``dir`` (a directory replaced as a whole, e.g. a KB store) or ``run`` (a
    directory written into and resumed, e.g. a training run). Raises

    * E451 when ``path`` is an input (also through a symlink or a hard link), lies inside a store,
      or (``dir``) holds an input that replacing it would delete;
    * E452 when a ``file`` output is an existing directory;
    * E453 when ``path`` (``dir``/``run``: an existing file) or its folder cannot be written: the
      nearest existing parent is a file or is not writable.

    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    out = Path(path)
    stores = [s for s in stores if s is not None and str(s) != ""]
    for raw in [*inputs, *stores]:
        if raw is None or str(raw) == "":
            continue
        inp = Path(raw)
        if (
            _same(out, inp)
            or (raw in stores and inp.is_dir() and _inside(out, inp))
            or (kind == "dir" and _inside(inp, out))
        ):
            raise ConfigError(Errors.E451.format(path=out, option=option, input=inp))
    if kind == "file" and out.is_dir():
        raise OutputError(Errors.E452.format(path=out, option=option))
    if kind != "file" and out.exists() and not out.is_dir():
        raise OutputError(Errors.E453.format(path=out, option=option, reason="it is a file, not a directory"))
    if out.exists() and not os.access(out, os.W_OK):
        raise OutputError(Errors.E453.format(path=out, option=option, reason="permission denied"))
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(
            Errors.E453.format(path=out, option=option, reason=f"{parent} is a file, not a folder")
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            Errors.E453.format(path=out, option=option, reason=f"the folder {parent} is not writable")
        )
    return out


@contextmanager
def output_errors(path: str | os.PathLike, option: str = "--out") -> Iterator[None]:
    """Turn an :class:`OSError` raised while writing ``path`` (disk full, permission denied, a path
    component that is a file …) into :class:`~genbel.errors.OutputError` E453 naming ``path``."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if e.filename is not None and Path(e.filename) != Path(path):
            reason = f"{reason} ({e.filename})"
        raise OutputError(Errors.E453.format(path=path, option=option, reason=reason)) from e


def check_input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is an existing file; E006 when it does not exist,
    E454 when it is a directory."""
    p = Path(path)
    if p.is_dir():
        raise InputError(Errors.E454.format(path=p, what=what))
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    return p
