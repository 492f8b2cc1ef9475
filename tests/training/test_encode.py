from __future__ import annotations

import torch

from genbel.data.queries import MentionQuery
from genbel.generation.encoding import PromptEncoder
from genbel.generation.prompts import PromptFormat
from genbel.training.encode import IGNORE, collate, encode_example
from genbel.training.examples import TrainingExample


def _ex(text="breast cancers", target="Breast Cancer"):
    ctx = f"Women with {text} were studied."
    q = MentionQuery(text=text, type="Disease", context=ctx, start=11, end=11 + len(text))
    return TrainingExample(query=q, target=target, concept_id="D001943")


def test_causal_labels_mask_exactly_the_prompt(tokenizer):
    fmt = PromptFormat(context_chars=0)
    enc = PromptEncoder(tokenizer, fmt, "causal")
    e = encode_example(_ex(), enc)
    prompt = tokenizer(fmt.prompt(_ex().query)).input_ids
    target = tokenizer(" Breast Cancer", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert e.input_ids == prompt + target
    assert e.labels == [IGNORE] * len(prompt) + target
    assert e.decoder_input_ids is None


def test_causal_collate_left_pads(tokenizer):
    enc = PromptEncoder(tokenizer, PromptFormat(context_chars=0), "causal")
    a, b = encode_example(_ex(), enc), encode_example(_ex("DM", "DM"), enc)
    batch = collate([a, b], tokenizer.pad_token_id, "causal")
    n = max(len(a.input_ids), len(b.input_ids))
    short = b if len(b.input_ids) < len(a.input_ids) else a
    row = 1 if short is b else 0
    pad = n - len(short.input_ids)
    assert batch["input_ids"].shape == (2, n)
    assert batch["input_ids"][row, :pad].tolist() == [tokenizer.pad_token_id] * pad
    assert batch["labels"][row, :pad].tolist() == [IGNORE] * pad
    assert batch["labels"][row, pad:].tolist() == short.labels
    assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * len(short.input_ids)
    assert batch["position_ids"][row, pad:].tolist() == list(range(len(short.input_ids)))
    n_target = max(sum(1 for x in e.labels if x != IGNORE) for e in (a, b))
    assert int(batch["n_target"]) == n_target
    # every label position is within the last n_target positions
    nz = (batch["labels"] != IGNORE).nonzero()[:, 1]
    assert int(nz.min()) >= n - n_target


def test_seq2seq_decoder_prompt_is_masked(tokenizer):
    fmt = PromptFormat(style="genbioel", context_chars=10)
    enc = PromptEncoder(tokenizer, fmt, "seq2seq", decoder_start_token_id=tokenizer.eos_token_id)
    e = encode_example(_ex(), enc)
    src = tokenizer(fmt.source(_ex().query)).input_ids
    pre = tokenizer("breast cancers is", add_special_tokens=False).input_ids
    tgt = tokenizer(" Breast Cancer", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert e.input_ids == src
    assert e.decoder_input_ids == [tokenizer.eos_token_id] + pre + tgt[:-1]
    assert e.labels == [IGNORE] * len(pre) + tgt
    assert len(e.labels) == len(e.decoder_input_ids)
    batch = collate([e, encode_example(_ex("DM", "DM"), enc)], tokenizer.pad_token_id, "seq2seq")
    assert batch["decoder_input_ids"].shape == batch["labels"].shape
    assert batch["labels"][0].tolist() == e.labels + [IGNORE] * (batch["labels"].shape[1] - len(e.labels))
    assert torch.equal(
        batch["decoder_attention_mask"].sum(1),
        torch.tensor([len(e.decoder_input_ids), batch["decoder_attention_mask"][1].sum()]),
    )
