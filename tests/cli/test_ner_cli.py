"""``genbel train-ner`` and ``genbel evaluate-e2e`` via CliRunner (tiny BERT base, tiny KB)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.data import write_corpus
from genbel.errors import ConfigError
from tests.conftest import make_doc

runner = CliRunner()


def _corpus(path: Path) -> Path:
    docs = [make_doc(str(i), t, [(m, "Disease", ids)]) for i, (t, m, ids) in enumerate([
        ("Breast cancer is common in women.", "Breast cancer", "D001"),
        ("Patients with colon cancer were seen.", "colon cancer", "D002"),
        ("Familial adenomatous polyposis (FAP) is rare.", "Familial adenomatous polyposis", "D003"),
    ])]
    write_corpus(docs, path)
    return path


def _kb(path: Path) -> Path:
    path.write_text("D001\tBreast Neoplasms\tbreast cancer\nD002\tColorectal Neoplasms\tcolon cancer\n"
                    "D003\tAdenomatous Polyposis Coli\tfamilial adenomatous polyposis\n", encoding="utf-8")
    return path


def test_evaluate_e2e_dictionary_with_exact_linker(tmp_path: Path) -> None:
    corpus, kb = _corpus(tmp_path / "c.pubtator"), _kb(tmp_path / "kb.tsv")
    out = tmp_path / "scores.json"
    res = runner.invoke(app, ["evaluate-e2e", str(corpus), "--kb", str(kb), "--kb-format", "tsv",
                              "--detector", "dictionary", "--linker", "exact", "--bootstrap", "20",
                              "--json-out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads(out.read_text())
    assert data["ner"]["scores"]["exact"]["f1"] == 100.0
    assert data["end_to_end"]["scores"]["strict"]["tp"] == 3
    bad = runner.invoke(app, ["evaluate-e2e", str(corpus), "--kb", str(kb), "--kb-format", "tsv",
                              "--detector", "nope", "--linker", "none"])
    assert isinstance(bad.exception, ConfigError) and "[E501]" in str(bad.exception)
    over = runner.invoke(app, ["evaluate-e2e", str(corpus), "--kb", str(kb), "--kb-format", "tsv",
                               "--linker", "none", "--json-out", str(corpus)])
    assert isinstance(over.exception, ConfigError) and "[E451]" in str(over.exception)


def test_train_ner_then_evaluate_with_the_tagger(tmp_path: Path, encoder_dir: Path) -> None:
    corpus, kb = _corpus(tmp_path / "c.pubtator"), _kb(tmp_path / "kb.tsv")
    res = runner.invoke(app, ["train-ner", str(corpus), "--out", str(tmp_path / "run"), "--dev", str(corpus),
                              "--base", str(encoder_dir), "--epochs", "1", "--batch-size", "2"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    tagger = tmp_path / "run" / "tagger"
    assert (tagger / "genbel_ner.json").is_file()
    res = runner.invoke(app, ["evaluate-e2e", str(corpus), "--kb", str(kb), "--kb-format", "tsv",
                              "--detector", f"combined:{tagger}", "--linker", "none", "--bootstrap", "0"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "NER: combined" in res.output
