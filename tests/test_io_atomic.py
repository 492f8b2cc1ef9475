"""genbel.io.atomic_dir under kills and concurrent writers, with real processes (issue 14, item 3): after
a kill at any moment the old or the new directory is at the target (put back by the next call if the
kill fell between the two renames), stale temporaries are removed, and two writers do not collide."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import genbel
from genbel.io import atomic_dir, atomic_directory, recover_dir

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

SRC = str(Path(genbel.__file__).resolve().parents[1])
N_FILES = 40

# argv: target, tag, seconds, kill_at (SIGKILL itself right after its kill_at-th rename into the folder)
_CHILD = r"""
import json, os, signal, sys, time
from genbel.io import atomic_dir

target, tag, seconds, kill_at = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
if kill_at:
    real, calls = os.replace, [0]
    def replace(src, dst):
        real(src, dst)
        if os.path.dirname(os.path.abspath(dst)) == os.path.dirname(os.path.abspath(target)):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace

def write(d, token):
    for i in range(N_FILES):
        (d / f"part{i:03d}.txt").write_text(token * 2000)
    (d / "done.txt").write_text(token)

print("ready", flush=True)
end, i, saves, failures = time.time() + seconds, 0, 0, []
while True:
    token = f"{tag}{i}."
    try:
        atomic_dir(target, lambda d: write(d, token))
        saves += 1
    except Exception as e:
        failures.append(repr(e))
    i += 1
    if time.time() >= end:
        break
print(json.dumps({"saves": saves, "failures": failures[:5], "n_failures": len(failures)}))
""".replace("N_FILES", str(N_FILES))


def _child(target: Path, tag: str, seconds: float = 0.0, kill_at: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(target), tag, str(seconds), str(kill_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _write(d: Path, token: str) -> None:
    for i in range(N_FILES):
        (d / f"part{i:03d}.txt").write_text(token * 2000)
    (d / "done.txt").write_text(token)


def _assert_whole(d: Path) -> str:
    """Every file of one version: the ``done.txt`` token and all parts written with it."""
    token = (d / "done.txt").read_text()
    parts = sorted(d.iterdir())
    assert len(parts) == N_FILES + 1
    assert all(p.read_text() == token * 2000 for p in parts if p.name != "done.txt")
    return token


def _assert_clean(target: Path) -> None:
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_atomic_dir_replaces_and_keeps_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out"
    atomic_dir(target, lambda d: _write(d, "one."))
    with atomic_directory(target) as d:
        _write(d, "two.")
    assert _assert_whole(target) == "two."
    _assert_clean(target)
    with pytest.raises(RuntimeError), atomic_directory(target) as d:
        _write(d, "three.")
        raise RuntimeError("failed")
    assert _assert_whole(target) == "two."
    _assert_clean(target)


def test_kill_between_the_two_renames(tmp_path: Path) -> None:
    """Killed after moving the old directory aside and before moving the new one in: the target is
    missing for a moment, the next call (or :func:`recover_dir`) puts the old one back whole."""
    target = tmp_path / "out"
    atomic_dir(target, lambda d: _write(d, "old."))
    proc = _child(target, "new", kill_at=1)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())  # the killed writer's new version
    assert recover_dir(target) is True
    assert _assert_whole(target) == "old."
    _assert_clean(target)  # its writer is gone: removed
    atomic_dir(target, lambda d: _write(d, "next."))
    assert _assert_whole(target) == "next."
    _assert_clean(target)


def test_kill_at_random_moments(tmp_path: Path) -> None:
    """A writer rewriting a directory is SIGKILLed at seeded random moments: afterwards a whole version
    is at the target (after recovery), and after the next write no temporary is left."""
    rng = random.Random(7)
    target = tmp_path / "out"
    atomic_dir(target, lambda d: _write(d, "first."))
    for _ in range(5):
        proc = _child(target, "k", seconds=30)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        backup = tmp_path / ".out.bak"
        assert target.is_dir() or backup.is_dir()  # one of them holds a whole version
        recover_dir(target)
        _assert_whole(target)
    atomic_dir(target, lambda d: _write(d, "last."))
    assert _assert_whole(target) == "last."
    _assert_clean(target)


def test_two_writers(tmp_path: Path) -> None:
    """Two processes rewrite one directory for ~2 s: no write fails and the result is whole."""
    target = tmp_path / "out"
    procs = [_child(target, tag, seconds=2) for tag in ("x", "y")]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        r = json.loads(out.strip().splitlines()[-1])
        assert r["n_failures"] == 0, r["failures"]
        assert r["saves"] >= 2
    assert _assert_whole(target)[0] in "xy"
    _assert_clean(target)


def test_leftovers_of_earlier_versions_are_restored_or_removed(tmp_path: Path) -> None:
    """The earlier swap (``.<name>.old-XXXX/x``) killed mid-way left the target only aside: restored;
    temporaries without a live writer are removed, those of a live process are kept."""
    target = tmp_path / "out"
    aside = tmp_path / ".out.old-abc123"
    aside.mkdir()
    (aside / "x").mkdir()
    _write(aside / "x", "legacy.")
    (tmp_path / ".out.tmp-zz9y8x").mkdir()  # an earlier genbel's temporary (no pid in the name)
    live = tmp_path / f".out.tmp-{os.getpid()}-live"
    live.mkdir()
    assert recover_dir(target) is True
    assert _assert_whole(target) == "legacy."
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]
