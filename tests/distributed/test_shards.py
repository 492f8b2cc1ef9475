"""Finding shards, naming their outputs, reading one, and the run record (no Ray needed)."""

from __future__ import annotations

import sys

import pytest

from genbel.deps import MissingDependencyError
from genbel.distributed import annotate_dataset
from genbel.distributed.manifest import RUN_FILE, start_run
from genbel.distributed.shards import find_shards, output_extension, read_shard
from genbel.errors import ConfigError, InputError
from tests.distributed.conftest import documents, write_records, write_shards
from tests.helpers import raises_code


def test_a_folder_gives_its_shards_in_order_with_their_output_names(tmp_path):
    src = tmp_path / "in"
    write_shards(src, documents(), [3, 4])
    (src / "sub").mkdir()
    write_records(src / "sub" / "extra.jsonl", documents()[:1])
    (src / "notes.bioc.xml").write_text("<collection/>", encoding="utf-8")
    (src / ".hidden.jsonl").write_text("{}", encoding="utf-8")
    (src / "README.md").write_text("not a shard", encoding="utf-8")
    root, shards = find_shards(src, "csv", tmp_path / "out")
    assert root == src.absolute()
    assert [(s.rel, s.out) for s in shards] == [
        ("notes.bioc.xml", "notes.csv"), ("part-0.jsonl", "part-0.csv"), ("part-1.jsonl", "part-1.csv"),
        ("sub/extra.jsonl", "sub/extra.csv"),
    ]
    _, by_glob = find_shards(str(src / "part-*.jsonl"), "bigbio-jsonl", tmp_path / "out")
    assert [s.out for s in by_glob] == ["part-0.jsonl", "part-1.jsonl"]
    assert output_extension("brat") == "" and output_extension("bioc-json") == ".bioc.json"


def test_shard_errors(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with raises_code("E581", InputError):
        find_shards(src, "bigbio-jsonl", tmp_path / "out")
    with raises_code("E581", InputError):
        find_shards(str(src / "*.jsonl"), "bigbio-jsonl", tmp_path / "out")
    write_records(src / "a.jsonl", documents()[:1])
    write_records(src / "a.txt", documents()[:1])
    with raises_code("E582", ConfigError, match="a.jsonl and a.txt"):
        find_shards(src, "bigbio-jsonl", tmp_path / "out")
    with raises_code("E585", ConfigError):
        find_shards(src, "csv", src / "out")


def test_a_text_shard_in_a_subfolder_keeps_the_folder_reading_ids(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "notes.txt").write_text("Breast cancer.\n\nAPC.\n", encoding="utf-8")
    _, [shard] = find_shards(src, "bigbio-jsonl", tmp_path / "out")
    docs, _ = read_shard(shard, command="annotate", folder_input=True)
    assert [d.document_id for d in docs] == ["sub/notes"]  # one document per file, as `genbel annotate in/`
    docs, _ = read_shard(shard, command="annotate", split="paragraph", folder_input=True)
    assert [(d.document_id, d.text) for d in docs] == [("sub/notes-p1", "Breast cancer."), ("sub/notes-p2", "APC.")]


def test_resume_refuses_other_settings_and_skips_only_unchanged_finished_shards(tmp_path):
    src = tmp_path / "in"
    write_shards(src, documents(), [3, 4])
    out = tmp_path / "out"
    _, shards = find_shards(src, "bigbio-jsonl", out)
    assert start_run(out, {"k": 5}, shards) == set()
    assert (out / RUN_FILE).is_file()
    (out / "part-0.jsonl").write_text("done\n", encoding="utf-8")
    (out / "part-1.jsonl").write_text("done\n", encoding="utf-8")
    assert start_run(out, {"k": 5}, shards, resume=True) == {0, 1}
    with raises_code("E456", InputError, match=r"other settings \(k\)"):
        start_run(out, {"k": 3}, shards, resume=True)
    write_shards(src, documents()[::-1], [3, 4])  # part-1 changes size: annotated again
    (src / "part-0.jsonl").touch()
    assert start_run(out, {"k": 5}, shards, resume=True) == set()


def test_without_ray_the_engine_names_the_extra(tmp_path, monkeypatch):
    src = tmp_path / "in"
    write_shards(src, documents(), [7])
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as when it is not installed
    with raises_code("E450", MissingDependencyError, match=r"pip install 'genbel\[distributed\]'"):
        annotate_dataset(src, tmp_path / "out", detector="dictionary", linker="tfidf")
    assert not (tmp_path / "out").exists()
