"""Saliency maps: gradient × input on the input embeddings, one score per input token, normalised."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from rich.console import Console

from genbel.data.queries import queries_from_documents
from genbel.errors import InputError
from genbel.linkers.document import DocumentLinker
from genbel.linkers.saliency import SaliencyMap, compute_saliency, display_saliency_map, to_html
from tests.helpers import raises_code
from tests.linkers.document_fixtures import build, docs
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module", params=["llama", "bart"])
def linker(request):
    return DocumentLinker(build(request.param), max_prompt_tokens=48)


@pytest.fixture(scope="module")
def sampled(linker):
    return linker.sample(bigbio_pages=[d.to_dict() for d in docs()], num_beams=3, with_saliency_maps=True)


def test_one_map_per_mention_with_one_score_per_input_token(linker, sampled):
    preds, maps = sampled
    assert len(maps) == len(preds) // 3 == 8
    linked, _ = linker.run(queries_from_documents(docs()))
    for i, m in enumerate(maps):
        assert isinstance(m, SaliencyMap)
        top = preds[3 * i]
        assert (m.mention, m.pred_concept_name, m.pred_concept_code) == (
            top["mention"], top["pred_concept_name"], top["pred_concept_code"])
        assert (m.document_id, m.entity_id) == (top["document_id"], top["entity_id"])
        ids = linker.encoder.encode(linked[i]).input_ids  # the prompt the mention was linked with
        assert m.token_ids == ids
        assert len(m.scores) == len(m.tokens) == len(m.raw) == len(ids)
        assert all(s >= 0 for s in m.scores)
        assert sum(m.scores) == pytest.approx(1.0, abs=1e-5)
        z = sum(abs(r) for r in m.raw)
        assert m.scores == pytest.approx([abs(r) / z for r in m.raw], rel=1e-4, abs=1e-7)


def test_raw_scores_are_gradient_times_input(linker):
    """sum_i a_i = <grad, e> = d/da s(a * e) at a = 1 (checked by central differences)."""
    gen = linker.decoder
    q = queries_from_documents(docs()[:1])[0]
    name = "Breast Neoplasms"
    ids, scores, raw = compute_saliency(gen, q, name)
    model = gen.model
    prompt = gen.encoder.encode(q)
    target = gen.encoder.encode_target(name)
    emb = model.get_input_embeddings()

    def s_of(alpha: float) -> float:
        with torch.no_grad():
            if gen.architecture == "causal":
                x = torch.tensor([prompt.input_ids + target])
                e = emb(x)
                e[0, : len(ids)] *= alpha
                logits = model(inputs_embeds=e).logits[0]
                start = len(ids)
            else:
                x = torch.tensor([prompt.input_ids])
                e = emb(x) * alpha
                dec = torch.tensor([(prompt.decoder_ids or []) + target])
                logits = model(inputs_embeds=e, decoder_input_ids=dec).logits[0]
                start = len(prompt.decoder_ids or [])
            lp = torch.log_softmax(logits[start - 1 : start - 1 + len(target)].double(), -1)
            return float(lp.gather(-1, torch.tensor(target).unsqueeze(-1)).mean())

    eps = 1e-3  # central difference: O(eps^2) truncation, float32 noise ~1e-4
    fd = (s_of(1 + eps) - s_of(1 - eps)) / (2 * eps)
    assert sum(raw) == pytest.approx(fd, rel=1e-2, abs=1e-4)
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)


def test_display_prints_and_writes_an_html_heat_map(sampled, tmp_path: Path):
    _, maps = sampled
    m = maps[3]
    console = Console(record=True, width=100, color_system="truecolor")
    html_path = tmp_path / "out" / "pain.html"
    text = display_saliency_map(m, html_path=html_path, console=console)
    out = console.export_text()
    assert f"Saliency map for {m.mention}" in out and m.pred_concept_name in out
    assert text.plain == "".join(m.tokens)
    assert [str(s.style).startswith("black on rgb(") for s in text.spans] == [True] * len(m.tokens)
    page = html_path.read_text(encoding="utf-8")
    assert page == to_html(m)
    assert page.count("<span ") == len(m.tokens)
    assert list(html_path.parent.iterdir()) == [html_path]  # no temporary file left behind
    # the highest-scoring token is the darkest (pure red)
    assert "background: rgb(255,0,0)" in page
    DocumentLinker.display_saliency_map(m, console=console)


def test_uniform_scores_when_all_attributions_vanish():
    from genbel.linkers.saliency import _normalise

    assert _normalise(torch.zeros(4)) == [0.25] * 4
    assert _normalise(torch.tensor([1.0, -3.0])) == [0.25, 0.75]


def test_display_of_a_missing_map_is_an_error():
    with raises_code("E402", InputError):
        display_saliency_map(None)  # type: ignore[arg-type]
