"""The KB store under kills and concurrent use, with real processes (issue 14, item 3), and the content
check (item 7): whatever moment a writer is killed at, the directory holds one whole KB; readers never
see a mix of two versions; writers of one directory do not collide; an edited field is noticed."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import genbel
from genbel.errors import KBError
from genbel.kb import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.store import DB_FILE, META_FILE, META_TABLE, read_meta
from tests.helpers import raises_code

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")

SRC = str(Path(genbel.__file__).resolve().parents[1])

# A child process: build KB "a" or "b" (the same synthetic recipe as _kb below) and save it to a folder.
# argv: target, mode ("loop-alternate" | "loop-a" | "loop-b" | "once-b" | "read"), seconds, kill_at_replace
_CHILD = r"""
import json, os, signal, sys, time
from genbel.kb import KnowledgeBase
from genbel.kb.concept import Concept

def make(which, n):
    return KnowledgeBase([Concept(f"{which.upper()}{i:06d}", f"{which} name {i}", [f"{which} syn {i}", f"x {i}"],
                                  alt_ids=[f"ALT:{which}{i}"], semantic_groups=["Disorders" if which == "a" else "Chemicals & Drugs"])
                          for i in range(n)], name=which)

target, mode, seconds, kill_at = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
n = int(os.environ.get("N_CONCEPTS", "2000"))
if kill_at:  # SIGKILL this process right after its kill_at-th rename into the target folder
    real, calls = os.replace, [0]
    def replace(src, dst):
        real(src, dst)
        if os.path.dirname(os.path.abspath(dst)) == os.path.abspath(target):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
if mode == "read":
    fps, failures, end = {}, [], time.time() + seconds
    while time.time() < end:
        try:
            kb = KnowledgeBase.load(target)
            key = kb.name + ":" + kb.content_fingerprint()
            fps[key] = fps.get(key, 0) + 1
        except Exception as e:  # every failed read is counted
            failures.append(repr(e))
    print(json.dumps({"reads": fps, "failures": failures[:5], "n_failures": len(failures)}))
    sys.exit(0)
kbs = {w: make(w, n) for w in "ab"}
print("ready", flush=True)
end, i, saves, failures = time.time() + seconds, 0, 0, []
while True:
    which = {"loop-alternate": "ab"[i % 2], "loop-a": "a", "loop-b": "b", "once-b": "b"}[mode]
    try:
        kbs[which].save(target)
        saves += 1
    except Exception as e:
        failures.append(repr(e))
    i += 1
    if mode == "once-b" or time.time() >= end:
        break
print(json.dumps({"saves": saves, "failures": failures[:5], "n_failures": len(failures)}))
"""


def _kb(which: str, n: int = 2000) -> KnowledgeBase:
    grp = "Disorders" if which == "a" else "Chemicals & Drugs"
    return KnowledgeBase([Concept(f"{which.upper()}{i:06d}", f"{which} name {i}", [f"{which} syn {i}", f"x {i}"],
                                  alt_ids=[f"ALT:{which}{i}"], semantic_groups=[grp]) for i in range(n)], name=which)


def _child(target: Path, mode: str, seconds: float = 0.0, kill_at: int = 0, n: int = 2000) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "N_CONCEPTS": str(n)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(target), mode, str(seconds), str(kill_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _result(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _versions() -> dict[str, str]:
    return {w: f"{w}:{_kb(w).content_fingerprint()}" for w in "ab"}


def _assert_whole(target: Path) -> str:
    """The KB at ``target`` loads (both fingerprints checked) and is one of the two versions."""
    kb = KnowledgeBase.load(target)
    key = f"{kb.name}:{kb.content_fingerprint()}"
    assert key in _versions().values()
    return kb.name


def _assert_clean(target: Path) -> None:
    """Only the KB files inside ``target`` and nothing of its writers beside it."""
    assert sorted(p.name for p in target.iterdir()) == [DB_FILE, META_FILE]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


# ------------------------------------------------------------------ kills
@pytest.mark.parametrize("kill_at", [1, 2])
def test_kill_between_and_after_the_renames(tmp_path: Path, kill_at: int) -> None:
    """A writer SIGKILLed right after renaming kb.sqlite (1: meta.json is still the old one's) or after
    both renames (2: before removing its temporary): the folder holds one whole KB, read consistently."""
    target = tmp_path / "kb"
    _kb("a").save(target)
    proc = _child(target, "once-b", kill_at=kill_at)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert _assert_whole(target) == "b"  # kb.sqlite is b's: its own copy of meta.json is used
    if kill_at == 1:
        assert read_meta(target)["name"] == "a"  # meta.json was not renamed yet
    assert any(p.name.startswith(".tmp-") for p in target.iterdir())  # the killed writer's folder
    _kb("a").save(target)  # the next writer removes it
    assert _assert_whole(target) == "a"
    _assert_clean(target)


def test_kill_at_random_moments(tmp_path: Path) -> None:
    """A writer saving two KBs in turn is SIGKILLed at seeded random moments: each time the previous or
    the new KB loads whole, and after the next successful save no temporary is left."""
    rng = random.Random(14)
    target = tmp_path / "kb"
    _kb("a").save(target)
    for _ in range(4):
        proc = _child(target, "loop-alternate", seconds=30)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        _assert_whole(target)
    _kb("b").save(target)
    assert _assert_whole(target) == "b"
    _assert_clean(target)


def test_leftovers_of_the_earlier_swap_are_cleaned_or_restored(tmp_path: Path) -> None:
    """genbel's earlier directory swap, killed, left ``.kb.tmp-*`` / ``.kb.old-*`` beside the KB (or the
    KB only in ``.kb.old-*/x``): the next save removes them, restoring a KB that was left aside."""
    target = tmp_path / "kb"
    aside = tmp_path / ".kb.old-k3j2x9"
    aside.mkdir()
    _kb("a").save(aside / "x")
    (tmp_path / ".kb.tmp-q8w7e6").mkdir()
    (tmp_path / ".kb.tmp-q8w7e6" / DB_FILE).write_bytes(b"half")
    KnowledgeBase.load(aside / "x")
    _kb("b").save(target)
    assert _assert_whole(target) == "b"
    _assert_clean(target)


# ------------------------------------------------------------------ concurrency
def test_one_writer_two_readers(tmp_path: Path) -> None:
    """One process rewrites the KB (a, b, a, ...) while two others load it for ~3 s: every read is one of
    the two whole versions, none fails."""
    target = tmp_path / "kb"
    _kb("a").save(target)
    writer = _child(target, "loop-alternate", seconds=3.5)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    readers = [_child(target, "read", seconds=3) for _ in range(2)]
    results = [_result(r) for r in readers]
    written = _result(writer)
    assert written["n_failures"] == 0, written["failures"]
    assert written["saves"] >= 4
    versions = set(_versions().values())
    for r in results:
        assert r["n_failures"] == 0, r["failures"]
        assert set(r["reads"]) <= versions
        assert sum(r["reads"].values()) >= 3
    _assert_clean(target)


def test_two_writers(tmp_path: Path) -> None:
    """Two processes save different KBs to one folder for ~2.5 s: no save fails, the final store is one
    of the two, whole, and no temporary is left."""
    target = tmp_path / "kb"
    writers = [_child(target, mode, seconds=2.5) for mode in ("loop-a", "loop-b")]
    results = [_result(w) for w in writers]
    for r in results:
        assert r["n_failures"] == 0, r["failures"]
        assert r["saves"] >= 2
    _assert_whole(target)
    _assert_clean(target)


# ------------------------------------------------------------------ reads
def test_mixed_files_read_as_the_database_version(tmp_path: Path) -> None:
    """kb.sqlite of one version beside meta.json of another (a writer between its renames): the load
    uses kb.sqlite's own copy of meta.json, no false fingerprint error."""
    a, b = tmp_path / "a", tmp_path / "b"
    _kb("a").save(a)
    _kb("b").save(b)
    (a / META_FILE).write_bytes((b / META_FILE).read_bytes())
    assert _assert_whole(a) == "a"
    assert _assert_whole(b) == "b"


def test_store_without_the_new_records_still_loads(tmp_path: Path) -> None:
    """A store written before kb.sqlite held a copy of meta.json and before the content fingerprint
    (the previous layout, e.g. existing users' KBs) loads as before."""
    target = tmp_path / "kb"
    kb = _kb("a", 50)
    kb.save(target)
    con = sqlite3.connect(target / DB_FILE)
    con.execute(f"DROP TABLE {META_TABLE}")
    con.commit()
    con.close()
    meta = json.loads((target / META_FILE).read_text())
    del meta["content_fingerprint"], meta["store_id"]
    (target / META_FILE).write_text(json.dumps(meta))
    assert KnowledgeBase.load(target).content_fingerprint() == kb.content_fingerprint()


# ------------------------------------------------------------------ content check (issue 14, item 7)
@pytest.mark.parametrize("sql", [
    "UPDATE alt_ids SET alt_id = 'ALT:edited' WHERE alt_id = 'ALT:a3'",
    "UPDATE semantic_groups SET grp = 'Chemicals & Drugs' WHERE concept = 3",
    "DELETE FROM semantic_groups WHERE concept = 3",
    "INSERT INTO definitions VALUES (3, 0, 'a new definition')",
    "UPDATE semantic_types SET tui = 'T999'",
])
def test_edited_fields_are_noticed(tmp_path: Path, sql: str) -> None:
    """Editing an alternate id, a group, a type or a definition inside kb.sqlite keeps ids and names (the
    fingerprint) but not the content fingerprint: E107 on load; ``verify=False`` still loads."""
    target = tmp_path / "kb"
    kb = _kb("a", 10)
    kb["A000001"].semantic_types.append("T047")
    kb.save(target)
    con = sqlite3.connect(target / DB_FILE)
    with con:
        assert con.execute(sql).rowcount > 0
    con.close()
    with raises_code("E107", KBError, match="content check failed"):
        KnowledgeBase.load(target)
    edited = KnowledgeBase.load(target, verify=False)
    assert edited.fingerprint() == kb.fingerprint()
    assert edited.content_fingerprint() != kb.content_fingerprint()


def test_content_fingerprint_covers_every_field() -> None:
    base = _kb("a", 5)
    fp = base.content_fingerprint()
    assert fp == _kb("a", 5).content_fingerprint()
    for attr, value in [("alt_ids", "ALT:x"), ("semantic_types", "T047"), ("semantic_groups", "Anatomy"),
                        ("definitions", "d"), ("synonyms", "another name")]:
        kb = _kb("a", 5)
        getattr(kb["A000002"], attr).append(value)
        assert kb.content_fingerprint() != fp, attr
    assert _kb("a", 5).fingerprint() == base.fingerprint()


def test_a_first_build_killed_midway_is_replaced_and_other_files_are_kept(tmp_path: Path) -> None:
    """A folder a killed first build left (kb.sqlite and a temporary, no meta.json) is not "another
    path" (no false E103): the next save completes it. Files beside a KB's (a .DS_Store) are kept."""
    target = tmp_path / "kb"
    proc = _child(target, "once-b", kill_at=1)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (target / DB_FILE).is_file() and not (target / META_FILE).exists()
    with raises_code("E008", KBError):
        KnowledgeBase.load(target)
    _kb("a").save(target)
    assert _assert_whole(target) == "a"
    _assert_clean(target)
    (target / ".DS_Store").write_bytes(b"finder")
    _kb("b").save(target)
    assert _assert_whole(target) == "b"
    assert (target / ".DS_Store").read_bytes() == b"finder"
