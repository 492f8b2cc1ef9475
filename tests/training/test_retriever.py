"""Retriever training (SapBERT-style and BioSyn): run layout, determinism, resume, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genbel.encoders import TextEncoder
from genbel.errors import ConfigError, IndexMismatchError, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.dense import DenseLinker
from genbel.linkers.dense_index import index_vectors
from genbel.linkers.nametable import NameTable
from genbel.linkers.registry import create_linker
from genbel.training import retriever as td
from genbel.training.retriever import BiosynConfig, SapbertConfig, train_biosyn, train_sapbert
from tests.conftest import make_doc
from tests.helpers import raises_code
from tests.training.retriever_fixtures import make_docs, make_kb


@pytest.fixture
def kb():
    return make_kb()


@pytest.fixture
def docs():
    return make_docs()


def _weights(path):
    return TextEncoder.load(path).model.state_dict()


def test_sapbert_run_layout_determinism_and_resume(kb, docs, encoder_dir, tmp_path, monkeypatch):
    cfg = SapbertConfig(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1, log_every=1)
    a = train_sapbert(kb, str(encoder_dir), tmp_path / "a", documents=docs, config=cfg, progress=False)
    assert sorted(p.name for p in a.iterdir()) == [
        "checkpoints", "concept_prior.json", "config.json", "encoder", "log.jsonl", "retriever.json"]
    # gold-concept counts of the training mentions
    # (composites count for each concept; NIL/unknown ids dropped)
    assert json.loads((a / "concept_prior.json").read_text()) == {"D001": 3, "D002": 2, "D003": 2, "D004": 1}
    assert [p.name for p in (a / "checkpoints").iterdir()] == ["epoch-2"]
    meta = json.loads((a / "retriever.json").read_text())
    assert meta["method"] == "sapbert" and meta["sparse_weight"] == 0.0 and meta["pooling"] == "mean"
    rows = [json.loads(x) for x in (a / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "epoch_loss" in r] == [1, 2]
    b = train_sapbert(kb, str(encoder_dir), tmp_path / "b", documents=docs, config=cfg, progress=False)
    wa, wb = _weights(a / "encoder"), _weights(b / "encoder")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same seed, same weights
    before = _weights(encoder_dir)
    assert any(not torch.equal(wa[k], before[k]) for k in wa)  # and training changed them

    # crash after the first epoch checkpoint, then resume: same result as the uninterrupted run
    real = td._save_epoch

    def crash(*args):
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(td, "_save_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, progress=False)
    monkeypatch.setattr(td, "_save_epoch", real)
    c = train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, resume=True,
                      progress=False)
    wc = _weights(c / "encoder")
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    with raises_code("E352", ConfigError, match="different settings"):
        train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=SapbertConfig(lr=0.1),
                      resume=True, progress=False)


def test_sapbert_multi_similarity_and_bad_settings(kb, encoder_dir, tmp_path):
    ms = SapbertConfig(loss="multi-similarity", batch_size=8, max_steps=2)
    out = train_sapbert(kb, str(encoder_dir), tmp_path / "ms", config=ms, progress=False)
    assert json.loads((out / "retriever.json").read_text())["steps"] == 2
    with raises_code("E022", ConfigError, match="loss"):
        train_sapbert(
            kb, str(encoder_dir), tmp_path / "x", config=SapbertConfig(loss="triplet"), progress=False
        )
    lonely = KnowledgeBase([Concept("X", "x")], name="lonely")
    with raises_code("E017", InputError, match="training set is empty"):
        train_sapbert(lonely, str(encoder_dir), tmp_path / "y", progress=False)


def test_biosyn_learns_lambda_and_ranks_training_mentions(kb, docs, encoder_dir, tmp_path):
    cfg = BiosynConfig(epochs=4, batch_size=3, lr=2e-3, topk=6, log_every=1)
    out = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "bio", config=cfg, progress=False)
    meta = json.loads((out / "retriever.json").read_text())
    assert meta["method"] == "biosyn" and meta["sparse_weight"] != cfg.initial_sparse_weight
    epochs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if "epoch_loss" in x]
    assert len(epochs) == 4 and epochs[-1]["epoch_loss"] < epochs[0]["epoch_loss"]
    assert all(e["candidate_recall"] == 1.0 for e in epochs)  # the tiny KB fits in the candidates
    linker = create_linker(f"biosyn:{out}", kb)
    assert linker.sparse_weight == pytest.approx(meta["sparse_weight"])
    res = linker.candidates(["FAP", "mammary cancer", "colorectal carcinoma", "migraine headache"], k=1)
    assert [r[0].concept_id for r in res] == ["D003", "D001", "D002", "D004"]


def test_biosyn_needs_usable_mentions(kb, encoder_dir, tmp_path):
    nil = [make_doc("9", "a wart", [("wart", "Disease", "D999")])]
    with raises_code("E017", InputError, match="training set is empty"):
        train_biosyn(kb, nil, str(encoder_dir), tmp_path / "z", progress=False)
    with raises_code("E023", ConfigError, match="dense_ratio"):
        train_biosyn(
            kb, nil, str(encoder_dir), tmp_path / "z", config=BiosynConfig(dense_ratio=2.0), progress=False
        )


def test_freeze_layers_keeps_bottom_of_the_encoder_fixed(encoder_dir):
    enc = TextEncoder.load(encoder_dir)
    total = sum(p.numel() for p in enc.model.parameters())
    layer = sum(p.numel() for p in enc.model.encoder.layer[0].parameters())
    emb = sum(p.numel() for p in enc.model.embeddings.parameters())
    assert td.freeze_layers(enc.model, -1) == total
    assert td.freeze_layers(enc.model, 1) == total - emb - layer
    assert all(not p.requires_grad for p in enc.model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in enc.model.encoder.layer[1].parameters())
    with raises_code("E023", ConfigError, match="2 .the model.s layers"):
        td.freeze_layers(enc.model, 3)


def test_biosyn_first_epoch_can_reuse_index_vectors(kb, docs, encoder_dir, tmp_path):
    DenseLinker(kb, str(encoder_dir)).save(tmp_path / "idx")
    vectors = index_vectors(tmp_path / "idx", kb)
    assert vectors.shape == (len(NameTable.from_kb(kb)), 32)
    cfg = BiosynConfig(epochs=1, batch_size=4, lr=1e-3, topk=4)
    a = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "a", config=cfg, progress=False)
    b = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "b", config=cfg, initial_name_vectors=vectors,
                     progress=False)
    wa, wb = _weights(a / "encoder"), _weights(b / "encoder")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    with raises_code("E310", ConfigError, match="initial_name_vectors"):
        train_biosyn(kb, docs, str(encoder_dir), tmp_path / "c", config=cfg,
                     initial_name_vectors=np.zeros((2, 32)), progress=False)
    other = KnowledgeBase([Concept("D001", "Breast Neoplasms")], name="other")
    with raises_code("E010", IndexMismatchError):
        index_vectors(tmp_path / "idx", other)


def _crash_at_checkpoint(monkeypatch, number: int, batch: int) -> None:
    """Interrupt training right after it writes the in-epoch checkpoint ``number`` at ``batch``."""
    real = td._save_epoch

    def crash(run, epoch, encoder, state, tensors, dist=None):
        real(run, epoch, encoder, state, tensors, dist)
        if epoch == number and state.get("batch") == batch:
            raise KeyboardInterrupt

    monkeypatch.setattr(td, "_save_epoch", crash)


def test_an_interrupted_sapbert_epoch_resumes_at_its_last_checkpoint(kb, docs, encoder_dir, tmp_path, monkeypatch):
    cfg = SapbertConfig(epochs=1, batch_size=2, lr=1e-3, warmup_steps=1, log_every=1)
    plain = train_sapbert(kb, str(encoder_dir), tmp_path / "plain", documents=docs, config=cfg, progress=False)
    a = train_sapbert(kb, str(encoder_dir), tmp_path / "a", documents=docs, config=cfg, progress=False,
                      checkpoint_every=3)
    wp, wa = _weights(plain / "encoder"), _weights(a / "encoder")
    assert all(torch.equal(wp[k], wa[k]) for k in wp)  # checkpoints inside the epoch change nothing
    assert [p.name for p in (a / "checkpoints").iterdir()] == ["epoch-1"]  # the epoch's own replaces them

    _crash_at_checkpoint(monkeypatch, 0, 3)
    with pytest.raises(KeyboardInterrupt):
        train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, progress=False,
                      checkpoint_every=3)
    state = json.loads((tmp_path / "c" / "checkpoints" / "epoch-0" / "state.json").read_text())
    assert state["batch"] == 3 and state["step"] == 3
    monkeypatch.undo()
    c = train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, resume=True,
                      progress=False, checkpoint_every=3)
    wc = _weights(c / "encoder")
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    assert json.loads((c / "retriever.json").read_text())["steps"] == json.loads(
        (a / "retriever.json").read_text())["steps"]


def test_an_interrupted_biosyn_epoch_resumes_with_its_candidates(kb, docs, encoder_dir, tmp_path, monkeypatch):
    cfg = BiosynConfig(epochs=2, batch_size=2, lr=2e-3, topk=4, log_every=1)
    a = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "a", config=cfg, progress=False, checkpoint_every=1)
    # interrupted inside the second epoch, whose candidates the first epoch's encoder mined
    _crash_at_checkpoint(monkeypatch, 1, 1)
    with pytest.raises(KeyboardInterrupt):
        train_biosyn(kb, docs, str(encoder_dir), tmp_path / "c", config=cfg, progress=False, checkpoint_every=1)
    saved = tmp_path / "c" / "checkpoints" / "epoch-1"
    assert json.loads((saved / "state.json").read_text())["batch"] == 1 and (saved / "candidates.pt").is_file()
    monkeypatch.undo()
    mined = []
    real_mine = td._biosyn_candidates
    monkeypatch.setattr(td, "_biosyn_candidates", lambda *a, **k: mined.append(1) or real_mine(*a, **k))
    c = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "c", config=cfg, resume=True, progress=False,
                     checkpoint_every=1)
    assert not mined  # the interrupted epoch's candidates come from its checkpoint, not a new encoder
    wa, wc = _weights(a / "encoder"), _weights(c / "encoder")
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    ma, mc = (json.loads((d / "retriever.json").read_text()) for d in (a, c))
    assert mc["steps"] == ma["steps"] and mc["sparse_weight"] == pytest.approx(ma["sparse_weight"], abs=1e-6)
