"""Reranker training: fold-wise mining, training lists, the run (resume), dev tuning and the delta export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genbel.errors import ConfigError, InputError
from genbel.linkers.registry import create_linker
from genbel.linkers.rerank import RERANKER_CONFIG, CrossEncoder, RerankLinker
from genbel.training.reranker import (
    DevScores,
    RerankerConfig,
    export_reranker,
    train_reranker,
    training_list,
    tune_reranker,
)
from genbel.training.reranker_data import RerankList, fold_of, mine_lists
from tests.conftest import make_doc
from tests.helpers import raises_code

TEXTS = [
    ("d1", "Women with breast cancer were seen.", [("breast cancer", "Disease", "D001")]),
    ("d2", "A colon cancer and APC were found.", [("colon cancer", "Disease", "D002"), ("APC", "Disease", "D003")]),
    ("d3", "Familial adenomatous polyposis runs in families.", [("Familial adenomatous polyposis", "Disease", "D003")]),
    ("d4", "The breast tumour grew.", [("breast tumour", "Disease", "D001")]),
    ("d5", "Colorectal cancer risk.", [("Colorectal cancer", "Disease", "D002")]),
]


@pytest.fixture
def docs():
    return [make_doc(i, t, m) for i, t, m in TEXTS]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from tests.linkers.retrieval_fixtures import make_bert

    return make_bert(tmp_path_factory.mktemp("rr-base"), hidden=32, layers=2)


def test_fold_wise_mining_never_finds_the_mention_itself(tiny_kb, docs):
    lists = mine_lists(docs, tiny_kb, "tfidf", n_candidates=4, folds=5, progress=False)
    assert len(lists) == 6 and all(r.gold for r in lists)
    by_text = {r.plain: r for r in lists}
    # "breast tumour" is in no KB name: with it added to the KB (all folds at once) tf-idf would
    # retrieve the mention itself; fold-wise, only the other documents' mentions are there
    names = {n for _, n, _ in by_text["breast tumour"].candidates}
    assert "breast tumour" not in names
    assert fold_of("d1", 5) == fold_of("d1", 5) and 0 <= fold_of("x", 3) < 3
    assert by_text["colon cancer"].context.startswith("A [ colon cancer ]")


def test_training_list_puts_the_gold_concept_in(tiny_kb):
    item = RerankList("x", "x", frozenset({"D003"}), [("D001", "breast cancer", 0.9), ("D002", "colon cancer", 0.5)])
    names, gold = training_list(item, tiny_kb, n_negatives=1)
    assert names == ["Adenomatous Polyposis Coli", "breast cancer"] and gold == [True, False]
    item2 = RerankList("x", "x", frozenset({"D002"}), [("D001", "a", 0.9), ("D002", "b", 0.5), ("D003", "c", 0.1)])
    assert training_list(item2, tiny_kb, n_negatives=5) == (["a", "b", "c"], [False, True, False])


def _lists():
    return [
        RerankList("colon cancer", "A [ colon cancer ] and", frozenset({"D002"}),
                   [("D001", "breast cancer", 0.9), ("D002", "colon cancer", 0.8), ("D003", "APC", 0.1)]),
        RerankList("breast tumour", "The [ breast tumour ] grew", frozenset({"D001"}),
                   [("D001", "breast tumor", 0.95), ("D002", "colon cancer", 0.2)]),
        RerankList("polyposis", "polyposis", frozenset({"D003"}),
                   [("D003", "familial adenomatous polyposis", 0.7), ("D001", "breast cancer", 0.3)]),
    ]


def test_training_run_resumes_and_loads_as_a_linker(tiny_kb, docs, base, tmp_path, monkeypatch):
    import shutil

    from genbel.training.run import RunDirectory

    cfg = RerankerConfig(epochs=2, batch_size=2, n_negatives=2, freeze_layers=1, link_candidates=3, max_length=24,
                         warmup_steps=1, seed=3)
    monkeypatch.setattr(RunDirectory, "prune", lambda self, keep, protect=(): None)  # keep epoch 1 to resume from
    run = train_reranker(tiny_kb, docs, tmp_path / "run", base=base, config=cfg, lists=_lists(), progress=False)
    saved = json.loads((run / RERANKER_CONFIG).read_text())
    assert saved["n_candidates"] == 3 and saved["layers"] == 2 and saved["steps"] == 4
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert any("epoch_loss" in r and np.isfinite(r["epoch_loss"]) for r in log)
    # a run interrupted after epoch 1 and resumed ends with the same weights as the uninterrupted one
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    shutil.rmtree(cut / "checkpoints" / "epoch-2")
    resumed = train_reranker(tiny_kb, docs, cut, base=base, config=cfg, lists=_lists(), resume=True, progress=False)
    a, _ = CrossEncoder.load(resumed)
    b, _ = CrossEncoder.load(run)
    pairs = (["colon cancer", "polyposis"], ["colon cancer", "breast cancer"])
    assert a.score(*pairs) == pytest.approx(b.score(*pairs), abs=1e-6)
    linker = create_linker(f"tfidf+rerank:{run}", tiny_kb)
    assert isinstance(linker, RerankLinker) and len(linker.link(["colon cancer"], k=2)[0]) == 2
    with raises_code("E352", ConfigError):  # other settings on --resume
        train_reranker(tiny_kb, docs, run, base=base, config=RerankerConfig(**{**cfg.__dict__, "lr": 1.0}),
                       lists=_lists(), resume=True, progress=False)


def test_empty_training_set_is_refused(tiny_kb, base, tmp_path):
    with raises_code("E017", InputError):
        train_reranker(tiny_kb, [], tmp_path / "r", base=base, config=RerankerConfig(epochs=1), lists=[],
                       progress=False)
    with raises_code("E023", ConfigError):
        train_reranker(tiny_kb, [], tmp_path / "r2", base=base, config=RerankerConfig(context_rate=2.0), lists=[],
                       progress=False)


def test_tuning_picks_weights_gate_and_nil_on_dev():
    # mention 0: retriever wrong, cross-encoder right; 1 and 2: both right, retriever confident
    gold = [np.array([False, True]), np.array([True, False]), np.array([True, False])]
    retrieval = [np.array([0.6, 0.55], np.float32), np.array([0.99, 0.2], np.float32), np.array([0.98, 0.3], np.float32)]
    plain = [np.array([-1.0, 2.0], np.float32), np.array([3.0, -2.0], np.float32), np.array([2.5, -1.0], np.float32)]
    scores = DevScores(retrieval, plain, plain, gold)
    chosen = tune_reranker(scores, trained_window=4)
    assert chosen["dev"]["retriever_r1"] == pytest.approx(66.67, abs=0.01)
    assert chosen["dev"]["rerank_r1"] == 100.0 and chosen["retriever_weight"] == 0.0
    assert chosen["dev"]["gated_share"] > 0 and chosen["dev"]["gated_r1"] == 100.0
    # the gold concepts held out, the best left scores -1, -2, -1: a threshold between those and 2
    assert -1.0 < chosen["nil_threshold"] <= 2.0
    with raises_code("E474", InputError):
        tune_reranker(DevScores([], [], [], []), 4)


def test_export_is_a_delta_with_the_same_scores(tiny_kb, base, tmp_path):
    cfg = RerankerConfig(epochs=1, batch_size=3, n_negatives=2, freeze_layers=1, max_length=24, warmup_steps=1,
                         lr=1e-2)
    run = train_reranker(tiny_kb, [], tmp_path / "run", base=base, config=cfg, lists=_lists(), progress=False)
    out = export_reranker(run, tmp_path / "ship", base=base, weights="float32")
    info = json.loads((out / "encoder" / "genbel_encoder.json").read_text())
    assert info["weights"] == "delta" and info["changed_tensors"] > 0
    assert not any("layer.0." in k for k in _delta_names(out))  # frozen layer: not stored
    a, _ = CrossEncoder.load(run)
    b, _ = CrossEncoder.load(out)
    pairs = (["colon cancer", "polyposis"], ["colon cancer", "breast cancer"])
    assert b.score(*pairs) == pytest.approx(a.score(*pairs), abs=1e-5)
    # a model cut to fewer layers ships as the base with its first layers replaced
    cut = train_reranker(tiny_kb, [], tmp_path / "cut", base=base, lists=_lists(), progress=False,
                         config=RerankerConfig(**{**cfg.__dict__, "layers": 1, "freeze_layers": 0}))
    out2 = export_reranker(cut, tmp_path / "ship-cut", base=base, weights="int8")
    c, saved = CrossEncoder.load(out2)
    assert c.layers == 1 and saved["layers"] == 1
    d, _ = CrossEncoder.load(cut)
    assert c.score(*pairs) == pytest.approx(d.score(*pairs), abs=2e-2)


def _delta_names(out: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(out / "encoder" / "delta.safetensors"), "pt") as f:
        return list(f.keys())


def test_train_and_export_commands(tiny_kb, docs, base, tmp_path):
    from typer.testing import CliRunner

    from genbel.cli.main import app
    from genbel.data import write_corpus

    kbf = tmp_path / "kb.jsonl"
    kbf.write_text("\n".join(json.dumps(c.to_dict()) for c in tiny_kb) + "\n")
    corpus = tmp_path / "train.jsonl"
    write_corpus(docs, corpus)
    out = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(app, ["train-reranker", "--kb", str(kbf), "--train", str(corpus), "--dev", str(corpus),
                            "--retriever", "tfidf", "--base", str(base), "--out", str(out), "--epochs", "1",
                            "--folds", "2", "--candidates", "3", "--freeze-layers", "1", "--threads", "1"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / RERANKER_CONFIG).read_text())
    assert saved["n_candidates"] == 3 and saved["dev"]["mentions"] == 6
    assert {"gate_score", "gate_margin", "nil_threshold", "context_window", "retriever_weight"} <= set(saved)
    r = runner.invoke(app, ["export-reranker", str(out), "--out", str(tmp_path / "ship"), "--delta-from", str(base)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ship" / "encoder" / "delta.safetensors").is_file()
    r = runner.invoke(app, ["export-reranker", str(out), "--out", str(out), "--delta-from", str(base)])
    assert r.exit_code != 0 and "E451" in str(r.exception)


def test_hardest_lists_first_and_mined_lists_reused(tiny_kb, docs, base, tmp_path, monkeypatch):
    from genbel.training import reranker as rr
    from genbel.training.reranker_data import hardest

    lists = _lists()
    assert [x.margin() for x in lists] == pytest.approx([-0.1, 0.75, 0.4])
    assert [x.plain for x in hardest(lists, 2)] == ["colon cancer", "polyposis"]
    assert hardest(lists, None) == lists
    cfg = RerankerConfig(epochs=1, batch_size=4, n_negatives=1, freeze_layers=1, max_length=24, folds=2)
    train_reranker(tiny_kb, docs, tmp_path / "run", retriever="tfidf", base=base, config=cfg, progress=False)
    assert (tmp_path / "run" / "lists.jsonl").is_file()
    monkeypatch.setattr(rr, "mine_lists", lambda *a, **k: pytest.fail("mined again"))
    cfg2 = RerankerConfig(**{**cfg.__dict__, "lr": 1e-4, "max_lists": 3})  # other training settings: same lists
    run = train_reranker(tiny_kb, docs, tmp_path / "run", retriever="tfidf", base=base, config=cfg2, progress=False)
    assert json.loads((run / RERANKER_CONFIG).read_text())["lists"] == 3


def test_residual_lists_follow_retrieval_order():
    from genbel.training.reranker import fit_retriever_weight, residual_list

    item = RerankList("x", "x", frozenset({"D003"}), [("D001", "a", 0.9), ("D002", "b", 0.5), ("D003", "c", 0.1)],
                      matched=["syn a", "b", "c"])
    # the gold concept ranks 3rd, beyond 1 + 1 negatives: it replaces the last candidate
    assert residual_list(item, 1) == (["a", "c"], [False, True], [0.9, 0.1])
    assert residual_list(item, 1, pair_text="both")[0] == ["syn a ; a", "c"]
    assert residual_list(RerankList("x", "x", frozenset({"D009"}), [("D001", "a", 0.9)]), 3) is None
    # the retrieval score alone ranks gold first on these lists: the larger the weight, the lower the loss
    easy = [(["a", "b"], [True, False], [0.9, 0.5]), (["c", "d"], [True, False], [0.8, 0.7])]
    mixed = [*easy, (["e", "f"], [False, True], [0.9, 0.6])]
    assert fit_retriever_weight(easy) > 100 and 1.0 <= fit_retriever_weight(mixed) < 20


def test_residual_run_starts_at_the_retriever_and_caches_frozen_layers(tiny_kb, base, tmp_path):
    cfg = RerankerConfig(epochs=1, batch_size=2, n_negatives=2, freeze_layers=1, max_length=24, warmup_steps=1,
                         residual=True, pair_text="both", train_pooler=True, lr=1e-3)
    run = train_reranker(tiny_kb, [], tmp_path / "run", base=base, config=cfg, lists=_lists(), progress=False)
    saved = json.loads((run / RERANKER_CONFIG).read_text())
    assert saved["residual"] is True and saved["pair_text"] == "both" and saved["retriever_weight"] > 0
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert all("retriever_weight" in r for r in log if "loss" in r)
    # the same run without the frozen-layer cache: the same kind of model, scores of the same pairs
    ce, _ = CrossEncoder.load(run)
    with torch.no_grad():
        a, b = ["colon cancer", "polyposis"], ["colon cancer", "breast cancer ; APC"]
        direct = ce.model(**ce.tokenize(a, b)).logits.squeeze(-1)
        cached = ce.logits_from_states(ce.prefix_states(a, b, 1), 1)
    assert cached.numpy() == pytest.approx(direct.numpy(), abs=1e-2)
    with raises_code("E476", ConfigError):
        train_reranker(tiny_kb, [], tmp_path / "r2", base=base, config=RerankerConfig(pair_text="synonym"),
                       lists=_lists(), progress=False)


def test_train_reranker_command_residual(tiny_kb, docs, base, tmp_path):
    from typer.testing import CliRunner

    from genbel.cli.main import app
    from genbel.data import write_corpus

    kbf = tmp_path / "kb.jsonl"
    kbf.write_text("\n".join(json.dumps(c.to_dict()) for c in tiny_kb) + "\n")
    corpus = tmp_path / "train.jsonl"
    write_corpus(docs, corpus)
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train-reranker", "--kb", str(kbf), "--train", str(corpus), "--dev", str(corpus),
                                 "--retriever", "tfidf", "--base", str(base), "--out", str(out), "--epochs", "1",
                                 "--folds", "2", "--candidates", "3", "--freeze-layers", "1", "--threads", "1",
                                 "--residual", "--pair-text", "both", "--train-pooler", "--context-rate", "0"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / RERANKER_CONFIG).read_text())
    assert saved["residual"] is True and saved["pair_text"] == "both"
    # the weight the run learned (and its multiples) joined the fixed grid of weights tried on dev
    tried = {row["retriever_weight"] for row in saved["dev"]["grid"]}
    assert len(tried - {0.0, 1.0, 2.0, 5.0, 10.0}) >= 4
    r = CliRunner().invoke(app, ["train-reranker", "--kb", str(kbf), "--train", str(corpus), "--out",
                                 str(tmp_path / "r2"), "--pair-text", "synonym", "--base", str(base)])
    assert r.exit_code != 0 and "E476" in str(r.exception)
