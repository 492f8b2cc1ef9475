"""Tiny BERT encoders for retrieval tests: a character WordPiece vocabulary and a 2-layer BertModel."""

from __future__ import annotations

import string
from pathlib import Path

import torch

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
