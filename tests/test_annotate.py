"""``genbel annotate`` and genbel.annotate: raw text → detected mentions → linked concepts → any format,
streamed through OUT.partial and resumable."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from genbel.annotate import annotate, annotate_to_file, detect_mentions
from genbel.cli.main import app
from genbel.data.formats import read_documents
from genbel.data.text import text_documents
from genbel.errors import ConfigError, InputError
from genbel.linkers.base import Linker
from genbel.linkers.registry import create_linker
from genbel.ner import create_detector
from genbel.pipeline import partial_path
from tests.helpers import raises_code

runner = CliRunner()

NOTES = (
    "Familial adenomatous polyposis is inherited.\n\n"
    "Breast cancer and colon cancer were seen in her family; ibuprofen eased the pain.\n\n"
    "No finding today.\n"
)


@pytest.fixture
def kb_dir(tiny_kb, tmp_path):
    return tiny_kb.save(tmp_path / "kb")


def test_annotate_in_memory_gives_offsets_types_and_ranked_concepts(tiny_kb):
    [doc] = annotate(["Colon cancer, then breast cancer and APC."], tiny_kb, detector="dictionary",
                     linker="tfidf", k=2)
    got = [(e.entity.start, e.entity.end, e.entity.text[0], e.top.id, e.top.name) for e in doc.entities]
    assert got == [
        (0, 12, "Colon cancer", "D002", "Colorectal Neoplasms"),
        (19, 32, "breast cancer", "D001", "Breast Neoplasms"),
        (37, 40, "APC", "D003", "Adenomatous Polyposis Coli"),
    ]
    assert [len(e.candidates) for e in doc.entities] == [2, 2, 1]  # no other name shares a trigram with APC
    assert all(e.candidates[0].score >= e.candidates[-1].score for e in doc.entities)


def test_detection_in_windows_keeps_offsets_into_the_whole_text(tiny_kb):
    text = ("filler " * 40 + "breast cancer ") * 30
    [doc] = text_documents(text, "long")
    det = create_detector("dictionary", tiny_kb)
    [whole] = detect_mentions([doc], det)
    [windowed] = detect_mentions([doc], det, window=100)
    assert len(whole.entities) == 30
    assert [e.offsets for e in windowed.entities] == [e.offsets for e in whole.entities]
    assert all(text[e.start:e.end] == "breast cancer" for e in windowed.entities)


def _cli(*args: str, input: str | None = None):
    return runner.invoke(app, ["annotate", *args], input=input, catch_exceptions=False)


def test_three_paragraphs_to_csv_with_one_command(kb_dir, tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text(NOTES, encoding="utf-8")
    out = tmp_path / "out.csv"
    r = _cli(str(src), "--out", str(out), "--kb", str(kb_dir), "--detector", "dictionary", "--linker", "tfidf")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    docs = {d.document_id: d.text for d in text_documents(NOTES, "notes", "paragraph")}
    assert [(r["document"], r["text"], r["concept_id"], r["preferred_name"]) for r in rows] == [
        ("notes-p1", "Familial adenomatous polyposis", "D003", "Adenomatous Polyposis Coli"),
        ("notes-p2", "Breast cancer", "D001", "Breast Neoplasms"),
        ("notes-p2", "colon cancer", "D002", "Colorectal Neoplasms"),
        ("notes-p2", "ibuprofen", "C004", "Ibuprofen"),
    ]
    for row in rows:
        assert docs[row["document"]][int(row["start"]):int(row["end"])] == row["text"]
    assert not partial_path(out).exists()


@pytest.mark.parametrize(("name", "fmt"), [("o.jsonl", "bigbio-jsonl"), ("o.xml", "bioc-xml"), ("brat", "brat"),
                                           ("o.pubtator", "pubtator"), ("o.bioc.json", "bioc-json")])
def test_stdin_to_each_annotated_format(kb_dir, tmp_path, name, fmt):
    out = tmp_path / name
    r = _cli("-", "--out", str(out), "--kb", str(kb_dir), "--detector", "dictionary", "--linker", "exact",
             input="APC and breast cancer.\n")
    assert r.exit_code == 0, r.output
    [doc] = read_documents(out, keep_annotations=True)
    assert doc.text.rstrip() == "APC and breast cancer."
    # BigBio and BioC keep predictions (candidates) apart from gold: raw text has no gold to read back
    linked_apart = fmt in ("bigbio-jsonl", "bioc-xml", "bioc-json")
    expected = [(["APC"], [] if linked_apart else ["D003"]), (["breast cancer"], [] if linked_apart else ["D001"])]
    assert [(e.text, e.gold_ids) for e in doc.entities] == expected


def test_keep_annotations_links_the_given_mentions_with_their_long_form(kb_dir, tmp_path):
    text = "Colorectal cancer (CRC) runs in families. CRC screening helps."
    s = text.index("CRC", 30)
    src = tmp_path / "in.pubtator"
    src.write_text(f"1|t|{text}\n1|a|\n1\t{s}\t{s + 3}\tCRC\tDisease\tD002\n\n", encoding="utf-8")
    for flag, expected in (("--abbreviations", "D002"), ("--no-abbreviations", None)):
        out = tmp_path / f"o{flag}.jsonl"
        r = _cli(str(src), "-o", str(out), "--kb", str(kb_dir), "--linker", "exact", "--keep-annotations", flag)
        assert r.exit_code == 0, r.output
        [ent] = json.loads(out.read_text(encoding="utf-8"))["entities"]
        assert ent["gold_normalized"] == [{"db_name": "MESH", "db_id": "D002"}]
        top = ent["candidates"][0]["code"] if ent["candidates"] else None
        assert top == expected  # the exact linker finds "colorectal cancer", not "CRC"


class _Interrupting(Linker):
    """A real linker that stops the run (as Ctrl-C would) when it is called for the ``after``-th time."""

    def __init__(self, inner: Linker, after: int) -> None:
        self.inner, self.after, self.calls = inner, after, 0

    def link(self, queries: Sequence, k: int = 5):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.inner.link(queries, k=k)


def test_resume_after_an_interrupt_gives_the_uninterrupted_output(tiny_kb, tmp_path):
    docs = [text_documents(f"Case {i}: breast cancer and APC.", f"d{i}")[0] for i in range(7)]
    det = create_detector("dictionary", tiny_kb)
    lk = create_linker("tfidf", tiny_kb)
    full = tmp_path / "full.csv"
    annotate_to_file(docs, full, kb=tiny_kb, linker=lk, detector=det, chunk_documents=2)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        annotate_to_file(docs, out, kb=tiny_kb, linker=_Interrupting(lk, 3), detector=det, chunk_documents=2)
    assert not out.exists() and partial_path(out).exists()
    with raises_code("E456", InputError, match="other settings"):
        annotate_to_file(docs, out, kb=tiny_kb, linker=lk, detector=det, k=3, resume=True, chunk_documents=2)
    run = annotate_to_file(docs, out, kb=tiny_kb, linker=lk, detector=det, resume=True, chunk_documents=2)
    assert run.resumed == 4 and run.n_documents == 3
    assert out.read_text(encoding="utf-8") == full.read_text(encoding="utf-8")


def test_bad_input_and_output_are_coded_errors_and_write_nothing(kb_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\x89PNG\x00\x00")
    for src, code in ((empty, "E520"), (binary, "E521")):
        out = tmp_path / "o.csv"
        r = runner.invoke(app, ["annotate", str(src), "-o", str(out), "--kb", str(kb_dir)])
        assert isinstance(r.exception, InputError) and str(r.exception).startswith(f"[{code}]")
        assert not out.exists() and not partial_path(out).exists()
    src = tmp_path / "in.txt"
    src.write_text("breast cancer", encoding="utf-8")
    r = runner.invoke(app, ["annotate", str(src), "-o", str(tmp_path / "o.docx"), "--kb", str(kb_dir)])
    assert isinstance(r.exception, ConfigError) and str(r.exception).startswith("[E455]")
    r = runner.invoke(app, ["annotate", str(src), "-o", str(src), "--output-format", "csv", "--kb", str(kb_dir)])
    assert isinstance(r.exception, ConfigError) and str(r.exception).startswith("[E451]")
    assert src.read_text(encoding="utf-8") == "breast cancer"
    with raises_code("E022", ConfigError, match="--input-format"):
        read_documents(src, "word")


def test_overlapping_existing_annotations_are_each_linked_and_written(kb_dir, tmp_path):
    text = "familial adenomatous polyposis coli"
    src = tmp_path / "in.pubtator"
    src.write_text(f"1|t|{text}\n1|a|\n1\t0\t30\tfamilial adenomatous polyposis\tDisease\tD003\n"
                   f"1\t9\t35\tadenomatous polyposis coli\tDisease\tD003\n\n", encoding="utf-8")
    for name in ("o.csv", "o.xml", "brat"):
        out = tmp_path / name
        r = _cli(str(src), "-o", str(out), "--kb", str(kb_dir), "--linker", "tfidf", "--keep-annotations")
        assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((tmp_path / "o.csv").open(encoding="utf-8")))
    assert [(r["start"], r["end"], r["concept_id"]) for r in rows] == [("0", "30", "D003"), ("9", "35", "D003")]
    for back in (read_documents(tmp_path / "o.xml", keep_annotations=True),
                 read_documents(tmp_path / "brat", keep_annotations=True)):
        assert [e.offsets for e in back[0].entities] == [[(0, 30)], [(9, 35)]]


def test_stdin_in_another_encoding_and_undecodable_stdin(kb_dir, tmp_path):
    out = tmp_path / "o.csv"
    r = _cli("-", "-o", str(out), "--kb", str(kb_dir), "--detector", "dictionary", "--linker", "exact",
             "--encoding", "latin-1", input="Colon cancer – Sjögren.".encode("latin-1", "replace"))
    assert r.exit_code == 0, r.output
    assert "Colon cancer" in out.read_text(encoding="utf-8")
    r = runner.invoke(app, ["annotate", "-", "-o", str(tmp_path / "p.csv"), "--kb", str(kb_dir)],
                      input=b"ok\n\xff bad")
    assert str(r.exception).startswith("[E157] <stdin>:2")
