"""genbel.distributed on a real local Ray (2 CPUs): the output equals the single-process commands', resume
skips finished shards, a bad shard stops with a coded error and no partial output, a document stays whole.

One Ray instance for the module; the cheap dictionary detector and TF-IDF/exact linkers over a tiny KB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.distributed import annotate_dataset, link_dataset
from genbel.distributed.manifest import RUN_FILE
from genbel.errors import InputError
from tests.distributed.conftest import documents, write_records, write_shards
from tests.cli.test_usage import run_main
from tests.helpers import raises_code

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own settings
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, logging_level="WARNING")
    yield
    ray.shutdown()


def _genbel(*argv: str) -> None:
    r = runner.invoke(app, [str(a) for a in argv], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def _concat(out: Path, names: list[str]) -> str:
    return "".join((out / n).read_text(encoding="utf-8") for n in names)


def test_annotate_with_two_workers_equals_the_single_process_run(tmp_path, kb_dir):
    src = tmp_path / "in"
    write_shards(src, documents(), [3, 1, 3])
    write_shards(tmp_path / "all", documents(), [7])
    common = ["--kb", kb_dir, "--detector", "dictionary", "--linker", "tfidf", "-k", "3", "-q"]
    _genbel("annotate", tmp_path / "all" / "part-0.jsonl", "-o", tmp_path / "single.jsonl", *common)
    _genbel("annotate", src, "-o", tmp_path / "out", *common, "--engine", "ray", "--workers", "2", "--batch-docs", "2")
    names = ["part-0.jsonl", "part-1.jsonl", "part-2.jsonl"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([RUN_FILE, *names])
    single = (tmp_path / "single.jsonl").read_text(encoding="utf-8")
    assert _concat(tmp_path / "out", names) == single  # byte-equal
    assert sum(len(json.loads(line)["entities"]) for line in single.splitlines()) >= 15
    record = json.loads((tmp_path / "out" / RUN_FILE).read_text())["genbel_distributed_run"]
    assert record["complete"] is True and record["documents"] == 7 and record["workers"] == 2


def test_link_keeps_documents_whole_and_equals_the_single_process_run(tmp_path, kb_dir):
    # d1 defines FAP and uses it again 60 characters later: linked as its long form only with the whole
    # document in one batch; batch_docs=1 puts every document in a batch of its own
    src = tmp_path / "in"
    write_shards(src, documents(annotated=True), [2, 5], fmt="pubtator")
    write_shards(tmp_path / "all", documents(annotated=True), [7], fmt="pubtator")
    _genbel("link", tmp_path / "all" / "part-0.pubtator", "-o", tmp_path / "single.jsonl", "--kb", kb_dir,
            "--linker", "tfidf", "--abbreviations", "-q")
    run = link_dataset(src, tmp_path / "out", kb=kb_dir, linker="tfidf", expand_abbreviations=True,
                       batch_docs=1, progress=False)
    assert (run.n_shards, run.n_written, run.n_documents) == (2, 2, 7)
    got = _concat(tmp_path / "out", ["part-0.jsonl", "part-1.jsonl"])
    assert got == (tmp_path / "single.jsonl").read_text(encoding="utf-8")
    d1 = json.loads(got.splitlines()[0])
    assert [(e["text"][0], e["candidates"][0]["code"]) for e in d1["entities"]] == [
        ("Familial adenomatous polyposis", "D003"), ("FAP", "D003"), ("Breast cancer", "D001"), ("FAP", "D003"),
    ]
    assert run.n_mentions == sum(len(d.entities) for d in documents(annotated=True))


def test_every_shard_format_gives_what_a_single_process_run_of_that_shard_gives(tmp_path, kb_dir):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    docs = documents()
    src = tmp_path / "in"
    write_shards(src, docs[:3], [3], fmt="pubtator")  # part-0.pubtator
    write_records(src / "records.jsonl", docs[3:5])
    pq.write_table(pa.table({"id": [d.document_id for d in docs[5:]], "text": [d.text for d in docs[5:]]}),
                   src / "rows.parquet")
    (src / "notes").mkdir()
    (src / "notes" / "a.txt").write_text(docs[0].text + "\n\n" + docs[1].text + "\n", encoding="utf-8")
    run = annotate_dataset(src, tmp_path / "out", kb=kb_dir, detector="dictionary", linker="tfidf",
                           output_format="tsv", batch_docs=4, progress=False)
    assert run.n_written == 4
    common = ["--kb", kb_dir, "--detector", "dictionary", "--linker", "tfidf", "-q"]
    _genbel("annotate", src / "part-0.pubtator", "-o", tmp_path / "p.tsv", *common)
    assert (tmp_path / "out" / "part-0.tsv").read_bytes() == (tmp_path / "p.tsv").read_bytes()
    notes = tmp_path / "notes-in"
    (notes / "notes").mkdir(parents=True)
    (notes / "notes" / "a.txt").write_bytes((src / "notes" / "a.txt").read_bytes())
    _genbel("annotate", notes, "-o", tmp_path / "n.tsv", *common)  # a folder: one document per file
    assert (tmp_path / "out" / "notes" / "a.tsv").read_bytes() == (tmp_path / "n.tsv").read_bytes()
    # records and Parquet rows are the plain-text documents of the same ids and texts
    write_shards(tmp_path / "bigbio", docs, [7])
    _genbel("annotate", tmp_path / "bigbio" / "part-0.jsonl", "-o", tmp_path / "b.tsv", *common)
    header, *rows = (tmp_path / "b.tsv").read_text(encoding="utf-8").splitlines()
    for name, ids in (("records.tsv", {"d4", "d5"}), ("rows.tsv", {"d6", "d7"})):
        got = (tmp_path / "out" / name).read_text(encoding="utf-8").splitlines()
        assert got == [header, *(r for r in rows if r.split("\t")[0] in ids)]


def test_resume_skips_the_finished_shards(tmp_path, kb_dir):
    src = tmp_path / "in"
    write_shards(src, documents(), [2, 2, 3])
    out = tmp_path / "out"
    kwargs = dict(kb=kb_dir, detector="dictionary", linker="exact", progress=False)
    annotate_dataset(src, out, **kwargs)
    kept = {n: (out / n).stat().st_ino for n in ("part-0.jsonl", "part-2.jsonl")}
    redo = (out / "part-1.jsonl").read_bytes()
    (out / "part-1.jsonl").unlink()  # as if the run had stopped before this shard
    run = annotate_dataset(src, out, resume=True, **kwargs)
    assert (run.n_written, run.n_skipped, run.n_documents) == (1, 2, 2)
    assert (out / "part-1.jsonl").read_bytes() == redo
    assert {n: (out / n).stat().st_ino for n in kept} == kept  # not rewritten
    again = annotate_dataset(src, out, resume=True, **kwargs)  # all done: Ray is not even asked
    assert (again.n_written, again.n_skipped) == (0, 3)


def test_a_bad_shard_stops_with_a_coded_error_and_no_partial_output(tmp_path, kb_dir, monkeypatch, capsys):
    src = tmp_path / "in"
    write_shards(src, documents(), [3, 4])
    lines = (src / "part-1.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:40]  # line 3 cut in the middle
    (src / "part-1.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with raises_code("E580", InputError, match=r"part-1\.jsonl:3: invalid JSON") as e:
        annotate_dataset(src, out, kb=kb_dir, detector="dictionary", linker="exact", progress=False)
    assert "[E013]" in str(e.value) and "--resume" in str(e.value)
    assert not (out / "part-1.jsonl").exists()
    assert [p.name for p in out.iterdir() if p.name not in (RUN_FILE, "part-0.jsonl")] == []  # no temporary
    code, _, err = run_main(["annotate", str(src), "-o", str(out), "--kb", str(kb_dir), "--detector", "dictionary",
                             "--linker", "exact", "--engine", "ray", "--resume", "-q"], monkeypatch, capsys)
    assert code == 2 and "[E580]" in err and "part-1.jsonl:3" in err and "Traceback" not in err
