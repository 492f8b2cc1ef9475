"""Tiny random generative models and a tiny KB for the generative-linker tests (built in-process)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept

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
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts * 3, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_model(kind: str, vocab_size: int, seed: int = 0):
    """``llama`` (causal), ``bart`` or ``t5`` (seq2seq) with random weights (wide init: peaked outputs)."""
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            initializer_range=0.5,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(cfg)
    elif kind == "bart":
        cfg = BartConfig(
            vocab_size=vocab_size,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=256,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_bos_token_id=None,
            forced_eos_token_id=None,
            init_std=0.5,
        )
        model = BartForConditionalGeneration(cfg)
    elif kind == "t5":
        cfg = T5Config(
            vocab_size=vocab_size,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_decoder_layers=1,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=0,
            initializer_factor=1.5,
        )
        model = T5ForConditionalGeneration(cfg)
    else:
        raise ValueError(kind)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread (and do not fight other tests for cores); import it to use it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
