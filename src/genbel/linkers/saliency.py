"""Token-level saliency maps: which input tokens a generative linker's prediction rests on.

For a prompt ``x`` (the tokens the model reads) and the chosen name ``y`` (target tokens + EOS), the
score of input token ``i`` is *gradient × input* on the input embeddings ``e_i``::

    a_i = < d s(y | x) / d e_i , e_i >,    s(y | x) = (1/|y|) * sum_t log p(y_t | x, y_<t)

(``s`` is the teacher-forced, length-normalised log-likelihood that beam search ranks by).
Normalisation: ``score_i = |a_i| / sum_j |a_j|`` — absolute values normalised to sum to 1 over the
input tokens (every prompt token including special tokens; for seq2seq models the encoder input).
A map whose attributions are all zero gets uniform scores ``1 / n``. The signed ``a_i`` are kept in
:attr:`SaliencyMap.raw`.

:func:`display_saliency_map` prints the tokens with a background colour by score (rich) and can
write the same heat map as a self-contained HTML file (written atomically).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genbel.errors import Errors, InputError

logger = logging.getLogger(__name__)

__all__ = ["SaliencyMap", "compute_saliency", "display_saliency_map", "document_html", "saliency_maps", "to_html"]


@dataclass
class SaliencyMap:
    """Scores of the input tokens for one prediction (see the module docstring for the normalisation)."""

    mention: str
    pred_concept_name: str
    pred_concept_code: str
    tokens: list[str]
    token_ids: list[int]
    scores: list[float]
    raw: list[float] = field(default_factory=list)
    document_id: str | None = None
    entity_id: str | None = None

    def top(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` highest-scoring tokens (token text, score), best first."""
        order = sorted(range(len(self.scores)), key=lambda i: -self.scores[i])[:n]
        return [(self.tokens[i], self.scores[i]) for i in order]

    def to_dict(self) -> dict:
        return {
            "mention": self.mention,
            "pred_concept_name": self.pred_concept_name,
            "pred_concept_code": self.pred_concept_code,
            "document_id": self.document_id,
            "entity_id": self.entity_id,
            "tokens": list(self.tokens),
            "token_ids": list(self.token_ids),
            "scores": list(self.scores),
            "raw": list(self.raw),
        }


def _normalise(raw: torch.Tensor) -> list[float]:
    a = raw.abs()
    total = float(a.sum())
    if total <= 0.0 or not torch.isfinite(a).all():
        return [1.0 / len(a)] * len(a) if len(a) else []
    return (a / total).tolist()


def compute_saliency(generator: Any, query: Any, name: str) -> tuple[list[int], list[float], list[float]]:
    """``(input ids, normalised scores, raw attributions)`` of ``name`` for ``query``.

    ``generator`` has a ``model``, an ``encoder`` and a ``device``: a
    :class:`~genbel.linkers.generative.GenerativeLinker` or a
    :class:`~genbel.generation.beam_search.BeamSearchDecoder` (the one a
    :class:`~genbel.linkers.document.DocumentLinker` decodes with); its encoder builds the prompt, so a
    :class:`~genbel.generation.encoding.DocumentQuery` is explained with its memory.
    """
    enc = generator.encoder
    model = generator.model
    device = generator.device
    prompt = enc.encode(query)
    target = enc.encode_target(name)
    emb_layer = model.get_input_embeddings()
    was_training = model.training
    model.eval()
    with torch.enable_grad(), torch.inference_mode(False):
        if enc.architecture == "causal":
            ids = torch.tensor([prompt.input_ids + target], dtype=torch.long, device=device)
            embeds = emb_layer(ids).detach().clone().requires_grad_(True)
            logits = model(inputs_embeds=embeds).logits[0]
            start = len(prompt.input_ids)
            logp = torch.log_softmax(logits[start - 1 : start - 1 + len(target)].float(), dim=-1)
        else:
            ids = torch.tensor([prompt.input_ids], dtype=torch.long, device=device)
            dec = torch.tensor([(prompt.decoder_ids or []) + target], dtype=torch.long, device=device)
            embeds = emb_layer(ids).detach().clone().requires_grad_(True)
            logits = model(inputs_embeds=embeds, decoder_input_ids=dec).logits[0]
            start = len(prompt.decoder_ids or [])
            logp = torch.log_softmax(logits[start - 1 : start - 1 + len(target)].float(), dim=-1)
        tgt = torch.tensor(target, dtype=torch.long, device=device)
        s = logp.gather(-1, tgt.unsqueeze(-1)).mean()
        (grad,) = torch.autograd.grad(s, embeds)
    model.train(was_training)
    n_in = len(prompt.input_ids)
    raw = (grad[0, :n_in].float() * embeds[0, :n_in].detach().float()).sum(-1)
    return list(prompt.input_ids), _normalise(raw), raw.tolist()


def saliency_maps(
    generator: Any, queries: Sequence[Any], targets: Sequence[tuple[str, str] | None]
) -> list[SaliencyMap | None]:
    """One :class:`SaliencyMap` per query for its ``(name, code)`` target (``None`` where there is none).

    ``generator`` as in :func:`compute_saliency`, with a ``tokenizer`` too.
    """
    if len(queries) != len(targets):
        raise InputError(
            Errors.E252.format(where="saliency targets", n_candidates=len(targets), n_queries=len(queries))
        )
    tok = generator.tokenizer
    out: list[SaliencyMap | None] = []
    for q, t in zip(queries, targets):
        if t is None:
            out.append(None)
            continue
        name, code = t
        ids, scores, raw = compute_saliency(generator, q, name)
        out.append(
            SaliencyMap(
                mention=q.surface, pred_concept_name=name, pred_concept_code=code,
                tokens=[tok.decode([i]) for i in ids], token_ids=ids, scores=scores, raw=raw,
                document_id=q.doc_id, entity_id=q.entity_id,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- display
def _shade(score: float, top: float) -> tuple[int, int, int]:
    """White → red by ``score / top``."""
    x = 0.0 if top <= 0 else max(0.0, min(1.0, score / top))
    return 255, int(round(255 * (1 - x))), int(round(255 * (1 - x)))


def _title(m: SaliencyMap) -> str:
    return html.escape(f"Saliency map for {m.mention} → {m.pred_concept_name} ({m.pred_concept_code})")


def _heat_map(m: SaliencyMap) -> str:
    """The HTML body of one map: its tokens shaded by score, the score in each tooltip."""
    top = max(m.scores, default=0.0)
    spans = []
    for t, s in zip(m.tokens, m.scores):
        r, g, b = _shade(s, top)
        text = html.escape(t).replace("\n", "<br>\n")
        spans.append(f'<span style="background: rgb({r},{g},{b})" title="{s:.4f}">{text}</span>')
    return (
        "<p>scores = |gradient × input| normalised to sum 1; colour relative to the highest score ("
        + f"{top:.4f})</p>\n<div>"
        + "".join(spans)
        + "</div>\n"
    )


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
        + title
        + "</title></head>\n"
        + "<body style=\"font-family: monospace; white-space: pre-wrap; line-height: 1.6\">\n"
        + body
        + "</body></html>\n"
    )


def to_html(m: SaliencyMap) -> str:
    """A self-contained HTML heat map of ``m`` (token background by score; score in each tooltip)."""
    return _page(_title(m), f"<h3>{_title(m)}</h3>\n" + _heat_map(m))


def document_html(document_id: str, maps: Sequence[SaliencyMap | None], mentions: Sequence[str]) -> str:
    """One self-contained HTML page with the heat map of every mention of a document, in document order
    (``mentions[i]`` names mention ``i``; a mention without a prediction, ``maps[i] is None``, says so)."""
    if len(maps) != len(mentions):
        raise InputError(
            Errors.E252.format(where="saliency maps", n_candidates=len(maps), n_queries=len(mentions))
        )
    title = html.escape(f"Saliency maps of document {document_id}: {len(maps)} mentions")
    parts = [f"<h2>{title}</h2>\n"]
    for i, (m, mention) in enumerate(zip(maps, mentions), 1):
        if m is None:
            parts.append(f"<h3>{i}. {html.escape(mention)}: no prediction</h3>\n")
        else:
            parts.append(f"<h3>{i}. {_title(m)}</h3>\n" + _heat_map(m))
    return _page(title, "".join(parts))


def display_saliency_map(
    m: SaliencyMap, html_path: str | Path | None = None, *, console: Any | None = None, top_n: int = 5
) -> Any:
    """Print ``m`` in the terminal (rich; background colour by score) and optionally write an HTML heat map.

    Returns the :class:`rich.text.Text` that was printed.
    """
    from rich.console import Console
    from rich.text import Text

    if m is None:
        raise InputError(Errors.E402)
    console = console or Console()
    top = max(m.scores, default=0.0)
    text = Text()
    for t, s in zip(m.tokens, m.scores):
        r, g, b = _shade(s, top)
        text.append(t, style=f"black on rgb({r},{g},{b})")
    console.print(
        f"[bold]Saliency map for {m.mention}[/bold] → {m.pred_concept_name} ({m.pred_concept_code})"
    )
    console.print(text)
    best = ", ".join(f"{t.strip() or repr(t)} {s:.3f}" for t, s in m.top(top_n))
    console.print(f"top tokens: {best}")
    if html_path is not None:
        from genbel.io import atomic_write_text

        atomic_write_text(html_path, to_html(m))
        logger.info("wrote %s", html_path)
    return text
