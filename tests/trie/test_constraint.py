"""TrieConstraint / TrieLogitsProcessor: unit semantics and beam search with a tiny random Llama."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LlamaForCausalLM, LogitsProcessorList, PreTrainedTokenizerFast

from genbel.errors import InputError
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.trie import CandidateTrie, TokenTrie, TrieConstraint, TrieLogitsProcessor
from tests.helpers import raises_code

EOS, PAD = 1, 0


@pytest.fixture
def ct(kb: KnowledgeBase, tokenizer: PreTrainedTokenizerFast) -> CandidateTrie:
    return CandidateTrie.from_kb(kb, tokenizer, target=PromptFormat.target, show_progress=False)


def ids_of(tokenizer: PreTrainedTokenizerFast, name: str) -> list[int]:
    return tokenizer(PromptFormat.target(name), add_special_tokens=False)["input_ids"]


def seq(prompt: list[int], gen: list[int]) -> torch.LongTensor:
    return torch.tensor(prompt + gen, dtype=torch.long)


# --------------------------------------------------------------------------- unit semantics
def test_allowed_tokens_follow_the_trie() -> None:
    # names: [5, 2] [5, 2, 9] [7]; the trie built with EOS (=1) appended, as CandidateTrie does
    trie = TokenTrie.build([[5, 2, EOS], [5, 2, 9, EOS], [7, EOS]])
    c = TrieConstraint(trie, 2, num_beams=1, eos_token_id=EOS, pad_token_id=PAD)
    prompt = [40, 41]
    assert c(0, seq(prompt, [])) == [5, 7]
    assert c(0, seq(prompt, [5])) == [2]
    assert sorted(c(0, seq(prompt, [5, 2]))) == [EOS, 9]  # a name ends here: EOS allowed, or go on
    assert c(0, seq(prompt, [5, 2, 9])) == [EOS]
    assert c(0, seq(prompt, [5, 2, 9, EOS])) == [PAD]  # finished
    assert c.rewalks == 0


def test_terminal_without_eos_in_trie() -> None:
    trie = TokenTrie.build([[5, 2], [5, 2, 9]])  # no EOS token in the sequences
    c = TrieConstraint(trie, 0, num_beams=1, eos_token_id=EOS)
    assert sorted(c(0, seq([], [5, 2]))) == [EOS, 9]
    assert c(0, seq([], [5, 2, 9])) == [EOS]
    assert c(0, seq([], [5, 2, 9, EOS])) == [EOS]  # ended; no pad id: EOS


def test_invalid_and_ended_states_never_empty() -> None:
    trie = TokenTrie.build([[5, 2, EOS], [7, EOS]])
    c = TrieConstraint(trie, 1, num_beams=2, eos_token_id=EOS, pad_token_id=PAD)
    assert c(0, seq([3], [6])) == [PAD]  # left the trie
    assert c(0, seq([3], [6, 5])) == [PAD]  # stays invalid
    assert c(0, seq([3], [PAD])) == [PAD]
    assert c(1, seq([3], [5, EOS])) == [PAD]  # EOS where no name ends is also the end


def test_restrictions_per_batch_item() -> None:
    trie = TokenTrie.build([[5, 2, EOS], [5, 2, 9, EOS], [7, EOS]])
    only_long = trie.restriction([1])
    nothing = trie.restriction([])
    c = TrieConstraint(
        trie, 0, num_beams=2, restrictions=[only_long, None, nothing], eos_token_id=EOS, pad_token_id=PAD
    )
    assert c(0, seq([], [])) == [5]
    assert c(0, seq([], [5, 2])) == [9]  # [5, 2] ends here but is not allowed
    assert c(1, seq([], [])) == [5, 7]
    assert sorted(c(1, seq([], [5, 2]))) == [EOS, 9]
    assert c(2, seq([], [])) == [PAD]  # nothing allowed: still never empty
    with raises_code("E208", InputError, match="batch item 3"):
        c(3, seq([], []))
    other = TokenTrie.build([[1]]).restriction([0])
    with raises_code("E207", InputError, match="another trie"):
        TrieConstraint(trie, 0, num_beams=1, restrictions=[other], eos_token_id=EOS)


def test_per_item_prompt_lengths_and_parent_cache() -> None:
    trie = TokenTrie.build([[5, 2, EOS], [5, 2, 9, EOS], [7, EOS]])
    c = TrieConstraint(trie, [2, 3], num_beams=1, eos_token_id=EOS, pad_token_id=PAD)
    # step by step, as generate does: total length grows by one per step
    assert c(0, seq([8, 8], [5])) == [2] and c(1, seq([8, 8, 8], [])) == [5, 7]
    assert sorted(c(0, seq([8, 8], [5, 2]))) == [EOS, 9] and c(1, seq([8, 8, 8], [7])) == [EOS]
    assert c.rewalks == 0
    # a state whose parent was never seen falls back to a walk from the root (counted)
    c2 = TrieConstraint(trie, 0, num_beams=1, eos_token_id=EOS)
    assert c2(0, seq([], [5, 2, 9])) == [EOS] and c2.rewalks == 1


@pytest.mark.parametrize("seed", range(5))
def test_random_states_never_empty_and_sound(seed: int) -> None:
    rng = random.Random(seed)
    names = [[rng.randrange(2, 9) for _ in range(rng.randint(1, 4))] + [EOS] for _ in range(12)]
    trie = TokenTrie.build(names)
    chosen = rng.sample(range(12), 4)
    restr = trie.restriction(chosen)
    prefixes = {tuple(n[:k]) for n in names for k in range(len(n) + 1)}
    allowed_prefixes = {tuple(names[i][:k]) for i in chosen for k in range(len(names[i]) + 1)}
    c = TrieConstraint(trie, 0, num_beams=1, restrictions=[None, restr], eos_token_id=EOS, pad_token_id=PAD)
    for _ in range(200):
        gen = [rng.randrange(0, 9) for _ in range(rng.randint(0, 5))]
        for b, pref in ((0, prefixes), (1, allowed_prefixes)):
            c.reset()
            out = c(b, seq([], gen))
            assert out, gen
            if tuple(gen) in pref and (not gen or gen[-1] != EOS):
                expect = sorted(
                    {p[len(gen)] for p in pref if len(p) > len(gen) and p[: len(gen)] == tuple(gen)}
                )
                assert sorted(out) == (expect or [PAD])
            else:
                assert out == [PAD]


# --------------------------------------------------------------------------- generate
def _prompts(tokenizer: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    texts = ["[breast tumor]{Disorders}\nbreast tumor is", "colon is", "[Advil]{Chemicals & Drugs}\nAdvil is"]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def _generate(model, enc, fn=None, proc=None, beams=3):
    kw = dict(num_beams=beams, num_return_sequences=beams, max_new_tokens=12, do_sample=False)
    if fn is not None:
        kw["prefix_allowed_tokens_fn"] = fn
    if proc is not None:
        kw["logits_processor"] = LogitsProcessorList([proc])
    with torch.no_grad():
        return model.generate(**enc, **kw)


def test_generate_outputs_are_kb_names(ct: CandidateTrie, tokenizer, tiny_llama: LlamaForCausalLM) -> None:
    enc = _prompts(tokenizer)
    plen = enc["input_ids"].shape[1]
    c = TrieConstraint(
        ct, plen, num_beams=3, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    out = _generate(tiny_llama, enc, fn=c)
    assert out.shape[0] == 9
    decoded = [ct.decode(row[plen:]) for row in out]
    assert all(d is not None for d in decoded), decoded
    for row, (name, codes) in zip(out, decoded, strict=True):
        text = tokenizer.decode(row[plen:], skip_special_tokens=True)
        assert text == PromptFormat.target(name)
        assert codes == ct.text_to_code[name]
    # beams of one item are distinct names
    for i in range(3):
        names = [d[0] for d in decoded[3 * i : 3 * i + 3]]
        assert len(set(names)) == 3
    assert c.rewalks == 0 and c.calls > 0


def test_generate_respects_restrictions(ct: CandidateTrie, tokenizer, tiny_llama: LlamaForCausalLM) -> None:
    enc = _prompts(tokenizer)
    plen = enc["input_ids"].shape[1]
    restrictions = [
        ct.restrict_to_groups(["Anatomy"]),
        ct.restrict_to_concepts(["C005"]),
        ct.restrict_to_concepts(["D003", "C006"]),
    ]
    allowed = [
        {"Breast", "breast tissue", "Colon"},
        {"Ibuprofen", "ibuprofen", "Advil"},
        {"Breast Carcinoma", "breast cancer", "tumor", "Colon"},
    ]
    c = TrieConstraint(
        ct,
        plen,
        num_beams=3,
        restrictions=restrictions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = _generate(tiny_llama, enc, fn=c)
    for i, row in enumerate(out):
        d = ct.decode(row[plen:])
        assert d is not None and d[0] in allowed[i // 3], (i, d)
    # 3 beams over the 3 names of item 0 and item 1: each name exactly once
    assert {ct.decode(r[plen:])[0] for r in out[0:3]} == allowed[0]
    assert {ct.decode(r[plen:])[0] for r in out[3:6]} == allowed[1]


def test_logits_processor_matches_prefix_fn(
    ct: CandidateTrie, tokenizer, tiny_llama: LlamaForCausalLM
) -> None:
    enc = _prompts(tokenizer)
    plen = enc["input_ids"].shape[1]
    restrictions = [None, ct.restrict_to_groups(["Disorders"]), ct.restrict_to_concepts(["C005", "D004"])]
    kw = dict(
        num_beams=3,
        restrictions=restrictions,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    by_fn = _generate(tiny_llama, enc, fn=TrieConstraint(ct, plen, **kw))
    by_proc = _generate(tiny_llama, enc, proc=TrieLogitsProcessor(ct, plen, **kw))
    assert torch.equal(by_fn, by_proc)
    assert all(ct.decode(r[plen:]) is not None for r in by_proc)


def test_logits_processor_mask() -> None:
    trie = TokenTrie.build([[5, 2, EOS], [5, 2, 9, EOS], [7, EOS]])
    proc = TrieLogitsProcessor(trie, 1, num_beams=2, eos_token_id=EOS, pad_token_id=PAD)
    input_ids = torch.tensor([[3, 5], [3, 7], [3, 6], [3, 5]])
    scores = torch.arange(40, dtype=torch.float).reshape(4, 10)
    out = proc(input_ids, scores)
    finite = [torch.isfinite(r).nonzero().flatten().tolist() for r in out]
    assert finite == [[2], [EOS], [PAD], [2]]
    assert out[0, 2] == scores[0, 2] and out[1, EOS] == scores[1, EOS]
