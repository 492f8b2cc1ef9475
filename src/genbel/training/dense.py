"""Train dense retrievers on CPU: SapBERT-style metric learning and BioSyn.

* :func:`train_sapbert` — metric learning on pairs of names of the same concept (KB synonyms,
  optionally training mentions paired with a name of their gold concept). In-batch negatives with a
  multi-positive InfoNCE loss (every name of the anchor's concept in the batch is a positive) or
  SapBERT's multi-similarity loss with hard-pair mining.
* :func:`train_biosyn` — BioSyn (Sung et al., 2020) on a corpus of mentions with gold concepts:
  each epoch re-embeds the KB names with the current encoder and retrieves ``topk`` candidate names
  per mention, a share from the TF-IDF retriever and the rest from the dense one (iterative
  candidate retrieval); the score of a candidate is ``(dense + λ·sparse) / τ`` with a learned
  sparse weight λ, and the loss is the synonym-marginalised likelihood
  ``−log Σ_{candidates of a gold concept} softmax(score)``.

Both write a run directory::

    out_dir/config.json          every setting (a resumed run must use the same)
    out_dir/log.jsonl            loss per logged step, epoch summaries
    out_dir/checkpoints/epoch-N/ encoder + state.pt (optimizer, λ, RNG), one per finished epoch
    out_dir/encoder/             the trained encoder (Hugging Face checkpoint + pooling settings)
    out_dir/retriever.json       method, pooling, max length, learned λ: load with
                                 ``create_linker("biosyn:out_dir", kb)`` or ``dense:out_dir``
    out_dir/concept_prior.json   gold-concept counts of the training mentions (breaks ties between
                                 concepts that share a name, as the corpus' annotators would)

Runs are deterministic for a fixed ``seed`` (data order, sampling and initialisation) and
resumable at epoch boundaries (``resume=True``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from genbel.data.model import Document
from genbel.errors import ConfigError, Errors, InputError
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.dense import RETRIEVER_CONFIG, TextEncoder, build_faiss_index
from genbel.io import atomic_dir
from genbel.linkers.nametable import NameTable, concept_prior
from genbel.linkers.sparse import PRIOR_FILE, SparseLinker

logger = logging.getLogger(__name__)

_EPOCH_RE = re.compile(r"^epoch-(\d+)$")


# ====================================================================== configs
@dataclass
class SapbertConfig:
    """Settings of :func:`train_sapbert` (all recorded in ``config.json``)."""

    epochs: int = 1
    max_steps: int | None = None  #: stop after this many optimizer steps in total
    batch_size: int = 64  #: pairs per step (2 × names)
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_steps: int = 20
    loss: str = "infonce"  #: ``infonce`` or ``multi-similarity``
    temperature: float = 0.05  #: InfoNCE temperature
    ms_alpha: float = 2.0  #: multi-similarity: positive scale
    ms_beta: float = 50.0  #: multi-similarity: negative scale
    ms_base: float = 0.5  #: multi-similarity: similarity margin λ
    ms_epsilon: float = 0.1  #: multi-similarity: mining margin
    pairs_per_name: int = 1  #: KB pairs: each name with this many other names of its concept
    max_kb_pairs: int | None = None  #: keep at most this many KB pairs (random, seeded)
    kb_concepts: str = "all"  #: ``all`` KB concepts, or ``mentioned`` (those of the training mentions)
    mention_repeats: int = 1  #: each training mention pair is used this many times per epoch
    unique_mentions: bool = True  #: one pair per distinct (mention, gold concepts), not per occurrence
    freeze_layers: int = 0  #: freeze the embeddings and the first N transformer layers (-1: none frozen)
    max_length: int = 25
    pooling: str | None = None  #: ``mean``/``cls``; ``None`` keeps the encoder's
    log_every: int = 10
    seed: int = 0


@dataclass
class BiosynConfig:
    """Settings of :func:`train_biosyn` (BioSyn's defaults where they fit a CPU)."""

    epochs: int = 2
    batch_size: int = 16  #: mentions per step
    lr: float = 1e-5
    sparse_lr: float = 0.01  #: learning rate of λ (BioSyn: 0.01)
    weight_decay: float = 0.01
    topk: int = 20  #: candidate names per mention
    dense_ratio: float = 0.5  #: share of candidates retrieved by the dense retriever
    initial_sparse_weight: float = 1.0
    temperature: float = 0.05  #: scores of unit vectors are divided by τ before the softmax
    unique_mentions: bool = True  #: train once per distinct (mention, gold concepts)
    freeze_layers: int = 0  #: freeze the embeddings and the first N transformer layers (-1: none frozen)
    refresh_candidates: bool = True  #: re-embed the KB and re-retrieve every epoch (BioSyn)
    max_length: int = 25
    pooling: str | None = None
    log_every: int = 10
    seed: int = 0


# ====================================================================== data
@dataclass
class TrainingMention:
    """A normalised mention string and the positions of its gold concepts in a :class:`NameTable`."""

    key: str
    concepts: frozenset[int]


@dataclass
class MentionReport:
    kept: int = 0
    duplicates: int = 0
    nil: int = 0
    not_in_kb: int = 0
    empty: int = 0
    examples_not_in_kb: list[str] = field(default_factory=list)


def training_mentions(
    documents: Iterable[Document], kb: KnowledgeBase, table: NameTable, unique: bool = True
) -> tuple[list[TrainingMention], MentionReport]:
    """Mentions with their gold concepts (resolved through alternate ids); a composite mention
    keeps all its concepts as positives. NIL mentions and gold ids absent from the KB are counted
    and dropped."""
    pos = {cid: j for j, cid in enumerate(table.concept_ids)}
    out: list[TrainingMention] = []
    seen: set[tuple[str, frozenset[int]]] = set()
    rep = MentionReport()
    for doc in documents:
        for e in doc.entities:
            if not e.gold_ids:
                rep.nil += 1
                continue
            mains = {kb.resolve_id(g) for g in e.gold_ids}
            concepts = frozenset(pos[m] for m in mains if m is not None and m in pos)
            if not concepts:
                rep.not_in_kb += 1
                if len(rep.examples_not_in_kb) < 5:
                    rep.examples_not_in_kb.append(f"{doc.document_id}:{e.mention}:{'|'.join(e.gold_ids)}")
                continue
            key = normalize_name(e.mention)
            if not key:
                rep.empty += 1
                continue
            if unique:
                if (key, concepts) in seen:
                    rep.duplicates += 1
                    continue
                seen.add((key, concepts))
            out.append(TrainingMention(key, concepts))
            rep.kept += 1
    if rep.not_in_kb:
        logger.warning("%d training mentions have gold ids not in the KB (e.g. %s); skipped",
                       rep.not_in_kb, ", ".join(rep.examples_not_in_kb))
    return out, rep


def synonym_pairs(
    table: NameTable, rng: random.Random, pairs_per_name: int = 1, concepts: set[int] | None = None
) -> list[tuple[int, int]]:
    """``(row, row)`` pairs of different names of one concept: each name with up to
    ``pairs_per_name`` other names of its concept (sampled with ``rng``)."""
    pairs: list[tuple[int, int]] = []
    for j in range(table.n_concepts):
        if concepts is not None and j not in concepts:
            continue
        lo, hi = int(table.concept_starts[j]), table.concept_end(j)
        rows = list(range(lo, hi))
        if len(rows) < 2:
            continue
        for r in rows:
            others = [o for o in rows if o != r]
            for o in rng.sample(others, min(pairs_per_name, len(others))):
                pairs.append((r, o))
    return pairs


# ====================================================================== losses
def infonce_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE over a batch of unit vectors: for each anchor, −log of the softmax
    mass (over all other items) on items with the same label. Anchors without a positive are ignored."""
    sim = emb @ emb.T / temperature
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~eye
    has = pos.any(1)
    if not bool(has.any()):
        return emb.sum() * 0.0
    log_all = torch.logsumexp(sim, dim=1)
    log_pos = torch.logsumexp(sim.masked_fill(~pos, float("-inf")), dim=1)
    return (log_all - log_pos)[has].mean()


def multi_similarity_loss(
    emb: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
    epsilon: float = 0.1,
) -> torch.Tensor:
    """Multi-similarity loss (Wang et al., 2019) with its pair mining, as SapBERT uses it."""
    sim = emb @ emb.T
    n = emb.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    neg = labels[:, None] != labels[None, :]
    inf = torch.tensor(float("inf"), device=emb.device)
    min_pos = torch.where(pos, sim, inf).min(1).values
    max_neg = torch.where(neg, sim, -inf).max(1).values
    pos_keep = pos & (sim - epsilon < max_neg[:, None])
    neg_keep = neg & (sim + epsilon > min_pos[:, None])
    zero = torch.zeros_like(sim)
    pos_term = torch.log1p(torch.where(pos_keep, torch.exp(-alpha * (sim - base)), zero).sum(1)) / alpha
    neg_term = torch.log1p(torch.where(neg_keep, torch.exp(beta * (sim - base)), zero).sum(1)) / beta
    return (pos_term + neg_term).mean()


def marginal_nll(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """BioSyn's synonym marginalisation: mean over rows with a positive of
    ``−log Σ_{positive} softmax(logits)``; rows without a positive candidate are left out."""
    has = positive.any(1)
    if not bool(has.any()):
        return logits.sum() * 0.0
    log_all = torch.logsumexp(logits, dim=1)
    log_pos = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (log_all - log_pos)[has].mean()


# ====================================================================== run directory
class _Run:
    """Config check, log, per-epoch checkpoints and the final export of a training run."""

    def __init__(self, out_dir: Path, config: dict[str, Any], resume: bool) -> None:
        self.dir = Path(out_dir)
        self.config = config
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg_file = self.dir / "config.json"
        if cfg_file.is_file():
            old = json.loads(cfg_file.read_text(encoding="utf-8"))
            changed = sorted(
                k for k in set(old) | set(config) if old.get(k) != config.get(k) and k != "epochs"
            )
            if changed and resume:
                raise ConfigError(Errors.E352.format(path=self.dir, fields=", ".join(changed)))
        tmp = cfg_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
        tmp.replace(cfg_file)
        if not resume:
            shutil.rmtree(self.dir / "checkpoints", ignore_errors=True)
            (self.dir / "log.jsonl").unlink(missing_ok=True)

    def log(self, **row: Any) -> None:
        with open(self.dir / "log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def last_epoch(self) -> tuple[int, Path | None]:
        d = self.dir / "checkpoints"
        best, path = 0, None
        if d.is_dir():
            for p in d.iterdir():
                m = _EPOCH_RE.match(p.name)
                if m and (p / "state.pt").is_file() and (p / "encoder").is_dir() and int(m.group(1)) > best:
                    best, path = int(m.group(1)), p
        return best, path

    def save_epoch(self, epoch: int, encoder: TextEncoder, state: dict[str, Any]) -> None:
        def write(d: Path) -> None:
            encoder.save(d / "encoder")
            torch.save(state, d / "state.pt")

        atomic_dir(self.dir / "checkpoints" / f"epoch-{epoch}", write)
        # keep only the newest checkpoint (each is a full encoder copy)
        for p in (self.dir / "checkpoints").iterdir():
            m = _EPOCH_RE.match(p.name)
            if m and int(m.group(1)) < epoch:
                shutil.rmtree(p, ignore_errors=True)

    def finish(
        self, encoder: TextEncoder, retriever: dict[str, Any], prior: dict[str, int] | None = None
    ) -> Path:
        encoder.save(self.dir / "encoder")
        prior_file = self.dir / PRIOR_FILE
        if prior:
            tmp_prior = self.dir / (PRIOR_FILE + ".tmp")
            tmp_prior.write_text(json.dumps(prior, sort_keys=True), encoding="utf-8")
            tmp_prior.replace(prior_file)
        else:
            prior_file.unlink(missing_ok=True)
        tmp = self.dir / (RETRIEVER_CONFIG + ".tmp")
        tmp.write_text(json.dumps(retriever, indent=2), encoding="utf-8")
        tmp.replace(self.dir / RETRIEVER_CONFIG)
        return self.dir


def _encoder(encoder: TextEncoder | str | Path, max_length: int, pooling: str | None) -> TextEncoder:
    enc = encoder if isinstance(encoder, TextEncoder) else TextEncoder.from_pretrained(encoder)
    enc.max_length = int(max_length)
    if pooling is not None:
        if pooling not in ("mean", "cls"):
            raise ConfigError(
                Errors.E021.format(field="pooling", reason=f"expected mean or cls, got {pooling!r}")
            )
        enc.pooling = pooling
    return enc


def freeze_layers(model: torch.nn.Module, n: int) -> int:
    """Freeze the word/position embeddings and the first ``n`` transformer layers of a BERT-like
    model (``n < 0``: freeze nothing). Returns the number of trainable parameters left.

    Frozen bottom layers cut the backward pass and the optimizer state, which is what makes
    fine-tuning affordable on a shared CPU.
    """
    if n >= 0:
        emb = getattr(model, "embeddings", None)
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        if emb is None or layers is None:
            raise ConfigError(Errors.E021.format(
                field="freeze_layers",
                reason=f"{type(model).__name__} has no embeddings/encoder.layer to freeze (use -1)",
            ))
        if n > len(layers):
            raise ConfigError(
                Errors.E021.format(field="freeze_layers", reason=f"the model has {len(layers)} layers")
            )
        for p in emb.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[:n]:
            for p in layer.parameters():
                p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(Errors.E021.format(field=name, reason=f"must be > 0, got {value}"))


# ====================================================================== SapBERT-style
def train_sapbert(
    kb: KnowledgeBase,
    encoder: TextEncoder | str | Path,
    out_dir: str | Path,
    *,
    documents: Sequence[Document] | None = None,
    config: SapbertConfig | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Metric learning on names of the same concept (SapBERT-style); returns ``out_dir``.

    The pairs are KB synonym pairs (``pairs_per_name`` per name) and, when ``documents`` are given,
    each training mention paired with a random name of its gold concept (``mention_repeats`` times
    per epoch). Each batch of pairs is 2 × ``batch_size`` names whose labels are their concepts.
    """
    cfg = config or SapbertConfig()
    _check_positive("batch_size", cfg.batch_size)
    _check_positive("temperature", cfg.temperature)
    if cfg.loss not in ("infonce", "multi-similarity"):
        raise ConfigError(
            Errors.E021.format(field="loss", reason=f"expected infonce or multi-similarity, got {cfg.loss!r}")
        )
    enc = _encoder(encoder, cfg.max_length, cfg.pooling)
    table = NameTable.from_kb(kb)
    mentions: list[TrainingMention] = []
    rep = MentionReport()
    if documents is not None:
        mentions, rep = training_mentions(documents, kb, table, unique=cfg.unique_mentions)
    run = _Run(Path(out_dir), {"method": "sapbert", "kb": kb.fingerprint(), "base_encoder": enc.source,
                               "mentions": len(mentions), **asdict(cfg)}, resume)
    _seed_all(cfg.seed)
    rng = random.Random(cfg.seed)
    concept_filter = None
    if cfg.kb_concepts == "mentioned":
        concept_filter = {j for m in mentions for j in m.concepts}
    elif cfg.kb_concepts != "all":
        raise ConfigError(Errors.E021.format(
            field="kb_concepts", reason=f"expected all or mentioned, got {cfg.kb_concepts!r}"
        ))
    kb_pairs = synonym_pairs(table, rng, cfg.pairs_per_name, concept_filter)
    if cfg.max_kb_pairs is not None and len(kb_pairs) > cfg.max_kb_pairs:
        kb_pairs = rng.sample(kb_pairs, cfg.max_kb_pairs)
    # a pair is (text, text, concept position)
    base_pairs = [(table.keys[a], table.keys[b], int(table.row_concept[a])) for a, b in kb_pairs]
    if not base_pairs and not mentions:
        raise InputError(
            Errors.E017.format(reason="no concept has two names and no training mention was given")
        )
    logger.info(
        "SapBERT-style training: %d KB synonym pairs, %d training mentions", len(base_pairs), len(mentions)
    )

    n_train = freeze_layers(enc.model, cfg.freeze_layers)
    logger.info("%d trainable parameters", n_train)
    params = [p for p in enc.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_pairs = len(base_pairs) + len(mentions) * cfg.mention_repeats
    steps_per_epoch = (n_pairs + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(cfg.max_steps, total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)) * max(0.0, 1 - s / max(1, total))
    )
    start_epoch, ckpt = run.last_epoch() if resume else (0, None)
    step = 0
    if ckpt is not None:
        enc.model.load_state_dict(TextEncoder.from_pretrained(ckpt / "encoder").model.state_dict())
        state = torch.load(ckpt / "state.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        torch.set_rng_state(state["rng"])  # dropout masks continue as in an uninterrupted run
        logger.info("resuming after epoch %d (step %d)", start_epoch, step)
    enc.model.train()
    for epoch in range(start_epoch, cfg.epochs):
        if step >= total:
            break
        erng = random.Random(cfg.seed * 1000 + epoch)
        pairs = list(base_pairs)
        for _ in range(cfg.mention_repeats):
            for m in mentions:
                j = erng.choice(sorted(m.concepts))
                lo, hi = int(table.concept_starts[j]), table.concept_end(j)
                pairs.append((m.key, table.keys[erng.randrange(lo, hi)], j))
        erng.shuffle(pairs)
        t0 = time.time()
        bar = tqdm(range(0, len(pairs), cfg.batch_size), desc=f"sapbert epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, unit="step")
        losses: list[float] = []
        for s in bar:
            if step >= total:
                break
            batch = pairs[s : s + cfg.batch_size]
            texts = [a for a, _, _ in batch] + [b for _, b, _ in batch]
            labels = torch.tensor([c for _, _, c in batch] * 2)
            emb = enc.embed(texts)
            if cfg.loss == "infonce":
                loss = infonce_loss(emb, labels, cfg.temperature)
            else:
                loss = multi_similarity_loss(
                    emb, labels, cfg.ms_alpha, cfg.ms_beta, cfg.ms_base, cfg.ms_epsilon
                )
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if step % cfg.log_every == 0:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])),
                        lr=sched.get_last_lr()[0])
        run.log(epoch=epoch + 1, step=step, epoch_loss=float(np.mean(losses)) if losses else None,
                seconds=round(time.time() - t0, 1))
        run.save_epoch(epoch + 1, enc, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                        "step": step, "rng": torch.get_rng_state()})
    enc.model.eval()
    return run.finish(enc, {
        "method": "sapbert", "pooling": enc.pooling, "max_length": enc.max_length, "sparse_weight": 0.0,
        "base_encoder": enc.source, "steps": step, "kb": kb.name, "mentions": rep.kept,
    }, prior=concept_prior(documents, kb) if documents else None)


# ====================================================================== BioSyn
def _biosyn_candidates(
    mentions: Sequence[TrainingMention], enc: TextEncoder, table: NameTable, sparse: SparseLinker,
    n_sparse: int, topk: int, progress: bool, name_vectors: np.ndarray | None = None,
) -> np.ndarray:
    """``(len(mentions), topk)`` candidate name rows: the ``n_sparse`` best TF-IDF names, then the
    best dense names not already chosen (BioSyn's candidate mix)."""
    keys = [m.key for m in mentions]
    _, s_rows = sparse.search_names(keys, topk)
    d_rows = np.zeros((len(keys), 0), dtype=np.int64)
    if topk > n_sparse:
        if name_vectors is None:
            name_vectors = enc.encode(table.keys, progress=progress, desc="embedding KB names")
        index = build_faiss_index(name_vectors, "flat")
        _, d_rows = index.search(enc.encode(keys, progress=False), min(len(table), topk + n_sparse))
    out = np.zeros((len(keys), topk), dtype=np.int64)
    for i in range(len(keys)):
        chosen: list[int] = [int(r) for r in s_rows[i, :n_sparse]]
        have = set(chosen)
        # dense candidates fill the rest; leftover sparse ones pad when the KB is tiny
        for r in [*d_rows[i], *s_rows[i, n_sparse:]]:
            if len(chosen) >= topk:
                break
            if r >= 0 and int(r) not in have:
                chosen.append(int(r))
                have.add(int(r))
        while len(chosen) < topk:  # fewer distinct names than topk: repeat the last (masked in the loss)
            chosen.append(chosen[-1])
        out[i] = chosen
    return out


def train_biosyn(
    kb: KnowledgeBase,
    train_documents: Sequence[Document],
    encoder: TextEncoder | str | Path,
    out_dir: str | Path,
    *,
    config: BiosynConfig | None = None,
    sparse: SparseLinker | None = None,
    initial_name_vectors: np.ndarray | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """BioSyn training on ``train_documents`` (mention → gold concept) against ``kb``; returns ``out_dir``.

    The KB is the dictionary; augment it with training mentions first (``augment_kb``) to follow the
    BioSyn protocol. ``sparse`` is the TF-IDF retriever for ``kb`` (built when ``None``).
    ``initial_name_vectors`` are embeddings of the KB names by the *initial* encoder (e.g. from a
    :class:`~genbel.linkers.dense.DenseLinker` index, see :func:`index_vectors`); the first epoch then
    retrieves its candidates with them instead of embedding the KB again.
    """
    cfg = config or BiosynConfig()
    _check_positive("batch_size", cfg.batch_size)
    _check_positive("temperature", cfg.temperature)
    if cfg.topk < 2:
        raise ConfigError(Errors.E021.format(field="topk", reason="must be >= 2"))
    if not 0.0 <= cfg.dense_ratio <= 1.0:
        raise ConfigError(Errors.E021.format(field="dense_ratio", reason="must be in [0, 1]"))
    enc = _encoder(encoder, cfg.max_length, cfg.pooling)
    sparse = sparse if sparse is not None else SparseLinker(kb)
    table = sparse.table
    mentions, rep = training_mentions(train_documents, kb, table, unique=cfg.unique_mentions)
    if not mentions:
        raise InputError(
            Errors.E017.format(reason=f"no training mention has a gold concept in the KB ({asdict(rep)})")
        )
    run = _Run(Path(out_dir), {"method": "biosyn", "kb": kb.fingerprint(), "base_encoder": enc.source,
                               "mentions": len(mentions), **asdict(cfg)}, resume)
    logger.info("BioSyn training: %d mentions (%d duplicates, %d NIL, %d not in KB skipped)",
                rep.kept, rep.duplicates, rep.nil, rep.not_in_kb)
    _seed_all(cfg.seed)
    topk = min(cfg.topk, len(table))
    n_sparse = topk - int(round(topk * cfg.dense_ratio))
    freeze_layers(enc.model, cfg.freeze_layers)
    lam = torch.nn.Parameter(torch.tensor(float(cfg.initial_sparse_weight)))
    opt = torch.optim.AdamW([
        {"params": [p for p in enc.model.parameters() if p.requires_grad], "lr": cfg.lr,
         "weight_decay": cfg.weight_decay},
        {"params": [lam], "lr": cfg.sparse_lr, "weight_decay": 0.0},
    ])
    start_epoch, ckpt = run.last_epoch() if resume else (0, None)
    step = 0
    if ckpt is not None:
        enc.model.load_state_dict(TextEncoder.from_pretrained(ckpt / "encoder").model.state_dict())
        state = torch.load(ckpt / "state.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        with torch.no_grad():
            lam.fill_(float(state["sparse_weight"]))
        step = int(state["step"])
        torch.set_rng_state(state["rng"])
        logger.info("resuming after epoch %d (step %d, λ=%.3f)", start_epoch, step, lam.item())
    row_concept = torch.from_numpy(table.row_concept)
    cand: np.ndarray | None = None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        if cand is None or cfg.refresh_candidates:
            first = epoch == 0 and initial_name_vectors is not None
            if first and len(initial_name_vectors) != len(table):  # type: ignore[arg-type]
                n_vectors = len(initial_name_vectors)  # type: ignore[arg-type]
                raise ConfigError(Errors.E021.format(
                    field="initial_name_vectors", reason=f"{n_vectors} vectors for {len(table)} KB names"
                ))
            cand = _biosyn_candidates(mentions, enc, table, sparse, n_sparse, topk, progress,
                                      name_vectors=initial_name_vectors if first else None)
        keys = [m.key for m in mentions]
        sparse_scores = torch.from_numpy(sparse.pair_scores(keys, cand))
        cand_t = torch.from_numpy(cand)
        # positives: candidates of a gold concept; repeated padding rows never count twice
        dup = torch.zeros_like(cand_t, dtype=torch.bool)
        dup[:, 1:] = cand_t[:, 1:] == cand_t[:, :-1]
        gold = [torch.tensor(sorted(m.concepts)) for m in mentions]
        positive = torch.stack(
            [torch.isin(row_concept[cand_t[i]], gold[i]) for i in range(len(mentions))]
        ) & ~dup
        recall = float(positive.any(1).float().mean())
        logger.info("epoch %d: a gold concept is among the %d candidates for %.1f%% of mentions",
                    epoch + 1, topk, 100 * recall)
        order = list(range(len(mentions)))
        random.Random(cfg.seed * 1000 + epoch).shuffle(order)
        enc.model.train()
        losses: list[float] = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"biosyn epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, unit="step")
        for s in bar:
            idx = torch.tensor(order[s : s + cfg.batch_size])
            rows = cand_t[idx]
            uniq, inv = torch.unique(rows, return_inverse=True)
            q = enc.embed([keys[i] for i in idx.tolist()])
            c = enc.embed([table.keys[r] for r in uniq.tolist()])
            dense = torch.einsum("bd,bkd->bk", q, c[inv])
            logits = (dense + lam * sparse_scores[idx]) / cfg.temperature
            logits = logits.masked_fill(dup[idx], float("-inf"))
            loss = marginal_nll(logits, positive[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lam=f"{lam.item():.3f}")
            if step % cfg.log_every == 0:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])),
                        sparse_weight=lam.item())
        enc.model.eval()
        run.log(epoch=epoch + 1, step=step, epoch_loss=float(np.mean(losses)), sparse_weight=lam.item(),
                candidate_recall=recall, seconds=round(time.time() - t0, 1))
        run.save_epoch(epoch + 1, enc, {"optimizer": opt.state_dict(), "sparse_weight": lam.item(),
                                        "step": step, "rng": torch.get_rng_state()})
    return run.finish(enc, {
        "method": "biosyn", "pooling": enc.pooling, "max_length": enc.max_length, "sparse_weight": lam.item(),
        "base_encoder": enc.source, "steps": step, "kb": kb.name, "mentions": rep.kept,
    }, prior=concept_prior(train_documents, kb))


def index_vectors(path: str | Path, kb: KnowledgeBase, index_kb: KnowledgeBase | None = None) -> np.ndarray:
    """The name embeddings stored in a dense index directory, one row per name of ``kb``.

    The index must have been built for ``kb``, or for ``index_kb`` whose names include every name
    of ``kb`` (e.g. ``kb`` augmented with training mentions); rows are then matched by
    (concept, normalised name).
    """
    import faiss

    from genbel.errors import FormatError, IndexMismatchError

    path = Path(path)
    if not (path / "meta.json").is_file() or not (path / "faiss.index").is_file():
        raise FormatError(Errors.E300.format(path=path, kind="dense", missing="meta.json, faiss.index"))
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    built_for = index_kb if index_kb is not None else kb
    if meta.get("kb_fingerprint") != built_for.fingerprint():
        raise IndexMismatchError(
            Errors.E010.format(expected=meta.get("kb_fingerprint"), actual=built_for.fingerprint())
        )
    index = faiss.read_index(str(path / "faiss.index"))
    vectors = index.reconstruct_n(0, index.ntotal)
    if index_kb is None or index_kb is kb:
        return vectors
    have = NameTable.from_kb(index_kb, normalize=bool(meta.get("normalize", True)))
    row_of = {(have.concept_ids[have.row_concept[i]], key): i for i, key in enumerate(have.keys)}
    want = NameTable.from_kb(kb, normalize=bool(meta.get("normalize", True)))
    rows = [row_of.get((want.concept_ids[want.row_concept[i]], key), -1) for i, key in enumerate(want.keys)]
    if min(rows, default=0) < 0:
        raise IndexMismatchError(Errors.E302.format(path=path, found=index.ntotal, expected=len(want)))
    return vectors[np.asarray(rows, dtype=np.int64)]


# ====================================================================== compact export
def compact_encoder(
    encoder: TextEncoder | str | Path,
    texts: Iterable[str],
    out_dir: str | Path,
    *,
    weights: str = "int8",
    keep_characters: bool = True,
) -> Path:
    """Write a smaller copy of a WordPiece (BERT-family) encoder for shipping.

    * The vocabulary keeps the special tokens, every token used to tokenise ``texts`` (the KB names
      and corpora the encoder will see) and, with ``keep_characters``, every single-character piece
      (``a``, ``##a`` …) so that any other word still tokenises (into smaller pieces).
    * ``weights="int8"`` stores large matrices as int8 with a float16 scale per row (dequantised to
      float32 on load); ``"float16"`` halves the size; ``"float32"`` keeps it.

    Texts made only of kept tokens are tokenised exactly as before, so their embeddings change only
    by the weight rounding. Returns ``out_dir``.
    """
    import copy

    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from genbel.linkers.dense import ENCODER_CONFIG, INT8_FILE, INT8_WEIGHTS, quantize_int8

    if weights not in ("int8", "float16", "float32"):
        raise ConfigError(
            Errors.E021.format(field="weights", reason=f"expected int8, float16 or float32, got {weights!r}")
        )
    enc = encoder if isinstance(encoder, TextEncoder) else TextEncoder.from_pretrained(encoder)
    tok = enc.tokenizer
    spec = json.loads(tok.backend_tokenizer.to_str())
    if spec.get("model", {}).get("type") != "WordPiece":
        raise ConfigError(
            Errors.E021.format(field="encoder", reason="compact export needs a WordPiece (BERT) tokenizer")
        )
    vocab: dict[str, int] = spec["model"]["vocab"]
    id_to_token = {i: t for t, i in vocab.items()}
    keep: set[int] = set(tok.all_special_ids)
    batch: list[str] = []

    def flush() -> None:
        for ids in tok(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            keep.update(ids)
        batch.clear()

    for t in texts:
        batch.append(t)
        if len(batch) >= 4096:
            flush()
    if batch:
        flush()
    if keep_characters:
        prefix = spec["model"].get("continuing_subword_prefix", "##")
        for t, i in vocab.items():
            core = t[len(prefix):] if t.startswith(prefix) else t
            if len(core) == 1:
                keep.add(i)
    kept = sorted(i for i in keep if i in id_to_token)
    new_id = {old: new for new, old in enumerate(kept)}
    spec["model"]["vocab"] = {id_to_token[i]: new_id[i] for i in kept}
    for added in spec.get("added_tokens", []):
        if added["id"] in new_id:
            added["id"] = new_id[added["id"]]
    post = spec.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    for key in ("cls", "sep"):  # BertProcessing stores [token, id] pairs
        if isinstance(post.get(key), list):
            post[key] = [post[key][0], new_id[post[key][1]]]
    new_tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_max_length=tok.model_max_length,
        **{k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)},
    )

    model = copy.deepcopy(enc.model).float()
    old_emb = model.get_input_embeddings()
    pad = model.config.pad_token_id
    new_emb = torch.nn.Embedding(len(kept), old_emb.weight.shape[1],
                                 padding_idx=new_id.get(pad) if pad is not None else None)
    with torch.no_grad():
        new_emb.weight.copy_(old_emb.weight[torch.tensor(kept)])
    model.set_input_embeddings(new_emb)
    model.config.vocab_size = len(kept)
    if pad is not None:
        model.config.pad_token_id = new_id.get(pad, 0)

    def write(d: Path) -> None:
        new_tok.save_pretrained(d)
        info = {"pooling": enc.pooling, "max_length": enc.max_length, "vocab_kept": len(kept),
                "vocab_before": len(vocab)}
        if weights == "int8":
            model.config.save_pretrained(d)
            save_file(quantize_int8(model.state_dict()), str(d / INT8_FILE))
            info["weights"] = INT8_WEIGHTS
        else:
            (model.half() if weights == "float16" else model).save_pretrained(d)
            info["weights"] = weights
        (d / ENCODER_CONFIG).write_text(json.dumps(info, indent=2), encoding="utf-8")

    out = atomic_dir(out_dir, write)
    logger.info("compact encoder: vocabulary %d → %d tokens, %s weights, %.1f MB", len(vocab), len(kept),
                weights, sum(f.stat().st_size for f in out.iterdir()) / 1e6)
    return out


def delta_encoder(
    encoder: TextEncoder | str | Path,
    base: str | Path,
    out_dir: str | Path,
    *,
    weights: str = "int8",
    min_size: int = 4096,
) -> Path:
    """Write only the tensors of ``encoder`` that differ from the ``base`` model (an alias such as
    ``minilm`` or a checkpoint directory), for fine-tuned encoders whose bottom layers were frozen.

    ``weights="float32"`` stores the changed tensors as they are (``weights: delta``: loading gives
    the same model exactly); ``"int8"`` stores their differences from the base, 2-D tensors of at
    least ``min_size`` elements as int8 with a float16 scale per row (``delta-int8``; fine-tuning
    moves weights little, so this rounds far less than quantising the weights themselves).
    ``genbel_encoder.json`` records the base and its weight fingerprint; the tokenizer and config
    are the base's and are not copied. Refuses (``E304``) a base with other tensor names or shapes,
    another architecture config or another tokenizer. Returns ``out_dir``.
    """
    from safetensors.torch import save_file

    from genbel.linkers import dense as ld

    if weights not in ("int8", "float32"):
        raise ConfigError(
            Errors.E021.format(field="weights", reason=f"a delta export is int8 or float32, got {weights!r}")
        )
    enc = encoder if isinstance(encoder, TextEncoder) else TextEncoder.from_pretrained(encoder)
    where = enc.source or str(encoder)
    base_enc = TextEncoder.from_pretrained(base)
    _check_delta_base(enc, base_enc, where, str(base))
    state, base_state = enc.model.state_dict(), base_enc.model.state_dict()
    changed = [k for k in sorted(state) if not torch.equal(state[k].float(), base_state[k].float())]
    if weights == "int8":
        tensors = ld.quantize_int8(
            {k: state[k].float() - base_state[k].float() for k in changed}, min_size=min_size
        )
    else:
        tensors = {k: state[k].detach().float().contiguous() for k in changed}
    info = {
        "weights": ld.DELTA_INT8_WEIGHTS if weights == "int8" else ld.DELTA_WEIGHTS,
        "base": ld.delta_base_reference(base),
        "base_fingerprint": ld.state_fingerprint(base_state),
        "pooling": enc.pooling,
        "max_length": enc.max_length,
        "changed_tensors": len(changed),
        "changed_parameters": int(sum(state[k].numel() for k in changed)),
        "total_parameters": int(sum(t.numel() for t in state.values())),
    }

    def write(d: Path) -> None:
        save_file(tensors, str(d / ld.DELTA_FILE))
        (d / ld.DELTA_FILE).chmod(0o644)  # safetensors creates it 0600: a shipped file must be readable
        (d / ld.ENCODER_CONFIG).write_text(json.dumps(info, indent=2), encoding="utf-8")

    out = atomic_dir(out_dir, write)
    logger.info("delta encoder: %d of %d tensors (%d of %d parameters) differ from %s, %s, %.1f MB",
                len(changed), len(state), info["changed_parameters"], info["total_parameters"], base,
                info["weights"], (out / ld.DELTA_FILE).stat().st_size / 1e6)
    return out


def _check_delta_base(enc: TextEncoder, base: TextEncoder, where: str, base_name: str) -> None:
    """Refuse a base whose tensors, architecture or tokenizer differ from the encoder's."""

    def refuse(reason: str) -> ConfigError:
        return ConfigError(Errors.E304.format(path=where, base=base_name, reason=reason))

    state, base_state = enc.model.state_dict(), base.model.state_dict()
    only = sorted(set(state) ^ set(base_state))
    if only:
        raise refuse(f"{len(only)} tensor names are in only one of the two models (e.g. {only[:3]})")
    shapes = [k for k in sorted(state) if state[k].shape != base_state[k].shape]
    if shapes:
        k = shapes[0]
        raise refuse(f"{len(shapes)} tensors differ in shape (e.g. {k!r}: {tuple(state[k].shape)} "
                     f"vs {tuple(base_state[k].shape)} in the base)")
    metadata = {"_name_or_path", "dtype", "torch_dtype", "transformers_version", "architectures"}
    a, b = enc.model.config.to_dict(), base.model.config.to_dict()
    fields = sorted(k for k in set(a) | set(b) if k not in metadata and a.get(k) != b.get(k))
    if fields:
        raise refuse(f"the model configs differ in {', '.join(fields)}")

    def tokenizer_spec(tok: Any) -> Any:
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            return tok.get_vocab()
        spec = json.loads(backend.to_str())
        for runtime in ("truncation", "padding"):
            spec.pop(runtime, None)
        return spec

    if tokenizer_spec(enc.tokenizer) != tokenizer_spec(base.tokenizer):
        raise refuse("the tokenizers differ (a delta export uses the base's tokenizer)")


def export_retriever(
    run_dir: str | Path,
    out_dir: str | Path,
    texts: Iterable[str] = (),
    *,
    weights: str = "int8",
    delta_from: str | Path | None = None,
) -> Path:
    """A shippable copy of a trained retriever with its ``retriever.json`` and concept prior. Load it
    like the run directory (``biosyn:OUT``/``dense:OUT``).

    The encoder is :func:`compact_encoder` (vocabulary cut to the tokens of ``texts`` + single
    characters, int8 weights), or with ``delta_from`` (e.g. ``"minilm"``) :func:`delta_encoder`: only
    the tensors that differ from that base model (``texts`` must then be empty: the base's tokenizer
    is used whole)."""
    run = Path(run_dir)
    if not (run / RETRIEVER_CONFIG).is_file():
        from genbel.errors import FormatError

        raise FormatError(Errors.E300.format(path=run, kind="trained retriever", missing=RETRIEVER_CONFIG))
    texts = list(texts)
    if delta_from is not None and texts:
        raise ConfigError(Errors.E021.format(
            field="texts", reason="a delta export keeps the base's tokenizer; it prunes no vocabulary"
        ))
    keys = (normalize_name(t) for t in texts)

    def write(d: Path) -> None:
        if delta_from is not None:
            delta_encoder(run / "encoder", delta_from, d / "encoder", weights=weights)
        else:
            compact_encoder(run / "encoder", keys, d / "encoder", weights=weights)
        shutil.copy2(run / RETRIEVER_CONFIG, d / RETRIEVER_CONFIG)
        if (run / PRIOR_FILE).is_file():
            shutil.copy2(run / PRIOR_FILE, d / PRIOR_FILE)

    return atomic_dir(out_dir, write)
