"""Fixtures for the trie tests: a tiny byte-level BPE tokenizer, a KB and a tiny random Llama."""

from __future__ import annotations

import pytest
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from tests.tiny_models import bpe_tokenizer, token_ids
from tests.tiny_models import tiny_llama as build_tiny_llama


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
    return bpe_tokenizer(
        CORPUS, vocab_size=320, special_tokens=["<pad>", "<eos>"], eos_token="<eos>", pad_token="<pad>",
        padding_side="left",
    )


@pytest.fixture
def kb() -> KnowledgeBase:
    return make_kb()


@pytest.fixture(scope="session")
def tiny_llama(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A random Llama over the tokenizer's vocabulary (bos = eos: the tokenizer has no bos token)."""
    return build_tiny_llama(len(tokenizer), max_position_embeddings=256, **token_ids(tokenizer))
