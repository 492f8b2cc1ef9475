"""compact_encoder: a pruned vocabulary with int8/float16 weights."""

from __future__ import annotations

import json

import pytest
import torch

from genbel.encoders import TextEncoder, compact_encoder


@pytest.mark.parametrize("weights", ["int8", "float16"])
def test_compact_encoder_prunes_the_vocabulary_and_keeps_embeddings(encoder_dir, tmp_path, weights):
    from transformers import BertTokenizerFast

    # a word-level vocabulary so that pruning has something to remove
    enc = TextEncoder.load(encoder_dir)
    chars = [t for t in enc.tokenizer.get_vocab() if not t.startswith("[")]
    words = ["breast", "cancer", "colon", "##s", "migraine", "polyposis"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "zebra", "##zz", *chars]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))})
    model = enc.model
    model.resize_token_embeddings(len(tok))
    big = TextEncoder(model, tok, pooling="mean", max_length=16)
    out = compact_encoder(big, ["breast cancers", "colon cancer"], tmp_path / "c", weights=weights)
    small = TextEncoder.load(out)
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
