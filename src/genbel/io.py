"""Atomic writes shared by every writer in genbel (corpora, tries, linkers, results, training runs).

A file or directory is written beside its target under a temporary name and renamed over the
target only when complete, so an error or an interrupt never leaves a half-written output, and a
failed swap puts the old target back. This is genbel's only atomic writer: write through it rather
than renaming temporaries by hand.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

from genbel.errors import ConfigError, Errors, InputError, OutputError

try:  # POSIX (Linux, macOS); on Windows writers go on without advisory locks
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "atomic_dir",
    "atomic_directory",
    "atomic_open",
    "atomic_write_json",
    "atomic_write_text",
    "check_input_file",
    "check_output",
    "dir_lock",
    "fsync_dir",
    "fsync_file",
    "output_errors",
    "pid_alive",
    "recover_dir",
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

    When the block raises, the temporary file is removed and ``path`` is left as it was. Text that
    cannot be encoded (a lone surrogate from a Python string) raises ``E041`` naming ``path``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as fh:
            yield fh
        os.replace(tmp, p)
    except UnicodeEncodeError as e:
        Path(tmp).unlink(missing_ok=True)
        bad = e.object[e.start:e.end] if isinstance(e.object, str) else ""
        raise OutputError(Errors.E041.format(path=p, encoding=encoding, text=bad, reason=e.reason)) from None
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
    failure leaves neither a half-written directory nor a damaged old one behind. Crash-safe: after
    a kill at any moment either the old or the new directory is at ``target`` (or is put back there
    by the next call, see :func:`recover_dir`), and the next call removes the temporaries of
    killed writers of the same target.
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
    with _dir_lock(target.parent):  # no other writer of this folder is swapping or cleaning up
        _recover(target)
        # the writer's pid in the name: the next writers remove it once this process is gone
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        yield tmp
        _default_permissions(tmp)
        _fsync_tree(tmp)
        with _dir_lock(target.parent):
            trash = _swap_in(tmp, target)
        if trash is not None:  # the old version, removed outside the lock
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, target: Path) -> Path | None:
    """Rename ``tmp`` to ``target`` (under the parent's lock). An existing ``target`` is first renamed
    to the backup ``.<name>.bak`` (restored if the second rename fails, or by the next
    :func:`recover_dir` after a kill), then to a trash name, returned for the caller to remove."""
    if not target.exists():
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return None
    bak = _backup(target)
    os.replace(target, bak)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(bak, target)
        raise
    fsync_dir(target.parent)
    return _to_trash(bak, target)


# ------------------------------------------------------------------ crash recovery and locks
# Names beside a target ``<name>`` written by atomic_directory:
#   .<name>.tmp-PID-XXXX  a directory being written by process PID (stale once PID is gone)
#   .<name>.bak        the previous version during the swap (complete: it is the renamed target)
#   .<name>.del-XXXX   trash: the replaced version, being removed
#   .<name>.old-XXXX   the backup of earlier genbel versions (``.<name>.old-XXXX/x``, complete when
#                      the target is missing after a kill)
_TMP = ".tmp-"
_OLD = ".old-"
_DEL = ".del-"


def _backup(target: Path) -> Path:
    return target.parent / f".{target.name}.bak"


def _to_trash(path: Path, target: Path) -> Path:
    """Rename ``path`` to a trash directory ``.<name>.del-XXXX/x`` (atomic) and return the trash
    directory; a kill while it is being removed leaves trash only, removed by the next writer."""
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}{_DEL}", dir=target.parent))
    os.replace(path, trash / "x")
    return trash


def recover_dir(target: str | os.PathLike) -> bool:
    """Put back the previous version of ``target`` if a writer was killed mid-swap, and remove the
    temporaries that killed writers of ``target`` left beside it. Returns whether a backup was restored.

    Takes the lock of ``target``'s folder, so it is safe while other processes write there.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return False
    with _dir_lock(target.parent):
        return _recover(target)


def _recover(target: Path) -> bool:
    """:func:`recover_dir` with the parent's lock held."""
    restored = False
    bak = _backup(target)
    if bak.exists() or bak.is_symlink():
        if not target.exists():
            os.replace(bak, target)
            restored = True
            logger.warning("%s: restored the previous version (a writer was interrupted mid-swap)", target)
        else:
            shutil.rmtree(_to_trash(bak, target), ignore_errors=True)
    for p in sorted(target.parent.glob(f".{glob.escape(target.name)}{_OLD}*")):
        legacy = p / "x"  # genbel's earlier swap moved the old target to .<name>.old-XXXX/x
        if not target.exists() and legacy.exists():
            os.replace(legacy, target)
            restored = True
            logger.warning("%s: restored the previous version (a writer was interrupted mid-swap)", target)
        shutil.rmtree(p, ignore_errors=True)
    for p in target.parent.glob(f".{glob.escape(target.name)}{_DEL}*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in target.parent.glob(f".{glob.escape(target.name)}{_TMP}*"):
        if p.is_dir() and not p.is_symlink() and _is_stale(p):
            logger.info("removing %s, left by an interrupted writer", p)
            shutil.rmtree(p, ignore_errors=True)
    return restored


def _flock(fd: int, exclusive: bool = True, block: bool = True) -> bool:
    """``flock`` ``fd``; False when ``block`` is False and another process holds the lock. Where file
    locks do not exist (Windows) or the file system refuses them, returns True without locking."""
    if fcntl is None:
        return True
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        return False
    except OSError as e:  # e.g. a file system without flock support
        logger.debug("cannot lock fd %d (%s); going on without a lock", fd, e)
    return True


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _hold(path: Path) -> int | None:
    """Open and lock the directory ``path`` (exclusive, blocking); the descriptor, or None if it
    cannot be opened as a directory (Windows). Close it with :func:`_release`."""
    try:
        fd = _open_dir(path)
    except OSError:
        return None
    _flock(fd)
    return fd


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the last descriptor releases the flock


def _is_stale(path: Path) -> bool:
    """Whether the temporary ``.<name>.tmp-PID-XXXX`` was left by a process that no longer runs
    (a reused pid only delays the clean-up; a name without a pid, from an older genbel, is stale)."""
    pid = path.name.rsplit(_TMP, 1)[-1].split("-", 1)[0]
    return not pid.isdigit() or not pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid == os.getpid() or os.name == "nt":  # (on Windows os.kill would end the process)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists (another user's), or cannot tell: keep its files
        return True
    return True


@contextmanager
def _dir_lock(path: Path) -> Iterator[None]:
    fd = _hold(path)
    try:
        yield
    finally:
        _release(fd)


@contextmanager
def dir_lock(path: str | os.PathLike) -> Iterator[int | None]:
    """Hold an exclusive advisory lock (``flock``) on the existing directory ``path`` while the block
    runs; yields the locked descriptor (None where locks are unavailable). Writers of one directory
    serialise on it; the lock dies with its process, so a killed writer never leaves it held."""
    fd = _hold(Path(path))
    try:
        yield fd
    finally:
        _release(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file to disk (before it is renamed into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames in the directory ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = _open_dir(Path(path))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for q in root.rglob("*"):
        if q.is_file() and not q.is_symlink():
            fsync_file(q)
    fsync_dir(root)


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
