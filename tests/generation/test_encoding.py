"""Prompt encoding: mention-level ids (PromptEncoder) and document-level prompts (DocumentPromptEncoder:
memory block, token-trimmed context, oldest memory left out first)."""

from __future__ import annotations

import pytest

from genbel.data.queries import MentionQuery
from genbel.errors import ConfigError
from genbel.generation.encoding import (
    DocumentPromptEncoder,
    DocumentQuery,
    PromptEncoder,
    distinct_memory,
    with_memory,
)
from genbel.generation.prompts import PromptFormat, parse_markup
from tests.helpers import raises_code
from tests.linkers.generative_tiny import tiny_kb, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(tiny_kb())


def test_prompt_and_target_ids_are_tokenized_separately_and_concatenated(tok):
    enc = PromptEncoder(tok, PromptFormat(), "causal")
    q = parse_markup("The patient had [breast cancer]{Disorders} and pain.")
    assert enc.encode(q).input_ids == tok(PromptFormat().prompt(q))["input_ids"]
    assert enc.encode(q).prompt_ids == enc.encode(q).input_ids
    target = enc.encode_target("Breast Neoplasms")
    assert target == tok(" Breast Neoplasms", add_special_tokens=False)["input_ids"] + [enc.eos_token_id]
    s2s = PromptEncoder(tok, PromptFormat(style="genbioel"), "seq2seq", decoder_start_token_id=2)
    e = s2s.encode(q)
    assert e.decoder_ids == [2, *tok("breast cancer is", add_special_tokens=False)["input_ids"]]
    assert e.prompt_ids == e.decoder_ids


def test_encoder_settings_are_checked(tok):
    with raises_code("E022", ConfigError):
        PromptEncoder(tok, PromptFormat(), "encoder-only")
    with raises_code("E258", ConfigError):
        PromptEncoder(tok, PromptFormat(style="genbioel"), "seq2seq")


def test_a_document_query_without_memory_encodes_as_the_plain_prompt(tok):
    q = parse_markup("The patient had [breast cancer]{Disorders} and pain.")
    plain = PromptEncoder(tok, PromptFormat(context_chars=None), "causal")
    doc = DocumentPromptEncoder(tok, PromptFormat(context_chars=None), "causal")
    assert doc.encode(with_memory(q, [])).input_ids == plain.encode(q).input_ids
    assert isinstance(with_memory(q, [("a", "A")]), DocumentQuery)


# ------------------------------------------------------------------------------------------ document level
def _long_query() -> MentionQuery:
    left = " ".join(f"left{i}" for i in range(60)) + " "
    right = " " + " ".join(f"right{i}" for i in range(60))
    text = left + "breast cancer" + right
    return MentionQuery("breast cancer", type="Disease", context=text, start=len(left), end=len(left) + 13)


@pytest.mark.parametrize("budget", [12, 20, 40, 80])
def test_context_is_trimmed_by_tokens_around_the_mention(tok, budget):
    enc = DocumentPromptEncoder(
        tok, PromptFormat(context_chars=None), "causal", max_source_length=budget
    )
    q = _long_query()
    text, _ = enc.fit_prompt(q)
    ids = enc.encode(q).input_ids
    assert len(ids) <= budget
    assert "[breast cancer]{Disease}" in text and text.endswith("\nbreast cancer is")
    left, right = text.split("[breast cancer]{Disease}")
    right = right[: -len("\nbreast cancer is")]
    n_left = len(tok(left, add_special_tokens=False)["input_ids"])
    n_right = len(tok(right, add_special_tokens=False)["input_ids"])
    assert abs(n_left - n_right) <= 3  # both sides have plenty of text: the room is shared evenly
    # a larger budget keeps a superset of the context
    bigger, _ = DocumentPromptEncoder(
        tok, PromptFormat(context_chars=None), "causal", max_source_length=budget + 20
    ).fit_prompt(q)
    assert len(bigger) > len(text)


def test_a_prompt_that_fits_is_the_whole_document_prompt(tok):
    q = DocumentQuery(
        "pain", type="Disease", context="Some pain here.", start=5, end=9, memory=[("a", "Pain")]
    )
    enc = DocumentPromptEncoder(
        tok, PromptFormat(context_chars=None), "causal", max_source_length=512
    )
    text, kept = enc.fit_prompt(q)
    assert kept == 1
    assert text == "a is Pain\n---\nSome [pain]{Disease} here.\npain is"
    assert enc.encode(q).input_ids == tok(text)["input_ids"]


def test_oldest_memory_entries_are_left_out_first(tok):
    memory = [(f"m{i}", "Breast Neoplasms") for i in range(6)]
    q = DocumentQuery("pain", type="Disease", context="pain", start=0, end=4, memory=memory)
    enc = DocumentPromptEncoder(tok, PromptFormat(context_chars=None), "causal", max_source_length=40)
    text, kept = enc.fit_prompt(q)
    assert 0 < kept < 6
    assert text.startswith(PromptFormat().memory_block(memory[6 - kept :]))
    assert len(enc.encode(q).input_ids) <= 40


def test_distinct_memory_matches_the_memory_block():
    mem = [("a", "A1"), ("b", "B"), ("a", "A2"), ("c", "C")]
    assert distinct_memory(mem, 10) == [("b", "B"), ("a", "A2"), ("c", "C")]
    assert distinct_memory(mem, 2) == [("a", "A2"), ("c", "C")]
    assert distinct_memory(mem, 0) == []
    fmt = PromptFormat(memory_size=2)
    assert fmt.memory_block(mem) == "a is A2\nc is C\n---\n"




def test_lines_memory_over_the_budget_leaves_out_whole_chunks(tok):
    memory = [(f"m{i}", "Breast Neoplasms") for i in range(8)]
    fmt = PromptFormat(context_chars=0, memory_size=8, memory_style="lines")
    q = DocumentQuery("pain", type="Disease", context="pain", start=0, end=4, memory=memory)
    enc = DocumentPromptEncoder(tok, fmt, "causal", max_source_length=40)
    text, kept = enc.fit_prompt(q)
    assert 0 < kept < 8 and (8 - kept) % 4 == 0  # chunks of memory_size // 2
    assert text == fmt.memory_block(memory[8 - kept :]) + "pain is"
    assert len(enc.encode(q).input_ids) <= 40
    assert distinct_memory(memory, 8) == memory  # block layout helper: unchanged
