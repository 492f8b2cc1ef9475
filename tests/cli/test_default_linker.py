"""``genbel link``, ``genbel evaluate`` and ``genbel demo`` without ``--linker``: the default pipeline
(DEFAULT_LINKER) over the bundled KB, with preferred and matched names in every output.

The default's spec is set to the exact linker here (the constant and the ``default`` alias), so that the
tests check the plumbing quickly whatever the shipped default is; ``tests/linkers/test_default.py`` runs
the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.errors import ConfigError
from genbel.linkers import default as default_module
from genbel.linkers.registry import ALIASES

runner = CliRunner()

#: PubTator with MEDIC ids; "Attack, Panic" is a synonym of D016584 "Panic Disorder"
CORPUS = (
    "1|t|Attack, Panic and Breast Cancer\n"
    "1|a|Nothing else.\n"
    "1\t0\t13\tAttack, Panic\tDisease\tD016584\n"
    "1\t18\t31\tBreast Cancer\tDisease\tD001943\n"
    "\n"
)


@pytest.fixture
def exact_default(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(default_module, "DEFAULT_LINKER", "exact")
    monkeypatch.setitem(ALIASES, "default", "exact")
    return "exact"


def test_link_without_linker_or_kb_uses_the_default_and_the_bundled_kb(exact_default, tmp_path: Path) -> None:
    src = tmp_path / "mentions.txt"
    src.write_text("she has [Attack, Panic]{Disorders} since May\n", encoding="utf-8")
    out = tmp_path / "linked.jsonl"
    r = runner.invoke(app, ["link", str(src), "-o", str(out), "-k", "1"])
    assert r.exit_code == 0, r.output
    assert "with exact against MEDIC" in r.output
    (doc,) = [json.loads(line) for line in out.read_text().splitlines()]
    (ent,) = doc["entities"]
    assert ent["candidates"] == [
        {"code": "D016584", "name": "Panic Disorder", "matched": "Attack, Panic", "score": 1.0}
    ]
    # the alias names the same pipeline
    again = tmp_path / "again.jsonl"
    r = runner.invoke(app, ["link", str(src), "-o", str(again), "-k", "1", "--linker", "default"])
    assert r.exit_code == 0, r.output
    assert again.read_text() == out.read_text()


def test_a_linker_without_a_model_still_needs_a_kb(exact_default, tmp_path: Path) -> None:
    src = tmp_path / "m.txt"
    src.write_text("[APC]{Disease} x\n")
    r = runner.invoke(app, ["link", str(src), "--linker", "tfidf", "-o", str(tmp_path / "o.json")])
    assert isinstance(r.exception, ConfigError) and str(r.exception).startswith("[E014]")
    assert "--kb" in str(r.exception) and "shipped model" in str(r.exception)
    r = runner.invoke(app, ["evaluate", str(src), "--linker", "tfidf"])
    assert isinstance(r.exception, ConfigError) and str(r.exception).startswith("[E014] genbel evaluate")


def test_evaluate_without_linker_or_kb(exact_default, tmp_path: Path) -> None:
    corpus = tmp_path / "c.pubtator"
    corpus.write_text(CORPUS, encoding="utf-8")
    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", str(corpus), "--bootstrap", "10", "--json-out", str(js),
                            "--with-predictions"])
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    assert (res["linker"], res["kb"], res["n_mentions"], res["recall_at_1"]) == ("exact", "MEDIC", 2, 100.0)
    first = res["predictions"][0]["predicted"][0]
    assert (first["name"], first["matched"]) == ("Panic Disorder", "Attack, Panic")


def test_demo_uses_the_default_and_prints_preferred_and_matched_names(exact_default) -> None:
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 0, r.output
    assert "linker exact" in r.output and "matched name" in r.output and "concept name" in r.output
    assert "top-1 agrees with the gold annotation for" in r.output and "linked in" in r.output
