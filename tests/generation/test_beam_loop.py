"""genbel's beam-search loop (:mod:`genbel.generation.beam_loop`) against Hugging Face ``generate``: the
same beams and scores, with queries that finish at different steps and leave the batch, waiting
queries that join it, tokens the trie forces fed ahead, restricted tries, document-level prompts."""

from __future__ import annotations

import pytest

from genbel.data.queries import queries_from_documents
from genbel.generation import beam_loop
from genbel.generation.prompts import parse_markup
from genbel.linkers.document import DocumentLinker
from genbel.linkers.generative import GenerativeLinker
from tests.linkers.document_fixtures import docs
from tests.linkers.generative_tiny import SENTENCES, tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)

# scores agree up to float rounding: the loop computes the same log-probabilities in other batch shapes
TOL = 1e-4


@pytest.fixture(scope="module")
def linker() -> GenerativeLinker:
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model("llama", len(tok)), tok, kb)


def _decode(decoder, search: str, queries, **kw):
    decoder.search = search
    try:
        return decoder.generate(queries, restrict_to_group=True, **kw)
    finally:
        decoder.search = "genbel"


def _assert_same(a, b) -> None:
    assert [[(x.name, x.codes) for x in bs] for bs in a] == [[(x.name, x.codes) for x in bs] for bs in b]
    for xs, ys in zip(a, b):
        assert [x.logprob for x in xs] == pytest.approx([y.logprob for y in ys], abs=TOL)


QUERIES = [parse_markup(s) for s in SENTENCES] + [parse_markup("[aspirin]{} given"),
                                                  parse_markup("[pain]{Disease} after surgery")]


@pytest.mark.parametrize("num_beams", [2, 3, 5])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
@pytest.mark.parametrize("force", [True, False])
def test_the_loop_gives_the_beams_and_scores_of_hf_generate(linker, num_beams, batch_size, force):
    d = linker.decoder
    hf = _decode(d, "hf", QUERIES, num_beams=num_beams, batch_size=batch_size)
    d.force_unique = force
    try:
        ours = _decode(d, "genbel", QUERIES, num_beams=num_beams, batch_size=batch_size)
    finally:
        d.force_unique = True
    _assert_same(ours, hf)
    assert sum(len(b) for b in ours) > len(QUERIES)  # several beams per query: something was compared
    stats = d.last_loop_stats
    # each query ran its own number of steps (they finish at different steps: no waiting for the slowest)
    assert stats.steps > 0 and stats.positions > 0
    if force:
        assert stats.forced > 0 and stats.forced_used > 0
        assert stats.passes_per_query < stats.steps  # forced tokens saved forward passes
    else:
        assert stats.forced == 0 and stats.passes_per_query == stats.steps


def test_finished_queries_leave_and_waiting_ones_join(linker, monkeypatch):
    """With a batch of 2 for 8 queries, queries join as others finish: the forward passes carry at most
    2 queries, and there are fewer passes than 4 batches run to their slowest query would need."""
    d = linker.decoder
    seen: list[int] = []
    real = beam_loop.BeamLoop._forward

    def recording(self, active):
        seen.append(len(active))
        return real(self, active)

    monkeypatch.setattr(beam_loop.BeamLoop, "_forward", recording)
    ours = _decode(d, "genbel", QUERIES, num_beams=3, batch_size=2)
    assert max(seen) == 2
    _assert_same(_decode(d, "genbel", QUERIES[:1], num_beams=3, batch_size=2), ours[:1])  # alone = in a stream
    hf = _decode(d, "hf", QUERIES, num_beams=3, batch_size=2)
    _assert_same(ours, hf)


def test_candidate_restrictions_force_whole_names(linker):
    """A query restricted to one concept with one name has that name forced token by token: it is fed in
    one pass, and its score is the same as HF's step-by-step one."""
    d = linker.decoder
    qs = [parse_markup("[APC]{} x"), parse_markup("[colon cancer]{} here"), parse_markup("[pain]{} y")]
    cands = [["D001"], ["D002", "D003"], ["D004"]]
    hf = _decode(d, "hf", qs, num_beams=3, batch_size=3, candidates=cands)
    ours = _decode(d, "genbel", qs, num_beams=3, batch_size=3, candidates=cands)
    _assert_same(ours, hf)
    assert {b.codes[0] for b in ours[2]} == {"D004"}
    stats = d.last_loop_stats
    assert stats.forced > 0 and stats.forwards < stats.steps  # forced runs fed ahead: fewer passes than steps


def test_a_tiny_pool_is_compacted_and_grown_with_the_same_beams(linker, monkeypatch):
    d = linker.decoder
    real_init = beam_loop.SlotPool.__init__

    def tiny(self, *args, capacity: int = 1024, **kwargs):
        real_init(self, *args, capacity=8, **kwargs)

    monkeypatch.setattr(beam_loop.SlotPool, "__init__", tiny)
    ours = _decode(d, "genbel", QUERIES, num_beams=3, batch_size=2)
    monkeypatch.undo()
    _assert_same(ours, _decode(d, "hf", QUERIES, num_beams=3, batch_size=2))


@pytest.mark.parametrize("reuse_prefix", [True, False])
def test_document_level_prompts_give_the_same_beams(reuse_prefix):
    """Document-level prompts (memory block + context), with and without reuse of each document's prompt
    prefix: the loop's beams equal HF generate's, round after round (so the memories are equal too)."""
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    gen = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb)
    runs = {}
    for search in ("hf", "genbel"):
        gen.decoder.search = search
        dl = DocumentLinker(gen, batch_size=3, reuse_prefix=reuse_prefix)
        assert dl.decoder.search == search
        runs[search] = dl.run(queries_from_documents(docs()))
    (qa, ba), (qb, bb) = runs["hf"], runs["genbel"]
    assert [q.memory for q in qa] == [q.memory for q in qb]
    _assert_same(bb, ba)


def test_models_without_plain_attention_and_seq2seq_models_decode_with_generate():
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    bart = GenerativeLinker(tiny_model("bart", len(tok)), tok, kb)
    assert not bart.decoder.uses_loop(True)
    llama = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb)
    assert llama.decoder.uses_loop(True) and not llama.decoder.uses_loop(False)
    llama.decoder.search = "hf"
    assert not llama.decoder.uses_loop(True)
    from tests.generation.test_cache import _tiny_gemma3

    gemma = GenerativeLinker(_tiny_gemma3(len(tok)), tok, kb)
    assert not gemma.decoder.uses_loop(True)  # sliding-window layers
    out = gemma.generate([parse_markup(SENTENCES[0])], num_beams=2)
    assert out[0] and gemma.decoder.last_loop_stats is None
