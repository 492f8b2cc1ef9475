"""Hierarchy-aware scoring: ``genbel.eval.hierarchy`` and ``genbel evaluate --hierarchy``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.errors import ConfigError
from genbel.eval import evaluate
from genbel.eval.hierarchy import CLASSES, hierarchy_of_result, mention_relation, score_hierarchy
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.kb.hierarchy import Hierarchy
from genbel.linkers.exact import ExactMatchLinker
from tests.conftest import make_doc
from tests.helpers import raises_code

runner = CliRunner()


def _kb() -> KnowledgeBase:
    """Diseases ← heart disease ← {myocardial ischemia ← myocardial infarction, valve disease}; Diseases ←
    lung disease; "orphan" has no parent."""
    return KnowledgeBase([
        Concept("C", "Diseases"),
        Concept("D000001", "heart disease", parents=["C"]),
        Concept("D000002", "myocardial ischemia", parents=["D000001"]),
        Concept("D000003", "myocardial infarction", ["heart attack"], parents=["D000002"], alt_ids=["OMIM:608446"]),
        Concept("D000004", "valve disease", parents=["D000001"]),
        Concept("D000005", "lung disease", parents=["C"]),
        Concept("D000006", "orphan"),
    ], name="tree")


def test_mention_relations() -> None:
    h = Hierarchy(_kb())
    assert mention_relation(h, "OMIM:608446", ["D000003"]) == ("exact", 0)
    assert mention_relation(h, "D000002", ["D000003"]) == ("broader", 1)
    assert mention_relation(h, "D000003", ["D000001"]) == ("narrower", 2)
    assert mention_relation(h, "D000004", ["D000002"]) == ("sibling", 2)
    assert mention_relation(h, "D000005", ["D000003"]) == ("unrelated", 4)
    assert mention_relation(h, "D000006", ["D000003"]) == ("unrelated", None)
    assert mention_relation(h, None, ["D000003"]) == ("no_prediction", None)
    # composite gold: the closest relation and distance count
    assert mention_relation(h, "D000002", ["D000005", "D000003"]) == ("broader", 1)
    # a gold id outside the KB
    assert mention_relation(h, "D000002", ["D999999"]) == ("unrelated", None)


def test_score_hierarchy_shares_and_distances() -> None:
    kb = _kb()
    s = score_hierarchy([("D000003", ["D000003"]), ("D000002", ["D000003"]), ("D000005", ["D000003"]),
                         ("D000006", ["D000003"]), (None, ["D000006"])], kb)
    assert s.n_mentions == 5 and list(s.counts) == list(CLASSES)
    assert s.counts == {"exact": 1, "broader": 1, "narrower": 0, "sibling": 0, "unrelated": 2, "no_prediction": 1}
    assert s.shares["exact"] == 20.0 and s.shares["unrelated"] == 40.0
    assert (s.n_with_distance, s.mean_distance) == (3, round((0 + 1 + 4) / 3, 3))
    assert (s.n_errors_with_distance, s.mean_distance_errors) == (2, 2.5)
    assert s.n_gold_outside_hierarchy == 1 and s.concepts_with_parents == 5


def test_no_hierarchy_is_a_clear_error() -> None:
    kb = KnowledgeBase([Concept("D1", "a"), Concept("D2", "b")], name="flat")
    with raises_code("E560", ConfigError, match="KB flat has no hierarchy"):
        score_hierarchy([("D1", ["D2"])], kb)


def _docs():
    return [make_doc("1", "A heart attack, myocardial ischemia and lung disease; heart disease here.",
                     [("heart attack", "Disease", "D000003"), ("myocardial ischemia", "Disease", "D000003"),
                      ("lung disease", "Disease", "D000004"), ("heart disease", "Disease", "D000002")])]


def test_exact_share_is_recall_at_1() -> None:
    kb = _kb()
    r = evaluate(_docs(), kb, ExactMatchLinker(kb), keep_predictions=True, n_bootstrap=10)
    s = hierarchy_of_result(r, kb)
    assert s.shares["exact"] == r.recall_at_1 == 25.0
    assert s.counts == {"exact": 1, "broader": 2, "narrower": 0, "sibling": 0, "unrelated": 1, "no_prediction": 0}
    r.predictions = None
    with raises_code("E561", ConfigError):
        hierarchy_of_result(r, kb)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    text = "A heart attack, myocardial ischemia and lung disease; heart disease here."
    rows = [("heart attack", "D000003"), ("myocardial ischemia", "MESH:D000003"), ("lung disease", "D000004"),
            ("heart disease", "D000002")]
    lines = [f"1|t|{text}", "1|a|"]
    for m, cid in rows:
        s = text.index(m)
        lines.append(f"1\t{s}\t{s + len(m)}\t{m}\tDisease\t{cid}")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    kb = tmp_path / "tree.jsonl"
    kb.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in _kb()), encoding="utf-8")
    flat = tmp_path / "flat.tsv"
    flat.write_text("D000003\tmyocardial infarction\theart attack\n", encoding="utf-8")
    return {"corpus": corpus, "kb": kb, "flat": flat}


def test_cli_hierarchy(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", str(files["corpus"]), "--kb", str(files["kb"]), "--linker", "exact",
                            "--hierarchy", "--json-out", str(out), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output
    assert "hierarchy of tree" in r.output and "broader 50.0%" in r.output
    res = json.loads(out.read_text())
    assert res["hierarchy"]["counts"]["exact"] == 1 and res["hierarchy"]["shares"]["exact"] == res["recall_at_1"]
    assert "predictions" not in res  # not asked for
    r = runner.invoke(app, ["evaluate", str(files["corpus"]), "--kb", str(files["kb"]), "--linker", "exact",
                            "--hierarchy", "--with-predictions", "--json-out", str(out), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(out.read_text())["predictions"]) == 4


def test_cli_hierarchy_without_one_fails_before_linking(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", str(files["corpus"]), "--kb", str(files["flat"]), "--linker", "exact",
                            "--hierarchy", "--json-out", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, ConfigError) and "[E560]" in str(r.exception)
    assert not out.exists()
