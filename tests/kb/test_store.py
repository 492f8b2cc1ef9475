"""The on-disk KB store: round trip, fingerprint, atomic writes, errors."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from genbel.errors import Errors, FormatError, KBError
from genbel.kb import KnowledgeBase, load_kb, store
from genbel.kb.store import DB_FILE, FORMAT_VERSION, META_FILE, READ_VERSIONS, is_kb_dir, read_meta
from tests.helpers import raises_code


def _dicts(kb: KnowledgeBase) -> list[dict]:
    return [c.to_dict() for c in kb]


def _umls(fixtures: Path) -> KnowledgeBase:
    return load_kb(fixtures / "umls")


def test_round_trip_keeps_every_field(fixtures: Path, tmp_path: Path) -> None:
    kb = _umls(fixtures)
    kb.add_synonyms("C0011849", ["DM2"])
    out = kb.save(tmp_path / "umls_kb", source="fixture")
    assert out == tmp_path / "umls_kb"
    assert sorted(p.name for p in out.iterdir()) == [DB_FILE, META_FILE]
    back = KnowledgeBase.load(out)
    assert back.name == "UMLS"
    assert _dicts(back) == _dicts(kb)
    assert back.fingerprint() == kb.fingerprint()
    assert back["C0011849"].synonyms[-1] == "DM2"
    meta = read_meta(out)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["fingerprint"] == kb.fingerprint()
    assert meta["counts"] == {"concepts": 8, "names": kb.n_names(), "alt_ids": 0, "with_definition": 3,
                              "with_semantic_type": 8, "with_parents": 0}
    assert meta["semantic_groups"] == {"Anatomy": 1, "Chemicals & Drugs": 2, "Concepts & Ideas": 1,
                                       "Disorders": 3, "Phenomena": 1}
    assert meta["source"] == "fixture"
    # the tables named in the docs exist
    con = sqlite3.connect(out / DB_FILE)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert tables == {"concepts", "names", "alt_ids", "semantic_types", "semantic_groups", "definitions",
                      "parents", "tree_numbers", "meta"}  # meta: kb.sqlite's own copy of meta.json


def test_medic_round_trip(medic: KnowledgeBase, tmp_path: Path) -> None:
    medic.save(tmp_path / "medic")
    back = KnowledgeBase.load(tmp_path / "medic")
    assert back.fingerprint() == medic.fingerprint()
    assert (len(back), back.n_names(), back.name) == (11_915, 76_237, "MEDIC")
    assert _dicts(back) == _dicts(medic)
    assert back.resolve_id("613097") == "C567755"
    # the dispatcher detects a built KB directory; name= overrides the stored name
    again = load_kb(tmp_path / "medic", name="medic-2012")
    assert again.name == "medic-2012" and again.fingerprint() == medic.fingerprint()


def test_overwrite_replaces_a_kb_dir(fixtures: Path, tmp_path: Path) -> None:
    target = tmp_path / "kb"
    _umls(fixtures).save(target)
    mini = load_kb(fixtures / "mini_medic.txt")
    mini.save(target)
    assert KnowledgeBase.load(target).fingerprint() == mini.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]
    empty = tmp_path / "empty"
    empty.mkdir()
    mini.save(empty)
    assert is_kb_dir(empty)


def test_refuses_to_overwrite_other_paths(fixtures: Path, tmp_path: Path) -> None:
    other = tmp_path / "mydir"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with raises_code("E103", KBError) as e:
        load_kb(fixtures / "mini_medic.txt").save(other)
    assert str(e.value) == Errors.E103.format(path=other)
    assert (other / "notes.txt").read_text() == "keep me"
    afile = tmp_path / "kb.txt"
    afile.write_text("not a KB")
    with raises_code("E103", KBError) as e:
        load_kb(fixtures / "mini_medic.txt").save(afile)
    assert str(e.value) == Errors.E103.format(path=afile)
    assert afile.read_text() == "not a KB"
    # refused before anything is written: no temporary directory beside the target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.txt", "mydir"]


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_save_leaves_nothing(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    exc: BaseException) -> None:
    kb = load_kb(fixtures / "mini_medic.txt")
    parent = tmp_path / "out"
    parent.mkdir()

    def boom(meta: dict, path: Path) -> None:  # after kb.sqlite is written
        assert (path.parent / DB_FILE).is_file()
        raise exc

    monkeypatch.setattr(store, "_write_meta", boom)
    with pytest.raises(type(exc)):
        kb.save(parent / "kb")
    assert not (parent / "kb").exists()
    assert list(parent.iterdir()) == []  # no temporary directory left


def test_failed_overwrite_keeps_old_kb(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _umls(fixtures)
    old.save(tmp_path / "kb")

    def boom(concepts: list, db: Path) -> None:
        db.write_bytes(b"half a database")
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_sqlite", boom)
    with pytest.raises(KeyboardInterrupt):
        load_kb(fixtures / "mini_medic.txt").save(tmp_path / "kb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]
    assert KnowledgeBase.load(tmp_path / "kb").fingerprint() == old.fingerprint()


@pytest.mark.parametrize("failing", [DB_FILE, META_FILE])
def test_failed_rename_leaves_a_whole_kb(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The new files are complete but renaming one into place fails: the directory still holds one
    whole KB (the old one if ``kb.sqlite`` was not replaced, else the new one, read with kb.sqlite's
    own copy of meta.json), and no temporary is left."""
    old = _umls(fixtures)
    target = tmp_path / "kb"
    old.save(target)
    new = load_kb(fixtures / "mini_medic.txt")
    real_replace = os.replace

    def failing_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        if Path(dst) == target / failing:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        new.save(target)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]
    assert sorted(p.name for p in target.iterdir()) == [DB_FILE, META_FILE]
    expected = old if failing == DB_FILE else new
    assert KnowledgeBase.load(target).fingerprint() == expected.fingerprint()


def test_missing_files(fixtures: Path, tmp_path: Path) -> None:
    d = tmp_path / "kb"
    load_kb(fixtures / "mini_medic.txt").save(d)
    (d / DB_FILE).unlink()
    with raises_code("E008", KBError) as e:
        KnowledgeBase.load(d)
    assert str(e.value) == f"[E008] {d}: not a genbel KB directory (missing {DB_FILE})"
    with raises_code("E008", KBError) as e:
        load_kb(d)  # the dispatcher still sees a (broken) genbel directory
    assert str(e.value) == Errors.E008.format(path=d, missing=DB_FILE)
    (d / META_FILE).unlink()
    with raises_code("E008", KBError) as e:
        KnowledgeBase.load(d)
    assert str(e.value) == f"[E008] {d}: not a genbel KB directory (missing {META_FILE}, {DB_FILE})"


def test_tampered_meta(fixtures: Path, tmp_path: Path) -> None:
    d = tmp_path / "kb"
    kb = load_kb(fixtures / "mini_medic.txt")
    kb.save(d)
    meta = json.loads((d / META_FILE).read_text())
    meta["fingerprint"] = "0000000000000000"
    (d / META_FILE).write_text(json.dumps(meta))
    with raises_code("E101", KBError) as e:
        KnowledgeBase.load(d)
    assert str(e.value) == Errors.E101.format(path=d, expected="0000000000000000", actual=kb.fingerprint())
    assert KnowledgeBase.load(d, verify=False).fingerprint() == kb.fingerprint()
    meta["format_version"] = 99
    (d / META_FILE).write_text(json.dumps(meta))
    with raises_code("E102", KBError) as e:
        KnowledgeBase.load(d)
    assert str(e.value) == Errors.E102.format(path=d, found=99, supported=" or ".join(map(str, READ_VERSIONS)))
    (d / META_FILE).write_text('{"format_version": 1,\n  oops}')
    with raises_code("E013", FormatError, match=r"meta\.json:2: invalid JSON"):
        KnowledgeBase.load(d)


def test_corrupt_database(fixtures: Path, tmp_path: Path) -> None:
    d = tmp_path / "kb"
    load_kb(fixtures / "mini_medic.txt").save(d)
    (d / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    with raises_code("E016", KBError, match="unreadable KB database"):
        KnowledgeBase.load(d)


def test_store_does_not_know_the_kb_class() -> None:
    """kb.base builds on kb.store; the store imports neither kb.base nor kb.loaders (no cycle)."""
    import ast

    tree = ast.parse(Path(store.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"genbel.kb.base", "genbel.kb.loaders", "genbel.kb"}
