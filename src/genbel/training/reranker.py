"""Train the cross-encoder reranker (:mod:`genbel.linkers.rerank`) on CPU.

:func:`train_reranker` fine-tunes MiniLM (``minilm``, the PyPI base) with a one-logit head on
candidate lists mined by a retriever (:func:`~genbel.training.reranker_data.mine_lists`: hard
negatives, fold-wise so that a training mention never finds itself): each step takes
``batch_size`` mentions, each with its gold concept and ``n_negatives`` of the highest-ranked wrong
concepts (the gold concept is put in when the retriever missed it), and minimises the listwise loss
``−log Σ_{gold} softmax(logits)`` (:func:`~genbel.training.losses.marginal_nll`). Each mention is read
with its sentence context (``context_window`` words each side) in a share ``context_rate`` of the
steps, alone otherwise, so that one model serves both ways of reading.

:func:`tune_reranker` chooses the linking settings on dev data and writes them into
``reranker.json``: the context window (0 or the trained one) and the weight of the retrieval score
(by dev R@1), the gate (the loosest that keeps dev R@1 within ``gate_tolerance`` points of reranking
everything), and the NIL threshold (out-of-KB mentions are simulated by holding each dev mention's
gold concepts out of its candidates; the threshold maximises the mean of in-KB and out-of-KB
accuracy).

The run directory follows :mod:`genbel.training.run` (``config.json``, ``log.jsonl``, one
checkpoint per epoch, ``--resume``) and ends as a reranker directory (``encoder/``,
``head.safetensors``, ``reranker.json``); :func:`export_reranker` writes the shippable int8 delta.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require

require("torch", "transformers", extra="models", feature="training")

import torch
from tqdm.auto import tqdm

from genbel.data.model import Document
from genbel.encoders import TextEncoder, delta_encoder
from genbel.errors import ConfigError, Errors, FormatError, InputError
from genbel.io import atomic_dir, atomic_write_text
from genbel.kb.base import KnowledgeBase
from genbel.linkers.rerank import (
    ENCODER_DIR,
    HEAD_FILE,
    PAIR_TEXTS,
    RERANKER_CONFIG,
    CrossEncoder,
    candidate_text,
    write_head,
    write_settings,
)
from genbel.textio import read_json
from genbel.training.losses import marginal_nll
from genbel.training.reranker_data import RerankList, hardest, mine_lists
from genbel.training.retriever import freeze_layers
from genbel.training.run import Checkpoint, RunDirectory, load_checkpoint_safely, seed_all

logger = logging.getLogger(__name__)


@dataclass
class RerankerConfig:
    """Settings of :func:`train_reranker` (all recorded in ``config.json``)."""

    epochs: int = 2
    batch_size: int = 8  #: mentions per step (each with 1 + ``n_negatives`` pairs)
    n_negatives: int = 3  #: hardest wrong concepts per mention
    link_candidates: int = 5  #: concepts reranked per mention when linking (``n_candidates``)
    lr: float = 4e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    freeze_layers: int = 3  #: freeze the embeddings, the pooler and the first N layers (delta ≈ the rest)
    layers: int | None = None  #: keep only the first N transformer layers (``None``: all)
    max_length: int = 40
    context_window: int = 4  #: words of the sentence each side of the mention
    context_rate: float = 0.3  #: share of training lists read with context
    mine_candidates: int = 16  #: concepts retrieved per training mention
    folds: int = 5  #: leave-one-fold-out mining over an augmented KB
    augment: bool = True  #: mine against the KB + the other folds' mentions (the KB + train protocol)
    unique_mentions: bool = True  #: one list per distinct (mention, gold concepts)
    max_lists: int | None = None  #: train on the N lists hardest for the retriever (``None``: all)
    #: learn a correction of the retrieval score: logit = cross-encoder + w × retrieval score, the head
    #: starting at 0 (so training starts at the retriever's ranking) and w learned from a value fitted
    #: on the training lists; each list is the top 1 + ``n_negatives`` candidates in retrieval order
    residual: bool = False
    weight_lr: float = 0.05  #: learning rate of w (``residual``)
    pair_text: str = "name"  #: what a pair shows of a candidate (:data:`~genbel.linkers.rerank.PAIR_TEXTS`)
    train_pooler: bool = False  #: fine-tune the pooler under the head too
    #: compute the frozen layers of every training pair once (when ``freeze_layers`` > 0 and every list
    #: is read one way, ``context_rate`` 0 or 1), then train the top layers on those states: the
    #: same model, several times fewer operations per step (no dropout in the frozen layers)
    cache_frozen: bool = True
    log_every: int = 10
    seed: int = 0


# ====================================================================== training
def _check(cfg: RerankerConfig) -> None:
    for name in ("epochs", "batch_size", "n_negatives", "max_length", "mine_candidates", "link_candidates"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(Errors.E023.format(value=getattr(cfg, name), field=name, constraint=">= 1"))
    if not 0.0 <= cfg.context_rate <= 1.0:
        raise ConfigError(Errors.E023.format(value=cfg.context_rate, field="context_rate", constraint="in [0, 1]"))
    if cfg.pair_text not in PAIR_TEXTS:
        raise ConfigError(Errors.E476.format(value=cfg.pair_text, known=", ".join(PAIR_TEXTS)))


def training_list(item: RerankList, kb: KnowledgeBase, n_negatives: int,
                  pair_text: str = "name") -> tuple[list[str], list[bool]]:
    """The names of one training list and which are gold: every retrieved gold concept, then the
    ``n_negatives`` best-ranked wrong ones; the gold concept's first name when none was retrieved."""
    names: list[str] = []
    gold: list[bool] = []
    neg = 0
    for i, (cid, name, _) in enumerate(item.candidates):
        text = candidate_text(name, item.matched_name(i), pair_text)
        if cid in item.gold:
            names.append(text)
            gold.append(True)
        elif neg < n_negatives:
            names.append(text)
            gold.append(False)
            neg += 1
    if not any(gold):
        cid = min(item.gold)
        names.insert(0, kb[cid].names[0])
        gold.insert(0, True)
    return names, gold


def residual_list(item: RerankList, n_negatives: int,
                  pair_text: str = "name") -> tuple[list[str], list[bool], list[float]] | None:
    """A training list of a residual reranker, as it will be seen when linking: the top
    ``1 + n_negatives`` candidates in retrieval order with their retrieval scores (the best-ranked
    gold candidate replaces the last one when it ranks lower); ``None`` when no gold concept was
    retrieved (no reranking can fix those)."""
    n = 1 + int(n_negatives)
    keep = list(range(min(n, len(item.candidates))))
    golds = [i for i, (cid, _, _) in enumerate(item.candidates) if cid in item.gold]
    if not golds:
        return None
    if golds[0] >= n:
        keep[-1] = golds[0]
    texts = [candidate_text(item.candidates[i][1], item.matched_name(i), pair_text) for i in keep]
    return texts, [item.candidates[i][0] in item.gold for i in keep], [item.candidates[i][2] for i in keep]


def fit_retriever_weight(data: Sequence[tuple[list[str], list[bool], list[float]]]) -> float:
    """The weight w minimising the listwise loss of ``w × retrieval score`` alone on training lists
    (a log-spaced grid from 1 to 1000): where a residual reranker starts."""
    grid = np.geomspace(1.0, 1000.0, 61)
    best, best_loss = 1.0, float("inf")
    for w in grid:
        losses = []
        for _, gold, scores in data:
            z = w * np.asarray(scores, dtype=np.float64)
            z -= z.max()
            g = np.asarray(gold, dtype=bool)
            losses.append(np.log(np.exp(z).sum()) - np.log(np.exp(z[g]).sum()))
        loss = float(np.mean(losses)) if losses else float("inf")
        if loss < best_loss:
            best, best_loss = float(w), loss
    return best


def train_reranker(
    kb: KnowledgeBase,
    documents: Sequence[Document],
    out_dir: str | Path,
    *,
    retriever: str = "dense:default",
    base: str | Path = "minilm",
    config: RerankerConfig | None = None,
    lists: Sequence[RerankList] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train a cross-encoder reranker on ``documents`` against ``kb`` (see the module docstring);
    returns ``out_dir``, a reranker directory (``rerank:OUT``). ``lists``: candidate lists already
    mined (:func:`mine_lists`), else they are mined with ``retriever``."""
    cfg = config or RerankerConfig()
    _check(cfg)
    run = RunDirectory(out_dir, unit="epoch")
    settings = {"method": "cross-encoder", "kb": kb.fingerprint(), "retriever": retriever, "base": str(base),
                "documents": len(documents), **asdict(cfg)}
    run.start(settings, resume=resume, free=("epochs", "log_every"), restart=True, resume_needs_checkpoint=False)
    # a new run keeps lists.jsonl (mined candidates are reused when their key matches)
    seed_all(cfg.seed)
    t_start = time.perf_counter()
    if lists is None:
        lists = _mined(run, documents, kb, retriever, cfg, progress)
    lists = hardest(lists, cfg.max_lists)
    if not lists:
        raise InputError(Errors.E017.format(reason="no training mention has a gold concept in the KB"))
    mined_s = time.perf_counter() - t_start
    if cfg.residual:
        kept = [(item, residual_list(item, cfg.n_negatives, cfg.pair_text)) for item in lists]
        lists = [item for item, d in kept if d is not None]
        data = [d for _, d in kept if d is not None]
        if not data:
            raise InputError(Errors.E017.format(reason="the retriever found the gold concept of no training mention"))
    else:
        data = [(*training_list(item, kb, cfg.n_negatives, cfg.pair_text), []) for item in lists]
    ce = CrossEncoder.from_base(base, layers=cfg.layers, max_length=cfg.max_length)
    freeze_layers(ce.model.base_model, cfg.freeze_layers)
    pooler = getattr(ce.model.base_model, "pooler", None)
    if cfg.freeze_layers >= 0 and pooler is not None and not cfg.train_pooler:  # the head learns on the base's pooler
        for p in pooler.parameters():
            p.requires_grad_(False)
    weight = torch.nn.Parameter(torch.zeros(()), requires_grad=cfg.residual)
    if cfg.residual:  # start at the retriever's ranking: a zero correction, w fitted on the training lists
        with torch.no_grad():
            for p in ce.model.classifier.parameters():
                p.zero_()
            weight.fill_(fit_retriever_weight(data))
        logger.info("residual reranker: retrieval-score weight starts at %.2f", float(weight.detach()))
    head = list(ce.model.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in ce.model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [
        {"params": body, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": head, "lr": cfg.head_lr, "weight_decay": 0.0},
    ]
    if cfg.residual:
        groups.append({"params": [weight], "lr": cfg.weight_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups)
    steps_per_epoch = (len(data) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)) * max(0.0, 1 - s / max(1, total)))
    logger.info("reranker training: %d lists, %d steps per epoch, %d trainable parameters", len(data),
                steps_per_epoch, sum(p.numel() for p in body) + sum(p.numel() for p in head))
    cached: dict[tuple[str, str], torch.Tensor] | None = None
    if cfg.cache_frozen and cfg.freeze_layers > 0 and cfg.context_rate in (0.0, 1.0):
        keys = sorted({(lists[i].context if cfg.context_rate else lists[i].plain, n)
                       for i in range(len(data)) for n in data[i][0]})
        t1 = time.perf_counter()
        states = ce.prefix_states([x for x, _ in keys], [y for _, y in keys], cfg.freeze_layers)
        cached = dict(zip(keys, states))
        logger.info("frozen layers of %d distinct pairs computed once in %.0f s", len(keys), time.perf_counter() - t1)
    ckpt = _resume(run, ce) if resume else None
    start_epoch, step = 0, 0
    if ckpt is not None:
        load_checkpoint_safely(lambda: (opt.load_state_dict(ckpt.tensors("optimizer")),
                                        sched.load_state_dict(ckpt.tensors("scheduler"))), ckpt.path)
        start_epoch, step = ckpt.number, int(ckpt.state["step"])
        with torch.no_grad():
            weight.fill_(float(ckpt.state.get("retriever_weight", float(weight.detach()))))
        ckpt.restore_rng()
        logger.info("resuming after epoch %d (step %d)", start_epoch, step)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        rng = random.Random(cfg.seed * 1000 + epoch)
        order = list(range(len(data)))
        rng.shuffle(order)
        ce.model.train()
        losses: list[float] = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"reranker epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, unit="step")
        for s in bar:
            idx = order[s : s + cfg.batch_size]
            width = max(len(data[i][0]) for i in idx)
            a: list[str] = []
            b: list[str] = []
            pos = torch.zeros(len(idx), width, dtype=torch.bool)
            pad = torch.ones(len(idx), width, dtype=torch.bool)
            retrieval: list[float] = []
            for r, i in enumerate(idx):
                names, gold, rscores = data[i]
                side = lists[i].context if rng.random() < cfg.context_rate else lists[i].plain
                for c, (n, g) in enumerate(zip(names, gold)):
                    a.append(side)
                    b.append(n)
                    pos[r, c] = g
                    pad[r, c] = False
                retrieval.extend(rscores)
            flat = ce.logits_from_states([cached[p] for p in zip(a, b)], cfg.freeze_layers) if cached else ce.logits(a, b)
            if cfg.residual:
                flat = flat + weight * torch.tensor(retrieval, dtype=flat.dtype)
            logits = torch.full((len(idx), width), float("-inf"))
            logits = logits.masked_scatter(~pad, flat)
            loss = marginal_nll(logits, pos)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if step % cfg.log_every == 0:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])),
                        **({"retriever_weight": round(float(weight.detach()), 4)} if cfg.residual else {}))
        ce.model.eval()
        run.log(epoch=epoch + 1, step=step, epoch_loss=float(np.mean(losses)), seconds=round(time.perf_counter() - t0, 1))
        run.write_checkpoint(epoch + 1, {"step": step, "retriever_weight": float(weight.detach())},
                             {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                             write=lambda d: ce.save(d / "model"))
        run.prune(keep=1)
    seconds = round(time.perf_counter() - t_start, 1)
    run.log(total_seconds=seconds, mining_seconds=round(mined_s, 1))
    ce.save(run.path / "_final", settings={})  # encoder + head, then moved into the run directory
    _install(run.path / "_final", run.path)
    write_settings(run.path, {
        "method": "cross-encoder", "base": str(base), "retriever": retriever, "layers": ce.layers,
        "max_length": ce.max_length, "n_candidates": cfg.link_candidates, "names_per_concept": 1,
        "context_window": cfg.context_window if cfg.context_rate >= 1.0 else 0,
        "trained_context_window": cfg.context_window, "retriever_weight": round(float(weight.detach()), 4),
        "residual": cfg.residual, "pair_text": cfg.pair_text,
        "steps": step, "training_seconds": seconds, "kb": kb.name, "lists": len(data),
    })
    return run.path


LISTS_FILE = "lists.jsonl"


def _mined(run: RunDirectory, documents: Sequence[Document], kb: KnowledgeBase, retriever: str,
           cfg: RerankerConfig, progress: bool) -> list[RerankList]:
    """The mined candidate lists, kept in ``run/lists.jsonl`` under a key of what they depend on
    (KB, documents, retriever, mining settings): a rerun with other training settings reuses them."""
    import hashlib

    key_data = {"kb": kb.fingerprint(), "retriever": retriever, "n": cfg.mine_candidates, "folds": cfg.folds,
                "augment": cfg.augment, "window": cfg.context_window, "unique": cfg.unique_mentions,
                "docs": hashlib.sha256("".join(f"{d.document_id}:{len(d.entities)};" for d in documents)
                                       .encode()).hexdigest()}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()
    f = run.path / LISTS_FILE
    if f.is_file():
        lines = f.read_text(encoding="utf-8").splitlines()
        if lines and json.loads(lines[0]).get("key") == key:
            logger.info("reusing the %d candidate lists mined before (%s)", len(lines) - 1, f)
            return [RerankList.from_dict(json.loads(x)) for x in lines[1:]]
    lists = mine_lists(documents, kb, retriever, n_candidates=cfg.mine_candidates, folds=cfg.folds,
                       augment=cfg.augment, context_window=cfg.context_window, unique=cfg.unique_mentions,
                       progress=progress)
    atomic_write_text(f, "\n".join([json.dumps({"key": key, **key_data})] + [json.dumps(x.to_dict()) for x in lists]) + "\n")
    return lists


def _install(src: Path, run: Path) -> None:
    import shutil

    for name in (ENCODER_DIR, HEAD_FILE):
        target = run / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (src / name).rename(target)
    shutil.rmtree(src, ignore_errors=True)


def _resume(run: RunDirectory, ce: CrossEncoder) -> Checkpoint | None:
    ckpt = run.last_checkpoint()
    if ckpt is not None:
        saved, _ = load_checkpoint_safely(lambda: CrossEncoder.load(ckpt.path / "model"), ckpt.path)
        ce.model.load_state_dict(saved.model.state_dict())
    return ckpt


# ====================================================================== choosing settings on dev
@dataclass
class DevScores:
    """Per dev mention: retrieval scores, cross-encoder logits (without and with context) and gold flags
    of its candidates."""

    retrieval: list[np.ndarray]
    plain: list[np.ndarray]
    context: list[np.ndarray]
    gold: list[np.ndarray]


def score_dev(ce: CrossEncoder, lists: Sequence[RerankList], n_candidates: int, progress: bool = True,
              pair_text: str = "name") -> DevScores:
    """Score the first ``n_candidates`` candidates of each dev list with the cross-encoder, with and
    without context (candidates shown as ``pair_text`` says)."""
    a_plain: list[str] = []
    a_ctx: list[str] = []
    b: list[str] = []
    spans: list[tuple[int, int]] = []
    for item in lists:
        cands = item.candidates[:n_candidates]
        spans.append((len(b), len(b) + len(cands)))
        for i, (_, name, _) in enumerate(cands):
            a_plain.append(item.plain)
            a_ctx.append(item.context)
            b.append(candidate_text(name, item.matched_name(i), pair_text))
    logger.info("scoring %d dev pairs with and without context", len(b))
    plain = ce.score(a_plain, b)
    ctx = ce.score(a_ctx, b) if any(x != y for x, y in zip(a_plain, a_ctx)) else plain
    out = DevScores([], [], [], [])
    for item, (lo, hi) in zip(lists, spans):
        cands = item.candidates[:n_candidates]
        out.retrieval.append(np.asarray([s for _, _, s in cands], dtype=np.float32))
        out.plain.append(plain[lo:hi])
        out.context.append(ctx[lo:hi])
        out.gold.append(np.asarray([c in item.gold for c, _, _ in cands], dtype=bool))
    return out


def _top1(logits: list[np.ndarray], retrieval: list[np.ndarray], gold: list[np.ndarray], w: float,
          rerank: np.ndarray | None = None) -> np.ndarray:
    """Whether each mention's top concept is gold (reranked, or retrieval order where ``rerank`` is False)."""
    out = np.zeros(len(gold), dtype=bool)
    for i, (lg, rs, g) in enumerate(zip(logits, retrieval, gold)):
        if not len(g):
            continue
        if rerank is not None and not rerank[i]:
            out[i] = bool(g[0])
        else:
            out[i] = bool(g[int(np.argmax(lg + w * rs))])
    return out


def tune_reranker(scores: DevScores, trained_window: int, *, gate_tolerance: float = 0.25,
                  learned_weight: float | None = None) -> dict[str, Any]:
    """Choose the linking settings on dev (see the module docstring). Returns the settings and the
    dev figures behind them. ``learned_weight``: the retrieval-score weight a residual reranker
    learned; it and multiples of it (0.5–2×) join the grid of weights tried."""
    n = len(scores.gold)
    if n == 0:
        raise InputError(Errors.E474.format(reason="no dev mention has a gold concept in the KB"))
    retr = float(np.mean([bool(len(g)) and bool(g[0]) for g in scores.gold])) * 100
    best: tuple[float, int, float] | None = None
    table = []
    weights = [0.0, 1.0, 2.0, 5.0, 10.0]
    if learned_weight:
        weights = sorted({*weights, *(round(float(learned_weight) * m, 4) for m in (0.5, 0.75, 1.0, 1.5, 2.0))})
    for window, logits in ((0, scores.plain), (trained_window, scores.context)):
        for w in weights:
            r1 = float(_top1(logits, scores.retrieval, scores.gold, w).mean()) * 100
            table.append({"context_window": window, "retriever_weight": w, "r1": round(r1, 2)})
            if best is None or r1 > best[0] + 1e-9:
                best = (r1, window, w)
    assert best is not None
    r1, window, w = best
    logits = scores.plain if window == 0 else scores.context
    # gate: rerank only where the retriever is unsure
    top = np.asarray([rs[0] if len(rs) else 0.0 for rs in scores.retrieval])
    second = np.asarray([rs[1] if len(rs) > 1 else -np.inf for rs in scores.retrieval])
    margin = top - second
    gate = {"gate_score": None, "gate_margin": None, "gated_share": 0.0, "r1": round(r1, 2)}
    for gs in sorted(set(np.quantile(top, np.linspace(0.0, 1.0, 21)).round(4).tolist())):
        for gm in sorted(set(np.quantile(margin[np.isfinite(margin)], np.linspace(0.0, 1.0, 21)).round(4).tolist())
                         if np.isfinite(margin).any() else [0.0]):
            skip = (top >= gs) & (margin >= gm)
            acc = float(_top1(logits, scores.retrieval, scores.gold, w, rerank=~skip).mean()) * 100
            if acc >= r1 - gate_tolerance and skip.mean() > gate["gated_share"]:
                gate = {"gate_score": gs, "gate_margin": gm, "gated_share": round(float(skip.mean()), 3),
                        "r1": round(acc, 2)}
    # NIL: in-KB best scores vs best scores with the gold concepts held out
    inkb, held = [], []
    for lg, rs, g in zip(logits, scores.retrieval, scores.gold):
        s = lg + w * rs
        if len(s):
            inkb.append(float(s.max()))
        if (~g).any():
            held.append(float(s[~g].max()))
    inkb_a, held_a = np.asarray(inkb), np.asarray(held)
    nil = {"nil_threshold": None}
    if len(inkb_a) and len(held_a):
        cands = np.unique(np.concatenate([inkb_a, held_a]))
        acc = [(float((inkb_a >= t).mean()) + float((held_a < t).mean())) / 2 for t in cands]
        t = float(cands[int(np.argmax(acc))])
        nil = {"nil_threshold": round(t, 4), "nil_balanced_accuracy": round(max(acc) * 100, 2),
               "nil_in_kb_kept": round(float((inkb_a >= t).mean()) * 100, 2),
               "nil_held_out_rejected": round(float((held_a < t).mean()) * 100, 2)}
    return {"context_window": window, "retriever_weight": w, "gate_score": gate["gate_score"],
            "gate_margin": gate["gate_margin"], "nil_threshold": nil["nil_threshold"],
            "dev": {"mentions": n, "retriever_r1": round(retr, 2), "rerank_r1": round(r1, 2),
                    "gated_r1": gate["r1"], "gated_share": gate["gated_share"], "grid": table,
                    **{k: v for k, v in nil.items() if k != "nil_threshold"}}}


def apply_settings(reranker_dir: str | Path, settings: dict[str, Any]) -> None:
    """Merge linking settings into a reranker's ``reranker.json`` (atomically)."""
    f = Path(reranker_dir) / RERANKER_CONFIG
    cfg = read_json(f, expect=dict)
    cfg.update(settings)
    atomic_write_text(f, json.dumps(cfg, indent=2) + "\n")


# ====================================================================== export
def export_reranker(run_dir: str | Path, out_dir: str | Path, *, base: str | Path = "minilm",
                    weights: str = "int8") -> Path:
    """A shippable copy of a trained reranker: its transformer as a delta over ``base`` (only the
    tensors training changed; int8 differences by default), the head and ``reranker.json``. A model
    with fewer layers than the base is stored as the base with its first layers replaced (the
    ``layers`` setting cuts it again on load)."""
    run = Path(run_dir)
    if not (run / RERANKER_CONFIG).is_file():
        raise FormatError(Errors.E300.format(path=run, kind="trained reranker", missing=RERANKER_CONFIG))
    ce, cfg = CrossEncoder.load(run)
    full = TextEncoder.load(base)
    trained = ce.model.base_model.state_dict()
    missing = [k for k in trained if k not in full.model.state_dict()]
    if missing:
        raise ConfigError(Errors.E304.format(path=run, base=base, reason=f"tensors not in the base: {missing[:3]}"))
    with torch.no_grad():
        full.model.load_state_dict(trained, strict=False)
    full.source = str(run)

    def write(d: Path) -> None:
        delta_encoder(full, base, d / ENCODER_DIR, weights=weights)
        write_head(d, ce.head_state())
        write_settings(d, {**cfg, "base": str(base)})

    return atomic_dir(out_dir, write)


__all__ = ["DevScores", "RerankerConfig", "apply_settings", "export_reranker", "score_dev", "train_reranker",
           "training_list", "tune_reranker"]
