"""``genbel link|annotate --document-level / --ensemble`` and ``genbel link --explain DOC_ID`` (tiny models)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.data import load_documents
from genbel.errors import ConfigError, InputError
from genbel.linkers.default import document_level_spec
from genbel.linkers.document import DocumentLinker, explainer
from genbel.linkers.ensemble import default_ensemble
from genbel.linkers.generative import GenerativeLinker
from genbel.pipeline import explanation_path
from tests.cli.test_link import _pubtator
from tests.helpers import raises_code
from tests.linkers.generative_tiny import tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def linker_dir(tmp_path_factory):
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model("llama", len(tok)), tok, kb).save(tmp_path_factory.mktemp("doc") / "linker")


@pytest.fixture
def corpus(tmp_path):
    src = tmp_path / "corpus.pubtator"
    second = _pubtator().replace("100|", "200|").replace("\n100\t", "\n200\t")
    src.write_text(_pubtator() + second)
    return src


def _top(path) -> list[tuple[str, str, list[str]]]:
    return [
        (d["document_id"], e["text"][0], [c["code"] for c in e["candidates"]])
        for d in json.loads(path.read_text()) for e in d["entities"]
    ]


def _expected(linker, src, k: int) -> list[tuple[str, str, list[str]]]:
    return [
        (q.doc_id, q.surface, [c.concept_id for c in cands])
        for q, cands in linker.link_documents(load_documents(src), k=k)
    ]


def test_document_level_spec_names_the_generative_model_read_with_memory():
    assert document_level_spec(None) == ("document:default", {"context_chars": "model"})
    assert document_level_spec("default") == document_level_spec("generative") == document_level_spec(None)
    assert document_level_spec("generative:runs/m", ensemble=True) == (
        "document:runs/m", {"context_chars": "model", "ensemble": True}
    )
    assert document_level_spec("document:runs/m")[0] == "document:runs/m"
    for spec in ("tfidf", "dense:default", "dense:default+rerank:default"):
        with raises_code("E630", ConfigError, match="--linker generative:PATH"):
            document_level_spec(spec, option="--ensemble")


def test_link_document_level_is_the_document_linker_with_memory(linker_dir, corpus, tmp_path):
    out = tmp_path / "doc.json"
    r = runner.invoke(
        app, ["link", str(corpus), "--linker", f"generative:{linker_dir}", "--document-level", "-o", str(out), "-k", "3"]
    )
    assert r.exit_code == 0, r.output
    lk = DocumentLinker.load(str(linker_dir), context_chars="model")
    assert lk.use_memory and lk.format.context_chars == lk.generator.format.context_chars  # as trained
    got = _top(out)
    assert got == _expected(lk, corpus, 3) and len(got) == 10
    # the same mentions, in document order, as mention-level linking
    out2 = tmp_path / "mention.json"
    r = runner.invoke(app, ["link", str(corpus), "--linker", f"generative:{linker_dir}", "-o", str(out2), "-k", "3"])
    assert r.exit_code == 0, r.output
    assert [g[:2] for g in _top(out2)] == [g[:2] for g in got]


def test_link_ensemble_fuses_document_and_mention_level(linker_dir, corpus, tmp_path):
    out = tmp_path / "ens.jsonl"
    r = runner.invoke(
        app, ["link", str(corpus), "--linker", f"generative:{linker_dir}", "--ensemble", "-o", str(out), "-k", "2"]
    )
    assert r.exit_code == 0, r.output
    ens = default_ensemble(DocumentLinker.load(str(linker_dir), context_chars="model"))
    assert [m.use_memory for m in ens.members] == [True, False]
    got = [
        (d["document_id"], e["text"][0], [c["code"] for c in e["candidates"]])
        for d in map(json.loads, out.read_text().splitlines()) for e in d["entities"]
    ]
    assert got == _expected(ens, corpus, 2)
    assert explainer(ens) is ens.members[0]


def test_explain_writes_one_documents_saliency_maps_as_html(linker_dir, corpus, tmp_path):
    out = tmp_path / "doc.json"
    r = runner.invoke(
        app, ["link", str(corpus), "--linker", f"generative:{linker_dir}", "--document-level", "--explain", "200",
              "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    page = explanation_path(out, "200")
    assert page == tmp_path / "doc.json.explain-200.html" and out.exists()
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Saliency maps of document 200: 5 mentions" in html
    for i, mention in enumerate(["Breast cancer", "colon cancer", "APC", "familial adenomatous polyposis",
                                 "ibuprofen"], 1):
        assert f"<h3>{i}. Saliency map for {mention} →" in html
    assert html.count('<span style="background: rgb(') > 5 * 3  # every mention's prompt tokens, shaded


def test_explain_errors_are_coded_and_write_nothing(linker_dir, corpus, tmp_path):
    out = tmp_path / "o.json"
    base = ["link", str(corpus), "--linker", f"generative:{linker_dir}", "-o", str(out)]
    r = runner.invoke(app, [*base, "--explain", "100"])
    assert isinstance(r.exception, ConfigError) and "[E632]" in str(r.exception)
    r = runner.invoke(app, [*base, "--document-level", "--explain", "999"])
    assert isinstance(r.exception, InputError) and "[E631]" in str(r.exception) and "100, 200" in str(r.exception)
    r = runner.invoke(app, ["link", str(corpus), "--linker", "tfidf", "--kb", "default", "--document-level",
                            "-o", str(out)])
    assert isinstance(r.exception, ConfigError) and "[E630]" in str(r.exception)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.pubtator"]


def test_annotate_document_level_links_detected_mentions_in_document_order(linker_dir, tmp_path):
    kb_dir = tiny_kb().save(tmp_path / "kb")
    src = tmp_path / "notes.txt"
    src.write_text("Breast cancer and colon cancer in her family.\n\nAPC and breast cancer again.\n")
    outs = {}
    for flag in ("--document-level", "--ensemble"):
        out = tmp_path / f"o{flag}.jsonl"
        r = runner.invoke(app, ["annotate", str(src), "-o", str(out), "--kb", str(kb_dir), "--detector", "dictionary",
                                "--linker", f"generative:{linker_dir}", flag, "-k", "2"])
        assert r.exit_code == 0, r.output
        outs[flag] = [json.loads(x) for x in out.read_text().splitlines()]
    docs = outs["--document-level"]
    assert [[e["text"][0] for e in d["entities"]] for d in docs] == [
        ["Breast cancer", "colon cancer"], ["APC", "breast cancer"]
    ]
    assert all(e["normalized"] for d in docs for e in d["entities"])
    assert [[e["text"][0] for e in d["entities"]] for d in outs["--ensemble"]] == [
        [e["text"][0] for e in d["entities"]] for d in docs
    ]
    r = runner.invoke(app, ["annotate", str(src), "-o", str(tmp_path / "x.jsonl"), "--kb", str(kb_dir),
                            "--linker", "tfidf", "--document-level"])
    assert isinstance(r.exception, ConfigError) and "[E630]" in str(r.exception)
