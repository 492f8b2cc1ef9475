"""Tiny random generative models and a tiny KB for the generative-linker tests (built in-process)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerFast

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from tests.tiny_models import bpe_tokenizer, tiny_bart, tiny_llama, tiny_t5

SENTENCES = [
    "The patient had [breast cancer]{Disorders} and took ibuprofen.",
    "[APC]{Chemical} was given twice",
    "Mutations in [APC]{Disease} cause familial adenomatous polyposis in many families of the cohort.",
    "[colon cancer]{SpecificDisease}",
    "Treatment with [Ibuprofen]{Chemicals & Drugs} reduced the pain of the patients in the trial.",
    "A [tumour]{} of the colon",
]


def tiny_kb() -> KnowledgeBase:
    """Two groups; ``APC`` is a name of one disorder and one chemical (a name with two codes)."""
    return KnowledgeBase(
        [
            Concept(
                "D001", "Breast Neoplasms", ["breast cancer", "breast tumor"], semantic_groups=["Disorders"]
            ),
            Concept(
                "D002",
                "Colorectal Neoplasms",
                ["colorectal cancer", "colon cancer"],
                alt_ids=["OMIM:114500"],
                semantic_groups=["Disorders"],
            ),
            Concept(
                "D003",
                "Adenomatous Polyposis Coli",
                ["APC", "familial adenomatous polyposis"],
                semantic_groups=["Disorders"],
            ),
            Concept("D004", "Pain", ["ache"], semantic_groups=["Disorders"]),
            Concept("C001", "Ibuprofen", ["ibuprofen", "APC"], semantic_groups=["Chemicals & Drugs"]),
            Concept("C002", "Aspirin", ["acetylsalicylic acid"], semantic_groups=["Chemicals & Drugs"]),
        ],
        name="tiny",
    )


def tiny_tokenizer(kb: KnowledgeBase) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the KB names and the test sentences (pad 0, bos 1, eos 2)."""
    texts = [n for n, _ in kb.name_pairs()] + SENTENCES + ["[ST] [ET] is"]
    return bpe_tokenizer(
        texts * 3,
        vocab_size=420,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


def tiny_model(kind: str, vocab_size: int, seed: int = 0) -> PreTrainedModel:
    """``llama`` (causal), ``bart`` or ``t5`` (seq2seq) with random weights (wide init: peaked outputs)."""
    if kind == "llama":
        return tiny_llama(vocab_size, seed=seed, initializer_range=0.5, tie_word_embeddings=False)
    if kind == "bart":
        return tiny_bart(vocab_size, seed=seed, forced_bos_token_id=None, init_std=0.5)
    if kind == "t5":
        return tiny_t5(vocab_size, seed=seed, initializer_factor=1.5)
    raise ValueError(kind)
