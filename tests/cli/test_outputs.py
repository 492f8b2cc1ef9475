"""What the commands write: never over an input, checked before the work, one option name per meaning,
an output format from the extension, an empty evaluation said so, and ``genbel link --resume``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.data import write_corpus
from genbel.errors import ConfigError, InputError, OutputError
from genbel.kb import Concept, KnowledgeBase
from genbel.pipeline import partial_path
from tests.conftest import make_doc

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    kb = KnowledgeBase(
        [
            Concept("D001", "Breast Neoplasms", ["breast cancer"], semantic_groups=["Disorders"]),
            Concept("D002", "Colorectal Neoplasms", ["colon cancer"], semantic_groups=["Disorders"]),
        ],
        name="tiny",
    )
    kb_dir = tmp_path / "kb"
    kb.save(kb_dir)
    medic = tmp_path / "medic.tsv"
    medic.write_text("# name\tid\nBreast Neoplasms\tMESH:D001\t\t\t\t\t\tbreast cancer\n")
    docs = [make_doc(f"d{i}", "breast cancer and colon cancer", [("breast cancer", "Disease", "D001"),
                                                                  ("colon cancer", "Disease", "D002")])
            for i in range(6)]
    corpus = tmp_path / "corpus.json"
    write_corpus(docs, corpus)
    return {"kb": kb_dir, "corpus": corpus, "medic": medic}


def _code(r, code: str) -> None:
    assert r.exception is not None and str(r.exception).startswith(f"[{code}] "), (r.output, r.exception)


def test_link_and_evaluate_never_write_over_an_input(files, tmp_path: Path) -> None:
    corpus, kb = files["corpus"], files["kb"]
    before = corpus.read_bytes()
    base = ["link", str(corpus), "--linker", "exact", "--kb", str(kb)]
    r = runner.invoke(app, [*base, "--out", str(corpus)])
    _code(r, "E451")
    assert isinstance(r.exception, ConfigError)
    link = tmp_path / "link.json"
    link.symlink_to(corpus)
    _code(runner.invoke(app, [*base, "--out", str(link)]), "E451")
    _code(runner.invoke(app, [*base, "--out", str(kb / "linked.json")]), "E451")  # inside the KB store
    medic = files["medic"]
    r = runner.invoke(app, ["link", str(corpus), "--linker", "exact", "--kb", str(medic), "--kb-format", "tsv",
                            "--out", str(medic), "--output-format", "json"])
    _code(r, "E451")
    r = runner.invoke(app, ["evaluate", str(corpus), "--kb", str(kb), "--linker", "exact",
                            "--json-out", str(corpus)])
    _code(r, "E451")
    assert corpus.read_bytes() == before and medic.read_text().startswith("# name")
    r = runner.invoke(app, ["kb", "build", str(medic), "--kb-format", "medic", "--out", str(tmp_path)])
    _code(r, "E451")  # replacing the folder would delete the source
    assert medic.exists()


def test_outputs_that_cannot_be_written_fail_before_the_work(files, tmp_path: Path) -> None:
    corpus, kb = files["corpus"], files["kb"]
    base = ["link", str(corpus), "--linker", "exact", "--kb", str(kb)]
    (tmp_path / "dir.json").mkdir()
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "dir.json")])
    _code(r, "E452")
    assert isinstance(r.exception, OutputError)
    _code(runner.invoke(app, [*base, "--out", str(corpus / "x.json")]), "E453")
    r = runner.invoke(app, ["evaluate", str(corpus), "--kb", str(kb), "--linker", "exact",
                            "--json-out", str(tmp_path / "dir.json")])
    _code(r, "E452")


def test_output_format_from_the_extension(files, tmp_path: Path) -> None:
    corpus, kb = files["corpus"], files["kb"]
    base = ["link", str(corpus), "--linker", "exact", "--kb", str(kb)]
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.csv")])
    _code(r, "E455")
    assert ".jsonl" in str(r.exception) and not (tmp_path / "x.csv").exists()
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 6
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x.csv"), "--output-format", "jsonl"])
    assert r.exit_code == 0 and (tmp_path / "x.csv").read_bytes() == (tmp_path / "x.jsonl").read_bytes()


def test_directory_input_and_format_hint(files, tmp_path: Path) -> None:
    kb = files["kb"]
    r = runner.invoke(app, ["link", str(tmp_path), "--linker", "exact", "--kb", str(kb), "-o",
                            str(tmp_path / "o.json")])
    _code(r, "E454")
    assert isinstance(r.exception, InputError) and "is a directory" in str(r.exception)
    r = runner.invoke(app, ["evaluate", str(tmp_path), "--kb", str(kb)])
    _code(r, "E454")
    odd = tmp_path / "odd.txt"
    odd.write_text("no corpus here\n")
    r = runner.invoke(app, ["evaluate", str(odd), "--kb", str(kb)])
    _code(r, "E007")
    assert "--input-format" in str(r.exception)
    r = runner.invoke(app, ["evaluate", str(files["corpus"]), "--kb", str(kb), "--linker", "exact",
                            "--input-format", "bigbio-json"])
    assert r.exit_code == 0, r.output


def test_evaluation_with_nothing_to_score(tmp_path: Path, files) -> None:
    nil = tmp_path / "nil.json"
    write_corpus([make_doc("n1", "an odd thing", [("odd thing", "Disease", "-1")])], nil)
    r = runner.invoke(app, ["evaluate", str(nil), "--kb", str(files["kb"]), "--linker", "exact"])
    _code(r, "E457")
    assert "nothing to score" in str(r.exception) and "1 NIL" in str(r.exception)


def test_link_resume_gives_the_output_of_an_uninterrupted_run(files, tmp_path: Path, monkeypatch) -> None:
    from genbel.linkers.exact import ExactMatchLinker

    corpus, kb = files["corpus"], files["kb"]
    base = ["link", str(corpus), "--linker", "exact", "--kb", str(kb), "-k", "2"]
    whole = tmp_path / "whole.json"
    assert runner.invoke(app, [*base, "-o", str(whole)]).exit_code == 0

    real = ExactMatchLinker.link_documents
    calls = {"n": 0}

    def interrupted(self, docs, **kw):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, docs, **kw)

    out = tmp_path / "out.json"
    monkeypatch.setattr("genbel.pipeline._chunks", lambda docs, start, mentions: ([d] for d in docs[start:]))
    monkeypatch.setattr(ExactMatchLinker, "link_documents", interrupted)
    r = runner.invoke(app, [*base, "-o", str(out)])
    assert isinstance(r.exception, KeyboardInterrupt) or r.exit_code != 0
    assert not out.exists() and len(partial_path(out).read_text().splitlines()) == 1 + 3
    monkeypatch.setattr(ExactMatchLinker, "link_documents", real)
    r = runner.invoke(app, [*base, "-o", str(out), "-k", "3", "--resume"])  # other settings
    _code(r, "E456")
    r = runner.invoke(app, [*base, "-o", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    assert "resumed after 3 documents" in r.output
    assert out.read_bytes() == whole.read_bytes() and not partial_path(out).exists()
    assert [d["document_id"] for d in json.loads(out.read_text())] == [f"d{i}" for i in range(6)]
