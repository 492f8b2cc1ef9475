"""Tiny BERT encoders for retrieval tests: a character WordPiece vocabulary and a 2-layer BertModel."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from genbel.encoders import TextEncoder

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_encoder(directory: Path, seed: int = 0, hidden: int = 32) -> Path:
    """Write a randomly initialised tiny BERT checkpoint + tokenizer to ``directory``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits)
    vocab = SPECIAL + chars + [f"##{c}" for c in chars]
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    tok.save_pretrained(directory)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(directory)
    return directory


# ---------------------------------------------------------------- a base encoder and a 'trained' retriever
NAMES = ["breast cancer", "colon cancer", "adenomatous polyposis coli", "ibuprofen", "apc", "x"]
TRAINED = "encoder.layer.1."  # the fixture "fine-tunes" the top layer only, as frozen training does


def make_bert(directory, *, hidden=64, layers=2, heads=2, seed=0):
    """A tiny BERT with the tokenizer of :func:`make_tiny_encoder` and a chosen architecture."""
    from transformers import BertConfig, BertModel

    make_tiny_encoder(directory, seed=seed, hidden=hidden)
    torch.manual_seed(seed)
    cfg = BertConfig.from_pretrained(directory)
    cfg.num_hidden_layers, cfg.num_attention_heads = layers, heads
    BertModel(cfg).save_pretrained(directory)
    return directory


def write_retriever_run(run, encoder: TextEncoder, sparse_weight=0.5):
    encoder.save(run / "encoder")
    (run / "retriever.json").write_text(json.dumps(
        {"method": "biosyn", "pooling": encoder.pooling, "max_length": encoder.max_length,
         "sparse_weight": sparse_weight}
    ))
    (run / "concept_prior.json").write_text(json.dumps({"D002": 3}))
    return run


def make_base_encoder(directory: Path) -> Path:
    """The base model of the delta tests (hidden size 64)."""
    return make_tiny_encoder(directory, hidden=64)


def make_trained_run(base_dir: Path) -> Path:
    """A 'trained' retriever: the base with its top layer moved by ~1e-3, like a short fine-tuning."""
    enc = TextEncoder.load(base_dir, pooling="mean", max_length=16)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in enc.model.named_parameters():
            if name.startswith(TRAINED):
                p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    return write_retriever_run(base_dir.parent / "run", enc)
