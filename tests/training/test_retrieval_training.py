from __future__ import annotations

import json
import math
import random

import pytest
import torch

from genbel.errors import ConfigError, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.dense import TextEncoder
from genbel.linkers.nametable import NameTable
from genbel.linkers.registry import create_linker
from genbel.training import dense as td
from genbel.training.dense import (
    BiosynConfig,
    SapbertConfig,
    infonce_loss,
    marginal_nll,
    multi_similarity_loss,
    synonym_pairs,
    train_biosyn,
    train_sapbert,
    training_mentions,
)
from tests.conftest import make_doc
from tests.linkers.retrieval_fixtures import make_tiny_encoder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture
def kb():
    return KnowledgeBase(
        [
            Concept("D001", "Breast Neoplasms", ["breast cancer", "breast tumor"]),
            Concept("D002", "Colorectal Neoplasms", ["colorectal cancer", "colon cancer"],
                    alt_ids=["OMIM:114500"]),
            Concept("D003", "Adenomatous Polyposis Coli", ["APC", "familial adenomatous polyposis"]),
            Concept("D004", "Migraine Disorders", ["migraine"]),
        ],
        name="tiny",
    )


@pytest.fixture
def docs():
    return [
        make_doc("1", "Germline APC mutations cause FAP, colorectal carcinoma and mammary cancer.",
                 [("APC", "Disease", "D003"), ("FAP", "Disease", "D003"),
                  ("colorectal carcinoma", "Disease", "OMIM:114500"), ("mammary cancer", "Disease", "D001")]),
        make_doc("2", "Mammary cancer, migraine headache, breast and colon cancers, a family, a wart.",
                 [("Mammary cancer", "Disease", "D001"), ("migraine headache", "Disease", "D004"),
                  ("breast and colon cancers", "Disease", "D001|D002"), ("family", "Disease", "-1"),
                  ("wart", "Disease", "D999")]),
    ]


# ---------------------------------------------------------------------------------------------- losses
def test_marginal_nll_sums_probability_over_all_positives():
    logits = torch.tensor([[0.0, 0.0, math.log(2.0)], [1.0, 2.0, 3.0]])
    positive = torch.tensor([[True, True, False], [False, False, False]])
    # row 0: p(pos) = (1 + 1) / (1 + 1 + 2) = 0.5; row 1 has no positive and is left out
    assert float(marginal_nll(logits, positive)) == pytest.approx(math.log(2.0))
    assert float(marginal_nll(logits, torch.zeros_like(positive))) == 0.0


def test_infonce_multi_positive_value():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([7, 7, 3])
    t = 0.5
    # anchors 0 and 1: one positive (sim 1) and one negative (sim 0); anchor 2 has no positive
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0)))
    assert float(infonce_loss(emb, labels, t)) == pytest.approx(expected, rel=1e-5)


def test_multi_similarity_loss_mines_hard_pairs():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    # positives at sim 1, negatives at sim 0: no pair passes the mining margin → loss 0
    assert float(multi_similarity_loss(emb, labels)) == pytest.approx(0.0, abs=1e-6)
    swapped = torch.tensor([0, 1, 0, 1])  # now every positive is at sim 0 and every negative at sim 1
    a, b, base = 2.0, 50.0, 0.5
    expected = math.log1p(math.exp(-a * (0 - base))) / a + math.log1p(math.exp(b * (1 - base))) / b
    assert float(multi_similarity_loss(emb, swapped, a, b, base)) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------------------------- data
def test_training_mentions_resolve_ids_and_drop_what_cannot_be_used(kb, docs):
    table = NameTable.from_kb(kb)
    ments, rep = training_mentions(docs, kb, table, unique=True)
    pos = {cid: j for j, cid in enumerate(table.concept_ids)}
    got = {(m.key, tuple(sorted(table.concept_ids[j] for j in m.concepts))) for m in ments}
    assert ("colorectal carcinoma", ("D002",)) in got  # via the alternate id OMIM:114500
    assert ("breast and colon cancers", ("D001", "D002")) in got  # a composite keeps both positives
    assert (rep.kept, rep.duplicates, rep.nil, rep.not_in_kb) == (6, 1, 1, 1)  # "Mammary cancer" = duplicate
    assert all(j in pos.values() for m in ments for j in m.concepts)
    assert len(training_mentions(docs, kb, table, unique=False)[0]) == 7


def test_synonym_pairs_stay_within_a_concept(kb):
    table = NameTable.from_kb(kb)
    pairs = synonym_pairs(table, random.Random(0), pairs_per_name=2)
    # three concepts with 3 names (2 partners each) and D004 with 2 names (1 partner each)
    assert len(pairs) == 3 * 3 * 2 + 2 * 1
    assert len(set(pairs)) == len(pairs)
    assert len(synonym_pairs(table, random.Random(0), pairs_per_name=1)) == 3 * 3 + 2
    for a, b in pairs:
        assert a != b and table.row_concept[a] == table.row_concept[b]
    only = synonym_pairs(table, random.Random(0), 1, concepts={3})
    assert sorted(only) == [(9, 10), (10, 9)]


# ---------------------------------------------------------------------------------------------- SapBERT
def _weights(path):
    return TextEncoder.from_pretrained(path).model.state_dict()


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
    real = td._Run.save_epoch

    def crash(self, epoch, encoder, state):
        real(self, epoch, encoder, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(td._Run, "save_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, progress=False)
    monkeypatch.setattr(td._Run, "save_epoch", real)
    c = train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=cfg, resume=True,
                      progress=False)
    wc = _weights(c / "encoder")
    assert all(torch.allclose(wa[k], wc[k], atol=1e-6) for k in wa)
    with pytest.raises(ConfigError, match="different settings"):
        train_sapbert(kb, str(encoder_dir), tmp_path / "c", documents=docs, config=SapbertConfig(lr=0.1),
                      resume=True, progress=False)


def test_sapbert_multi_similarity_and_bad_settings(kb, encoder_dir, tmp_path):
    ms = SapbertConfig(loss="multi-similarity", batch_size=8, max_steps=2)
    out = train_sapbert(kb, str(encoder_dir), tmp_path / "ms", config=ms, progress=False)
    assert json.loads((out / "retriever.json").read_text())["steps"] == 2
    with pytest.raises(ConfigError, match="loss"):
        train_sapbert(
            kb, str(encoder_dir), tmp_path / "x", config=SapbertConfig(loss="triplet"), progress=False
        )
    lonely = KnowledgeBase([Concept("X", "x")], name="lonely")
    with pytest.raises(InputError, match="training set is empty"):
        train_sapbert(lonely, str(encoder_dir), tmp_path / "y", progress=False)


# ---------------------------------------------------------------------------------------------- BioSyn
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
    with pytest.raises(InputError, match="training set is empty"):
        train_biosyn(kb, nil, str(encoder_dir), tmp_path / "z", progress=False)
    with pytest.raises(ConfigError, match="dense_ratio"):
        train_biosyn(
            kb, nil, str(encoder_dir), tmp_path / "z", config=BiosynConfig(dense_ratio=2.0), progress=False
        )


def test_freeze_layers_keeps_bottom_of_the_encoder_fixed(encoder_dir):
    enc = TextEncoder.from_pretrained(encoder_dir)
    total = sum(p.numel() for p in enc.model.parameters())
    layer = sum(p.numel() for p in enc.model.encoder.layer[0].parameters())
    emb = sum(p.numel() for p in enc.model.embeddings.parameters())
    assert td.freeze_layers(enc.model, -1) == total
    assert td.freeze_layers(enc.model, 1) == total - emb - layer
    assert all(not p.requires_grad for p in enc.model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in enc.model.encoder.layer[1].parameters())
    with pytest.raises(ConfigError, match="2 layers"):
        td.freeze_layers(enc.model, 3)


def test_int8_quantisation_round_trip_error_is_bounded():
    from genbel.linkers.dense import dequantize_int8, quantize_int8

    torch.manual_seed(0)
    state = {"w": torch.randn(64, 128), "bias": torch.randn(128), "small": torch.randn(4, 4)}
    q = quantize_int8(state)
    assert q["w"].dtype == torch.int8 and q["w.__scale"].shape == (64,)
    assert q["bias"].dtype == torch.float32 and q["small"].dtype == torch.float32
    back = dequantize_int8(q)
    assert set(back) == set(state)
    bound = (state["w"].abs().amax(1) / 127.0 / 2 + 1e-3)[:, None]
    assert bool(((back["w"] - state["w"]).abs() <= bound).all())
    assert torch.equal(back["bias"], state["bias"])


@pytest.mark.parametrize("weights", ["int8", "float16"])
def test_compact_encoder_prunes_the_vocabulary_and_keeps_embeddings(encoder_dir, tmp_path, weights):
    from transformers import BertTokenizerFast

    # a word-level vocabulary so that pruning has something to remove
    enc = TextEncoder.from_pretrained(encoder_dir)
    chars = [t for t in enc.tokenizer.get_vocab() if not t.startswith("[")]
    words = ["breast", "cancer", "colon", "##s", "migraine", "polyposis"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "zebra", "##zz", *chars]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))})
    model = enc.model
    model.resize_token_embeddings(len(tok))
    big = TextEncoder(model, tok, pooling="mean", max_length=16)
    out = td.compact_encoder(big, ["breast cancers", "colon cancer"], tmp_path / "c", weights=weights)
    small = TextEncoder.from_pretrained(out)
    kept = small.tokenizer.get_vocab()
    assert "breast" in kept and "##s" in kept and "zebra" not in kept and "migraine" not in kept
    assert "z" in kept and "##z" in kept  # single characters are kept: every word still tokenises
    assert small.tokenizer.tokenize("breast cancers") == big.tokenizer.tokenize("breast cancers")
    assert small.tokenizer("colon")["input_ids"][0] == kept["[CLS]"]
    a, b = big.encode(["breast cancers", "colon cancer"]), small.encode(["breast cancers", "colon cancer"])
    assert float((a * b).sum(1).min()) > 0.999
    assert small.model.dtype == torch.float32
    meta = json.loads((out / "genbel_encoder.json").read_text())
    assert meta["weights"] == weights and meta["vocab_kept"] == len(kept)


def test_biosyn_first_epoch_can_reuse_index_vectors(kb, docs, encoder_dir, tmp_path):
    import numpy as np

    from genbel.errors import IndexMismatchError
    from genbel.linkers.dense import DenseLinker

    DenseLinker(kb, str(encoder_dir)).save(tmp_path / "idx")
    vectors = td.index_vectors(tmp_path / "idx", kb)
    assert vectors.shape == (len(NameTable.from_kb(kb)), 32)
    cfg = BiosynConfig(epochs=1, batch_size=4, lr=1e-3, topk=4)
    a = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "a", config=cfg, progress=False)
    b = train_biosyn(kb, docs, str(encoder_dir), tmp_path / "b", config=cfg, initial_name_vectors=vectors,
                     progress=False)
    wa, wb = _weights(a / "encoder"), _weights(b / "encoder")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    with pytest.raises(ConfigError, match="initial_name_vectors"):
        train_biosyn(kb, docs, str(encoder_dir), tmp_path / "c", config=cfg,
                     initial_name_vectors=np.zeros((2, 32)), progress=False)
    other = KnowledgeBase([Concept("D001", "Breast Neoplasms")], name="other")
    with pytest.raises(IndexMismatchError):
        td.index_vectors(tmp_path / "idx", other)


def test_index_vectors_of_an_augmented_kb_map_back_by_name(kb, encoder_dir, tmp_path):
    import numpy as np

    from genbel.errors import IndexMismatchError
    from genbel.kb.loaders import augment_kb
    from genbel.linkers.dense import DenseLinker

    aug = KnowledgeBase([Concept.from_dict(c.to_dict()) for c in kb], name="aug")
    augment_kb(aug, [make_doc("1", "mammary cancer", [("mammary cancer", "Disease", "D001")])])
    assert aug.n_names() == kb.n_names() + 1
    DenseLinker(aug, str(encoder_dir)).save(tmp_path / "aug")
    mapped = td.index_vectors(tmp_path / "aug", kb, index_kb=aug)
    direct = TextEncoder.from_pretrained(encoder_dir).encode(NameTable.from_kb(kb).keys)
    np.testing.assert_allclose(mapped, direct, atol=1e-5)
    with pytest.raises(IndexMismatchError):
        td.index_vectors(tmp_path / "aug", aug, index_kb=kb)  # the index was not built for `kb`
    with pytest.raises(IndexMismatchError):  # names of the wanted KB missing from the index
        lobular = KnowledgeBase([Concept("D001", "lobular carcinoma")])
        td.index_vectors(tmp_path / "aug", lobular, index_kb=aug)
