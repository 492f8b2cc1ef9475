"""Fixtures for the trie tests: a tiny byte-level BPE tokenizer, a KB and a tiny random Llama."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept


def make_kb() -> KnowledgeBase:
    """Six concepts; "breast cancer" and "tumor" are names of two concepts each."""
    return KnowledgeBase(
        [
            Concept(
                "D001",
                "Breast Neoplasms",
                ["breast cancer", "breast tumor", "tumor"],
                semantic_groups=["Disorders"],
            ),
            Concept(
                "D002",
                "Colorectal Neoplasms",
                ["colorectal cancer", "colon cancer"],
                alt_ids=["OMIM:114500"],
                semantic_groups=["Disorders"],
            ),
            Concept("D003", "Breast Carcinoma", ["breast cancer", "tumor"], semantic_groups=["Disorders"]),
            Concept("D004", "Breast", ["breast tissue"], semantic_groups=["Anatomy"]),
            Concept("C005", "Ibuprofen", ["ibuprofen", "Advil"], semantic_groups=["Chemicals & Drugs"]),
            Concept("C006", "Colon", [], semantic_groups=["Anatomy"]),
        ],
        name="trie-test",
    )


CORPUS = [
    "Breast Neoplasms breast cancer breast tumor tumor Colorectal Neoplasms colorectal cancer colon cancer",
    "Breast Carcinoma Breast breast tissue Ibuprofen ibuprofen Advil Colon",
    "the patient with breast cancer was given ibuprofen; colon and breast tissue are organs",
    "[breast tumor]{Disorders} mention is",
]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    fast.padding_side = "left"
    return fast


@pytest.fixture
def kb() -> KnowledgeBase:
    return make_kb()


@pytest.fixture(scope="session")
def tiny_llama(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    return model
