"""BeamSearchDecoder and its parts (scopes, batching): the decoder a linker composes, and the one with
other prompts that a document-level linker derives from it."""

from __future__ import annotations

import pytest

from genbel.generation.batching import batches, model_inputs
from genbel.generation.encoding import EncodedQuery, PromptEncoder
from genbel.generation.prompts import PromptFormat, parse_markup
from genbel.linkers.generative import GenerativeLinker
from tests.linkers.generative_tiny import SENTENCES, tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def linker() -> GenerativeLinker:
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model("llama", len(tok)), tok, kb)


def test_the_linker_decodes_through_its_decoder(linker):
    qs = [parse_markup(s) for s in SENTENCES]
    direct = linker.decoder.generate(qs, num_beams=3, batch_size=4, restrict_to_group=True)
    via = linker.generate(qs, num_beams=3, batch_size=4)
    def summary(beams):
        return [[(b.name, b.codes) for b in bs] for bs in beams]

    assert summary(direct) == summary(via)
    linker.constrained = False  # linker settings are the decoder's
    try:
        assert linker.decoder.constrained is False
    finally:
        linker.constrained = True


def test_with_encoder_shares_model_trie_scopes_and_prefill(linker):
    d = linker.decoder
    enc = PromptEncoder(linker.tokenizer, PromptFormat(context_chars=0), "causal")
    other = d.with_encoder(enc)
    assert other.encoder is enc and d.encoder is not enc
    assert other.model is d.model and other.trie is d.trie
    assert other.scopes is d.scopes and other.prefill is d.prefill
    assert other.max_target_length == d.max_target_length and other.constrained == d.constrained
    q = parse_markup(SENTENCES[0])
    same = d.with_encoder(d.encoder).generate([q], num_beams=2, batch_size=1, restrict_to_group=True)
    assert [b.name for b in same[0]] == [b.name for b in linker.generate([q], num_beams=2)[0]]


def test_scopes_restrict_to_candidates_or_the_group(linker):
    qs = [parse_markup("[APC]{Chemical} x"), parse_markup("[APC]{Disease} x"), parse_markup("[APC]{} x")]
    where = ["a", "b", "c"]
    chem, diso, free = linker.decoder.scopes.resolve(qs, None, True, where, False)
    assert (chem.group, diso.group, free.group) == ("Chemicals & Drugs", "Disorders", None)
    assert linker.decoder.scopes.keep_codes(["D003", "C001"], chem) == ["C001"]
    assert linker.decoder.scopes.keep_codes(["D003", "C001"], free) == ["D003", "C001"]
    (only,) = linker.decoder.scopes.resolve(qs[:1], [["C002"]], True, where, False)
    assert only.concept_ids == {"C002"}
    assert linker.decoder.scopes.keep_codes(["C001", "C002"], only) == ["C002"]


def test_batches_and_padding():
    enc = [EncodedQuery([5, 6, 7]), EncodedQuery([5]), EncodedQuery([5, 6])]
    assert batches(enc, [0, 1, 2], 2, "causal") == [[1, 2], [0]]
    inputs, n = model_inputs([enc[0], enc[1]], "causal", 0, "cpu")
    assert n == 3
    assert inputs["input_ids"].tolist() == [[5, 6, 7], [0, 0, 5]]
    assert inputs["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]
    s2s = [EncodedQuery([5, 6], [2, 9]), EncodedQuery([5], [2, 9, 9]), EncodedQuery([7], [2, 8])]
    assert batches(s2s, [0, 1, 2], 4, "seq2seq") == [[2, 0], [1]]  # one decoder-prompt length per batch


def _summary(beams):
    return [[(b.name, b.codes, round(b.logprob, 5)) for b in bs] for bs in beams]


def test_step_callback_reports_every_decoding_step_and_changes_no_beam(linker):
    qs = [parse_markup(s) for s in SENTENCES]
    d = linker.decoder
    enc = [d.encoder.encode(q) for q in qs[:3]]
    scopes = d.scopes.resolve(qs[:3], None, True, [f"q{i}" for i in range(3)], False)
    plain = d.generate_batch(enc, scopes, True, 3)
    steps: list[tuple[int, int]] = []
    reported = d.generate_batch(enc, scopes, True, 3, on_step=lambda s, most: steps.append((s, most)))
    assert _summary(reported) == _summary(plain)
    assert steps and [s for s, _ in steps] == list(range(1, len(steps) + 1))
    assert {most for _, most in steps} == {d.trie_depth} and len(steps) <= d.trie_depth
