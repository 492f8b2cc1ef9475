"""The actor, called in this process (Ray calls the same class in its workers): it reads whole shards and
links them in chunks of documents."""

from __future__ import annotations

import json
from dataclasses import asdict

from genbel.distributed.shards import find_shards
from genbel.distributed.workers import COLUMNS, Job, ShardWorker
from tests.distributed.conftest import documents, write_shards


def _columns(rows: list[dict]) -> dict[str, list]:
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_a_shard_becomes_one_row_per_document_and_a_bad_one_an_error_row(tmp_path, kb_dir):
    src = tmp_path / "in"
    write_shards(src, documents(), [3, 4])
    (src / "part-1.jsonl").write_text('{"id": "x", "passages": 3}\n', encoding="utf-8")
    _, shards = find_shards(src, "bigbio-jsonl", tmp_path / "out")
    rows = ShardWorker(Job("annotate", kb=str(kb_dir), linker="exact", detector="dictionary"))(
        _columns([asdict(s) for s in shards]))
    assert tuple(rows) == COLUMNS
    assert rows["shard"] == [0, 0, 0, 1] and rows["pos"] == [0, 1, 2, -1] and rows["n"] == [3, 3, 3, 0]
    assert [json.loads(d)["document_id"] for d in rows["doc"][:3]] == ["d1", "d2", "d3"]
    assert rows["error_kind"][3] == "shard" and rows["error"][3].startswith("[E016]")
    assert "part-1.jsonl:1" in rows["error"][3]


def test_the_worker_links_whole_documents_in_chunks_and_reports_a_bad_setting_as_one_row(tmp_path, kb_dir):
    src = tmp_path / "in"
    write_shards(src, documents(), [7])
    _, shards = find_shards(src, "bigbio-jsonl", tmp_path / "out")
    job = Job("annotate", kb=str(kb_dir), linker="exact", detector="dictionary")
    batch = _columns([asdict(s) for s in shards])
    out = ShardWorker(job)(batch)
    assert out["error"] == [""] * 7 and out["pos"] == list(range(7)) and sum(out["mentions"]) >= 15
    d1 = json.loads(out["doc"][0])
    assert [(e["text"][0], e["candidates"][0]["code"]) for e in d1["entities"]] == [
        ("Familial adenomatous polyposis", "D003"), ("Breast cancer", "D001"),  # FAP is no KB name: not detected
    ]
    assert ShardWorker(job, batch_docs=3)(batch) == out  # chunks of 3, 3 and 1 documents: the same rows
    broken = ShardWorker(Job("annotate", kb=str(kb_dir), linker="no-such-linker", detector="dictionary"))
    out = broken(batch)
    assert out["error_kind"] == ["setup"] and out["error"][0].startswith("[E009]")
