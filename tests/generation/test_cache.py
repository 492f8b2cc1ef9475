"""The shared-prompt beam cache: the attention equals ``sdpa`` over per-beam copies, generate gives
the same beams and scores, the prompt is stored once per query, and the model is left as it was;
the prompt prefill gives the states of one batched pass."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, Gemma3ForCausalLM, Gemma3TextConfig
from transformers.cache_utils import Cache, DynamicSlidingWindowLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from genbel.errors import ConfigError
from genbel.generation.batching import model_inputs
from genbel.generation.cache import (
    ATTENTION_NAME,
    PromptPrefill,
    SharedPromptCache,
    plain_cache,
    shared_prompt_attention,
    shared_prompt_decoding,
)
from genbel.generation.prompts import parse_markup
from genbel.linkers.generative import GenerativeLinker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import SENTENCES, tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread, tiny_llama  # noqa: F401  (autouse fixture)

B, K, P = 3, 4, 6  # queries, beams, prompt length


class _Layer(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.layer_idx = 0
        self.num_key_value_groups = groups
        self.is_causal = True


def _prompt_mask(width: int, lengths: list[int]) -> torch.Tensor:
    return torch.tensor([[0] * (width - n) + [1] * n for n in lengths], dtype=torch.bool)


def _active(cache):
    """Make ``cache`` the active one without switching any model (the attention alone)."""
    from genbel.generation import cache as beam_cache

    class _Ctx:
        def __enter__(self):
            self.token = beam_cache._ACTIVE.set(cache)

        def __exit__(self, *exc):
            beam_cache._ACTIVE.reset(self.token)

    return _Ctx()


@pytest.mark.parametrize("q", [1, 3])
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (2, 2)])
def test_attention_equals_sdpa_over_per_beam_copies(q, heads, kv_heads):
    """The two-part attention is ``sdpa`` over ``[prompt repeated per beam | generated]`` keys, with
    left-padded prompts and a causal block of ``q`` new tokens."""
    torch.manual_seed(0)
    d, t = 8, 5  # head dim, generated tokens so far (the last q of them are the queries)
    pk, pv = torch.randn(B, kv_heads, P, d), torch.randn(B, kv_heads, P, d)
    gk, gv = torch.randn(B * K, kv_heads, t, d), torch.randn(B * K, kv_heads, t, d)
    query = torch.randn(B * K, heads, q, d)
    prompt = _prompt_mask(P, [P, 4, 2]).repeat_interleave(K, dim=0)  # [B·K, P]
    causal = torch.ones(q, t, dtype=torch.bool).tril(t - q)
    mask = torch.cat([prompt[:, None, None, :].expand(-1, 1, q, -1), causal.expand(B * K, 1, q, t)], dim=-1)
    module = _Layer(heads // kv_heads)
    cache = SharedPromptCache([(pk, pv)], K)
    with _active(cache):
        got, _ = shared_prompt_attention(module, query, gk, gv, mask, scaling=0.3)
    keys = torch.cat([pk.repeat_interleave(K, dim=0), gk], dim=2)
    values = torch.cat([pv.repeat_interleave(K, dim=0), gv], dim=2)
    want, _ = sdpa_attention_forward(module, query, keys, values, mask, scaling=0.3)
    assert got.shape == want.shape == (B * K, q, heads, d)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_attention_without_a_mask_attends_to_everything_causally():
    torch.manual_seed(1)
    pk, pv = torch.randn(1, 2, P, 8), torch.randn(1, 2, P, 8)
    gk, gv, query = torch.randn(K, 2, 3, 8), torch.randn(K, 2, 3, 8), torch.randn(K, 4, 3, 8)
    module = _Layer(2)
    with _active(SharedPromptCache([(pk, pv)], K)):
        got, _ = shared_prompt_attention(module, query, gk, gv, None)
    keys = torch.cat([pk.expand(K, -1, -1, -1), gk], dim=2)
    values = torch.cat([pv.expand(K, -1, -1, -1), gv], dim=2)
    mask = torch.ones(3, P + 3, dtype=torch.bool).tril(P).expand(K, 1, 3, P + 3)
    want, _ = sdpa_attention_forward(module, query, keys, values, mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_attention_outside_a_shared_decoding_raises():
    with pytest.raises(RuntimeError, match=ATTENTION_NAME):
        shared_prompt_attention(_Layer(1), torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 0, 4),
                                torch.zeros(1, 1, 0, 4), None)


def _generate(model, ids, mask, shared: bool):
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        past = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1],
                     use_cache=True).cache
        kwargs = {"num_beams": K, "num_return_sequences": K, "max_new_tokens": 6, "do_sample": False,
                  "output_scores": True, "return_dict_in_generate": True, "pad_token_id": 0, "eos_token_id": 2}
        if shared:
            cache = SharedPromptCache([(layer.keys, layer.values) for layer in past.layers], K)
            with shared_prompt_decoding(model, cache):
                out = model.generate(input_ids=ids, attention_mask=mask, cache=cache, **kwargs)
            return out, cache
        past.batch_repeat_interleave(K)
        return model.generate(input_ids=ids, attention_mask=mask, cache=past, **kwargs), past


def test_generate_with_the_shared_prompt_gives_the_same_beams_and_keeps_the_prompt_once():
    model = tiny_llama(60, seed=3)
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (B, P + 1))
    mask = _prompt_mask(P + 1, [P + 1, 5, 3]).long()
    want, per_beam = _generate(model, ids, mask, shared=False)
    got, shared = _generate(model, ids, mask, shared=True)
    assert torch.equal(got.sequences, want.sequences)
    torch.testing.assert_close(got.sequences_scores, want.sequences_scores, atol=1e-5, rtol=1e-5)
    # the prompt part is stored once per query, the generated part once per beam
    layer = shared.layers[0]
    assert layer.prompt_keys.shape[0] == B and layer.keys.shape[0] == B * K
    assert per_beam.layers[0].keys.shape[0] == B * K
    assert shared.get_seq_length() == per_beam.get_seq_length()
    assert model.config._attn_implementation == "sdpa"  # switched back after the block


def test_the_model_is_switched_back_when_generate_fails():
    model = tiny_llama(60)
    cache = SharedPromptCache([(torch.zeros(1, 2, 2, 8), torch.zeros(1, 2, 2, 8))], 2)
    with pytest.raises(ValueError), shared_prompt_decoding(model, cache):
        assert model.config._attn_implementation == ATTENTION_NAME
        raise ValueError
    assert model.config._attn_implementation == "sdpa"


def test_only_plain_full_attention_caches_are_shared():
    model = tiny_llama(60)
    with torch.inference_mode():
        past = model(input_ids=torch.tensor([[5, 6, 7]]), use_cache=True).cache
    assert plain_cache(past)
    assert not plain_cache(Cache(layers=[DynamicSlidingWindowLayer(sliding_window=4)]))
    assert not plain_cache(DynamicCache())  # no layer computed yet


def _tiny_gemma3(vocab_size: int) -> Gemma3ForCausalLM:
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=4,
                           layer_types=["sliding_attention", "full_attention"], max_position_embeddings=512,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Gemma3ForCausalLM(cfg).eval()


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_linker_beams_are_the_same_with_and_without_sharing(arch, monkeypatch):
    """Llama takes the shared path; Gemma 3 (sliding-window layers) keeps per-beam copies."""
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    model = tiny_llama(len(tok), seed=1) if arch == "llama" else _tiny_gemma3(len(tok))
    lk = GenerativeLinker(model, tok, kb)
    lk.decoder.search = "hf"  # the shared prompt cache serves Hugging Face generate
    entered: list[bool] = []
    from genbel.generation import cache as beam_cache

    real = beam_cache.shared_prompt_decoding

    def recording(*args, **kwargs):
        entered.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(beam_cache, "shared_prompt_decoding", recording)
    shared = lk.sample(SENTENCES, num_beams=3)
    assert bool(entered) == (arch == "llama")
    lk.share_prompt_across_beams = False
    entered.clear()
    copied = lk.sample(SENTENCES, num_beams=3)
    assert not entered
    for a, b in zip(shared, copied):
        assert [x["pred_concept_name"] for x in a] == [x["pred_concept_name"] for x in b]
        assert [x["beam_score"] for x in a] == pytest.approx([x["beam_score"] for x in b], abs=1e-4)


def test_a_model_that_bypasses_the_shared_attention_is_an_error():
    """If a layer attended without the prompt (its config was not switched), decoding fails loudly."""
    model = tiny_llama(60)
    torch.manual_seed(0)
    ids = torch.randint(3, 60, (1, 5))
    with torch.inference_mode():
        past = model(input_ids=ids[:, :-1], use_cache=True).cache
    cache = SharedPromptCache([(layer.keys, layer.values) for layer in past.layers], 2)
    other = type(model.config).from_dict(model.config.to_dict())  # layer 1 reads a config left as "sdpa"
    other._attn_implementation = "sdpa"
    model.model.layers[1].self_attn.config = other
    with raises_code("E257", ConfigError, match=r"layers \[1\] did not attend"), shared_prompt_decoding(model, cache):
        model.generate(input_ids=ids, cache=cache, num_beams=2, max_new_tokens=2, do_sample=False,
                       pad_token_id=0, eos_token_id=2)


def test_prefill_passes_by_new_part_length_give_the_batched_prompt_states(monkeypatch):
    """Rows whose new parts differ much in length are prefilled apart (no row pads the others to its
    length); their key/value states equal one batched pass over the whole prompts."""
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    lk = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb)
    long = SENTENCES[2][:-1] + ", and breast cancer, colon cancer and pain in the patients of the trial."
    encs = [lk.encoder.encode(q) for q in [parse_markup(s) for s in (long, SENTENCES[3], SENTENCES[5])]]
    inputs, _ = model_inputs(encs, "causal", lk.encoder.pad_token_id, lk.device)
    passes: list[int] = []
    real = PromptPrefill.prefill_rows

    def counting(self, bodies, reused):
        passes.append(len(bodies))
        return real(self, bodies, reused)

    monkeypatch.setattr(PromptPrefill, "prefill_rows", counting)
    prefill = lk.decoder.prefill
    with torch.inference_mode():
        grouped, laid_out, width = prefill.prompt_cache_with_prefixes(encs, inputs, ["a", "b", "c"], {})
        batched = prefill.prompt_cache(inputs)
    lengths = [len(e.input_ids) - 1 for e in encs]
    assert len(passes) == 2 and sorted(passes) == [1, 2]  # the short prompt alone
    assert width == max(lengths) + 1 and laid_out["attention_mask"].shape[1] == width
    for g_layer, b_layer in zip(grouped.layers, batched.layers):
        for r, n in enumerate(lengths):  # both left-padded to the longest prompt
            torch.testing.assert_close(g_layer.keys[r, :, -n:], b_layer.keys[r, :, -n:], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(g_layer.values[r, :, -n:], b_layer.values[r, :, -n:], atol=1e-5, rtol=1e-4)
