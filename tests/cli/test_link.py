"""``genbel link`` (markup, PubTator, BigBio in; JSON/JSONL out) and ``genbel export``, via CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.errors import ConfigError, InputError
from genbel.generation.prompts import parse_markup
from genbel.linkers.generative import GenerativeLinker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import (
    tiny_kb,
    tiny_model,
    tiny_tokenizer,
)
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)

runner = CliRunner()

MARKUP = """# one mention per line
The patient had [breast cancer]{Disorders} and took ibuprofen.

[APC]{Chemical} was given twice
a [colon cancer]{} case
"""


@pytest.fixture(scope="module")
def linker_dir(tmp_path_factory):
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model("llama", len(tok)), tok, kb).save(
        tmp_path_factory.mktemp("cli") / "linker"
    )


def _pubtator() -> str:
    title = "Breast cancer and colon cancer in one family."
    abstract = "APC mutations cause familial adenomatous polyposis; ibuprofen eased the pain."
    text = title + " " + abstract
    rows = [
        ("Breast cancer", "Disease", "D001"),
        ("colon cancer", "Disease", "D002"),
        ("APC", "Disease", "D003"),
        ("familial adenomatous polyposis", "Disease", "D003"),
        ("ibuprofen", "Chemical", "C001"),
    ]
    lines = [f"100|t|{title}", f"100|a|{abstract}"]
    for surface, typ, cid in rows:
        s = text.index(surface)
        lines.append(f"100\t{s}\t{s + len(surface)}\t{surface}\t{typ}\t{cid}")
    return "\n".join(lines) + "\n\n"


def test_link_markup_lines_to_bigbio_json(linker_dir, tmp_path):
    src = tmp_path / "mentions.txt"
    src.write_text(MARKUP)
    out = tmp_path / "out" / "linked.json"
    r = runner.invoke(
        app, ["link", str(src), "--linker", f"generative:{linker_dir}", "-o", str(out), "-k", "3"]
    )
    assert r.exit_code == 0, r.output
    docs = json.loads(out.read_text())
    assert [d["document_id"] for d in docs] == ["2", "4", "5"]  # line numbers; comments and blanks skipped
    lk = GenerativeLinker.load(linker_dir)
    lines = [x for x in MARKUP.splitlines() if x.strip() and not x.startswith("#")]
    for d, line in zip(docs, lines):
        (ent,) = d["entities"]
        q = parse_markup(line)
        assert ent["text"] == [q.text] and d["passages"][0]["text"] == [q.context]
        expected = lk.link([q], k=3)[0]
        assert [(c["code"], c["name"], c["matched"]) for c in ent["candidates"]] == [
            (c.concept_id, c.name, c.matched) for c in expected
        ]
        assert all(c["name"] == lk.kb[c["code"]].name for c in ent["candidates"])  # the preferred name
        assert [c["score"] for c in ent["candidates"]] == pytest.approx([c.score for c in expected], abs=1e-5)
        assert 1 <= len(ent["candidates"]) <= 3 and ent["candidates"][0]["score"] == 1.0
        assert ent["normalized"] == [{"db_name": "tiny", "db_id": expected[0].concept_id}]
        assert "gold_normalized" not in ent
    assert {c["code"] for c in docs[1]["entities"][0]["candidates"]} <= {"C001", "C002"}  # {Chemical}


def test_link_pubtator_to_jsonl_with_explicit_kb_and_type_filter(linker_dir, tmp_path):
    src = tmp_path / "corpus.pubtator"
    src.write_text(_pubtator())
    kb_dir = tmp_path / "kb"
    tiny_kb().save(kb_dir)
    out = tmp_path / "linked.jsonl"
    args = [
        "link",
        str(src),
        "--linker",
        f"generative:{linker_dir}",
        "--kb",
        str(kb_dir),
        "-o",
        str(out),
        "--output-format",
        "jsonl",
        "-k",
        "2",
        "--num-beams",
        "4",
        "--entity-types",
        "Disease",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    (doc,) = [json.loads(x) for x in out.read_text().splitlines()]
    ents = doc["entities"]
    assert len(ents) == 5
    for e in ents:
        if e["type"] == "Chemical":  # not linked: left as read
            assert "candidates" not in e and e["normalized"][0]["db_id"] == "C001"
            continue
        assert 1 <= len(e["candidates"]) <= 2
        assert {c["code"] for c in e["candidates"]} <= {"D001", "D002", "D003", "D004"}  # Disease → Disorders
        assert e["normalized"][0]["db_id"] == e["candidates"][0]["code"]
        assert e["gold_normalized"][0]["db_id"].startswith("D00")


def test_link_bigbio_json_input(linker_dir, tmp_path):
    from genbel.data import parse_pubtator, write_corpus

    src = tmp_path / "corpus.json"
    write_corpus(parse_pubtator(_pubtator()), src)
    out = tmp_path / "linked.json"
    r = runner.invoke(
        app, ["link", str(src), "--linker", f"generative:{linker_dir}", "-o", str(out), "-k", "1"]
    )
    assert r.exit_code == 0, r.output
    (doc,) = json.loads(out.read_text())
    assert all(len(e["candidates"]) == 1 for e in doc["entities"])
    chem = [e for e in doc["entities"] if e["type"] == "Chemical"][0]
    assert chem["candidates"][0]["code"] in {"C001", "C002"}


def test_bad_markup_and_unknown_group_name_the_line_and_write_nothing(linker_dir, tmp_path):
    out = tmp_path / "out.json"
    src = tmp_path / "bad.txt"
    src.write_text("[APC]{Disease} fine\n\nno markup [here]\n")
    r = runner.invoke(
        app,
        [
            "link",
            str(src),
            "--linker",
            f"generative:{linker_dir}",
            "-o",
            str(out),
            "--input-format",
            "markup",
        ],
    )
    assert isinstance(r.exception, InputError) and f"{src}:3" in str(r.exception)
    src.write_text("[APC]{Disease} fine\n[APC]{Bogus} bad\n")
    r = runner.invoke(app, ["link", str(src), "--linker", f"generative:{linker_dir}", "-o", str(out)])
    assert (
        isinstance(r.exception, InputError)
        and f"{src}:2" in str(r.exception)
        and "'Bogus'" in str(r.exception)
    )
    r = runner.invoke(
        app, ["link", str(src), "--linker", f"generative:{linker_dir}", "-o", str(out), "--output-format", "xml"]
    )
    assert isinstance(r.exception, ConfigError)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_link_without_kb_needs_a_saved_kb(tmp_path):
    src = tmp_path / "m.txt"
    src.write_text("[APC]{Disease} x\n")
    r = runner.invoke(app, ["link", str(src), "--linker", "tfidf", "-o", str(tmp_path / "o.json")])
    assert isinstance(r.exception, ConfigError) and "--kb" in str(r.exception)


def test_export_command(linker_dir, tmp_path):
    out = tmp_path / "hf"
    r = runner.invoke(app, ["export", str(linker_dir), str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "modeling_genbel.py").exists()
    assert json.loads((out / "config.json").read_text())["auto_map"]["AutoModelForCausalLM"].startswith(
        "modeling_genbel."
    )


def test_set_passes_linker_options_to_link_and_evaluate(linker_dir, tmp_path):
    from genbel.linkers.registry import parse_options

    assert parse_options(["mode=constrain", "n_candidates=2", "retriever_weight=0.5", "x=true"]) == {
        "mode": "constrain", "n_candidates": 2, "retriever_weight": 0.5, "x": True,
    }
    with raises_code("E024", ConfigError, match="KEY=VALUE"):
        parse_options(["mode"])
    src = tmp_path / "corpus.pubtator"
    src.write_text(_pubtator())
    kb_dir = tmp_path / "kb"
    tiny_kb().save(kb_dir)
    hybrid = ["--linker", f"hybrid:{linker_dir}", "--set", "retriever=sparse", "--set", "mode=constrain",
              "--set", "n_candidates=1"]
    out = tmp_path / "linked.json"
    r = runner.invoke(app, ["link", str(src), "--kb", str(kb_dir), "-o", str(out), "-k", "3", *hybrid])
    assert r.exit_code == 0, r.output
    # constrain mode with one retrieved concept: every mention gets exactly the sparse top-1 concept
    from genbel.linkers.sparse import SparseLinker

    (doc,) = json.loads(out.read_text())
    sparse = SparseLinker(tiny_kb())
    linked = [e for e in doc["entities"] if "candidates" in e]
    assert linked
    for e in linked:
        assert [c["code"] for c in e["candidates"]] == [sparse.candidates(e["text"], 1)[0][0].concept_id]
    js = tmp_path / "eval.json"
    r = runner.invoke(app, ["evaluate", str(src), "--kb", str(kb_dir), "--json-out", str(js), *hybrid])
    assert r.exit_code == 0, r.output
    assert json.loads(js.read_text())["n_mentions"] == 5
    r = runner.invoke(app, ["evaluate", str(src), "--kb", str(kb_dir), "--linker", "tfidf", "--set", "oops"])
    assert r.exit_code != 0 and "KEY=VALUE" in (r.output + str(r.exception))


def test_an_interrupt_says_where_the_partial_output_is_and_how_to_resume(tmp_path, capsys):
    import pytest

    from genbel.cli.link import _resume_hint
    from genbel.pipeline import partial_path

    out = tmp_path / "linked.jsonl"
    partial_path(out).write_text("{}\n")
    with pytest.raises(KeyboardInterrupt), _resume_hint(out, "linked"):
        raise KeyboardInterrupt
    err = " ".join(capsys.readouterr().err.split())
    assert f"the documents linked so far are in {partial_path(out)}" in err
    assert "rerun the same command with --resume to continue" in err
