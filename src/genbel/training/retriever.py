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

Both write a run directory (:mod:`genbel.training.run`, the run framework of every trainer)::

    out_dir/config.json          every setting (a resumed run must use the same)
    out_dir/log.jsonl            loss per logged step, epoch summaries
    out_dir/checkpoints/epoch-N/ encoder + optimizer/scheduler tensors, RNG and step (λ), one per
                                 finished epoch (only the newest is kept)
    out_dir/encoder/             the trained encoder (Hugging Face checkpoint + pooling settings)
    out_dir/retriever.json       method, pooling, max length, learned λ: load with
                                 ``create_linker("biosyn:out_dir", kb)`` or ``dense:out_dir``
    out_dir/concept_prior.json   gold-concept counts of the training mentions (breaks ties between
                                 concepts that share a name, as the corpus' annotators would)

Runs are deterministic for a fixed ``seed`` (data order, sampling and initialisation) and
resumable at epoch boundaries (``resume=True``). Under ``torchrun`` (:mod:`genbel.training.distributed`)
each rank embeds its share of every batch with the encoder in DistributedDataParallel; SapBERT's
in-batch losses see the whole batch (the embeddings are all-gathered with their gradient, in the
one-process order), BioSyn's per-mention losses are summed per rank over the batch's mention count;
rank 0 writes the run directory. The losses are in :mod:`genbel.training.losses`, the
training mentions and synonym pairs in :mod:`genbel.training.retriever_data`; smaller copies of the
trained encoder for shipping are written by :mod:`genbel.encoders.compact` (:func:`export_retriever`).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require

require("torch", "transformers", extra="models", feature="training")

import torch
from tqdm.auto import tqdm

from genbel.data.model import Document
from genbel.encoders import TextEncoder, compact_encoder, delta_encoder
from genbel.errors import ConfigError, Errors, FormatError, InputError
from genbel.io import atomic_dir, atomic_write_text
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.linkers.dense import RETRIEVER_CONFIG
from genbel.linkers.dense_index import build_faiss_index
from genbel.linkers.nametable import NameTable, concept_prior
from genbel.linkers.sparse import PRIOR_FILE, SparseLinker
from genbel.training import distributed
from genbel.training.distributed import DistContext
from genbel.training.losses import infonce_loss, marginal_nll, multi_similarity_loss
from genbel.training.retriever_data import MentionReport, TrainingMention, synonym_pairs, training_mentions
from genbel.training.run import Checkpoint, RunDirectory, load_checkpoint_safely, seed_all

logger = logging.getLogger(__name__)


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


# ====================================================================== run directory
def _start_run(out_dir: str | Path, settings: Mapping[str, Any], resume: bool,
               dist: DistContext | None = None) -> RunDirectory:
    """The run directory of a retriever training: a new run (``resume=False``) replaces earlier
    checkpoints and log; a resumed one must have the same settings (``epochs`` may grow). With
    several processes, their settings must agree (``E591``) and rank 0 prepares the directory."""
    dist = dist or DistContext()
    dist.check_same("settings", settings)
    run = RunDirectory(out_dir, unit="epoch")
    dist.on_main(lambda: run.start(settings, resume=resume, free=("epochs",), restart=True,
                                   resume_needs_checkpoint=False))
    return run


def _save_epoch(run: RunDirectory, epoch: int, encoder: TextEncoder, state: dict[str, Any],
                tensors: dict[str, Any], dist: DistContext | None = None) -> None:
    """Checkpoint after ``epoch`` (encoder + ``tensors`` + RNG + ``state``), written by rank 0 with
    every rank's random state; only the newest is kept (each is a full encoder copy)."""
    dist = dist or DistContext()
    rngs = dist.rng_states() if dist.enabled else None

    def write() -> None:
        run.write_checkpoint(epoch, {**state, "world_size": dist.world_size}, tensors,
                             write=lambda d: encoder.save(d / "encoder"), rng_states=rngs)
        run.prune(keep=1)

    dist.on_main(write)


def _inside_epoch(every: int | None, done: int, n_batches: int) -> bool:
    """Whether to checkpoint after batch ``done`` of an epoch of ``n_batches`` (every ``every``
    batches, not at the epoch's end, which writes its own checkpoint). A checkpoint inside epoch
    ``e`` (0-based) is numbered ``e`` — it replaces the one after the previous epoch — and records
    ``batch``: the batches of epoch ``e`` already trained."""
    return bool(every) and done % int(every) == 0 and done < n_batches  # type: ignore[operator]


def _resume(run: RunDirectory, encoder: TextEncoder, dist: DistContext | None = None) -> Checkpoint | None:
    """The last checkpoint (the one rank 0 finds) with its encoder weights loaded into ``encoder``
    (``None``: start over)."""
    dist = dist or DistContext()
    found = run.last_checkpoint() if dist.is_main else None
    path = dist.broadcast(str(found.path) if found is not None else None)
    ckpt = run.read_checkpoint(path) if path is not None else None
    if ckpt is not None:
        weights = load_checkpoint_safely(lambda: TextEncoder.load(ckpt.path / "encoder"), ckpt.path)
        encoder.model.load_state_dict(weights.model.state_dict())
    return ckpt


def _finish(run: RunDirectory, encoder: TextEncoder, retriever: dict[str, Any],
            prior: dict[str, int] | None = None, dist: DistContext | None = None) -> Path:
    """Write the trained retriever into the run directory: ``encoder/``, ``concept_prior.json``
    (when the run had training mentions) and ``retriever.json``, each atomically (by rank 0)."""
    dist = dist or DistContext()
    return Path(dist.on_main(lambda: _write_result(run, encoder, retriever, prior)))


def _write_result(run: RunDirectory, encoder: TextEncoder, retriever: dict[str, Any],
                  prior: dict[str, int] | None) -> Path:
    encoder.save(run.path / "encoder")
    prior_file = run.path / PRIOR_FILE
    if prior:
        atomic_write_text(prior_file, json.dumps(prior, sort_keys=True))
    else:
        prior_file.unlink(missing_ok=True)
    atomic_write_text(run.path / RETRIEVER_CONFIG, json.dumps(retriever, indent=2))
    return run.path


def _encoder(encoder: TextEncoder | str | Path, max_length: int, pooling: str | None) -> TextEncoder:
    enc = encoder if isinstance(encoder, TextEncoder) else TextEncoder.load(encoder)
    enc.max_length = int(max_length)
    if pooling is not None:
        if pooling not in ("mean", "cls"):
            raise ConfigError(
                Errors.E022.format(value=pooling, field="pooling", known="mean, cls")
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
            raise ConfigError(Errors.E359.format(model=type(model).__name__))
        if n > len(layers):
            raise ConfigError(
                Errors.E023.format(value=n, field="freeze_layers", constraint=f"<= {len(layers)} (the model's layers)")
            )
        for p in emb.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[:n]:
            for p in layer.parameters():
                p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(Errors.E023.format(value=value, field=name, constraint="> 0"))


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
    checkpoint_every: int | None = None,
) -> Path:
    """Metric learning on names of the same concept (SapBERT-style); returns ``out_dir``.

    The pairs are KB synonym pairs (``pairs_per_name`` per name) and, when ``documents`` are given,
    each training mention paired with a random name of its gold concept (``mention_repeats`` times
    per epoch). Each batch of pairs is 2 × ``batch_size`` names whose labels are their concepts.
    ``checkpoint_every`` N steps a checkpoint is also written inside an epoch, so that ``resume``
    continues an interrupted epoch where it stopped (same batches, same random states).
    """
    cfg = config or SapbertConfig()
    _check_positive("batch_size", cfg.batch_size)
    dist = distributed.setup("cpu")
    dist.per_rank(cfg.batch_size)
    _check_positive("temperature", cfg.temperature)
    if cfg.loss not in ("infonce", "multi-similarity"):
        raise ConfigError(
            Errors.E022.format(value=cfg.loss, field="loss", known="infonce, multi-similarity")
        )
    enc = _encoder(encoder, cfg.max_length, cfg.pooling)
    table = NameTable.from_kb(kb)
    mentions: list[TrainingMention] = []
    rep = MentionReport()
    if documents is not None:
        mentions, rep = training_mentions(documents, kb, table, unique=cfg.unique_mentions)
    run = _start_run(out_dir, {"method": "sapbert", "kb": kb.fingerprint(), "base_encoder": enc.source,
                               "mentions": len(mentions), **asdict(cfg)}, resume, dist)
    seed_all(cfg.seed)
    rng = random.Random(cfg.seed)
    concept_filter = None
    if cfg.kb_concepts == "mentioned":
        concept_filter = {j for m in mentions for j in m.concepts}
    elif cfg.kb_concepts != "all":
        raise ConfigError(Errors.E022.format(value=cfg.kb_concepts, field="kb_concepts", known="all, mentioned"))
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
    dist.check_same("training data", {"pairs": _digest(base_pairs), "mentions": _digest(_canonical(mentions))})

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
    ckpt = _resume(run, enc, dist) if resume else None
    start_epoch, step, skip = 0, 0, 0
    if ckpt is not None:
        load_checkpoint_safely(lambda: (opt.load_state_dict(ckpt.tensors("optimizer")),
                                        sched.load_state_dict(ckpt.tensors("scheduler"))), ckpt.path)
        start_epoch, step, skip = ckpt.number, int(ckpt.state["step"]), int(ckpt.state.get("batch", 0))
        ckpt.restore_rng(dist.rank, dist.world_size)  # dropout masks continue as in an uninterrupted run
        logger.info("resuming %s epoch %d (step %d)", f"inside (batch {skip} of)" if skip else "after",
                    start_epoch + (1 if skip else 0), step)
    model = _wrap_encoder(enc, dist)
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
        done = skip if epoch == start_epoch else 0  # batches of this epoch trained before a resume
        n_batches = min(len(range(0, len(pairs), cfg.batch_size)), done + total - step)
        bar = tqdm(range(done * cfg.batch_size, len(pairs), cfg.batch_size), initial=done, total=n_batches,
                   desc=f"sapbert epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and dist.is_main),
                   unit="step")
        losses: list[float] = []
        for s in bar:
            if step >= total:
                break
            batch = pairs[s : s + cfg.batch_size]
            labels = torch.tensor([c for _, _, c in batch] * 2)
            emb = _pair_embeddings(enc, model, batch, dist)
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
            if step % cfg.log_every == 0 and dist.is_main:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])),
                        lr=sched.get_last_lr()[0])
            done += 1
            if _inside_epoch(checkpoint_every, done, n_batches):
                _save_epoch(run, epoch, enc, {"step": step, "batch": done},
                            {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, dist)
        bar.close()
        if dist.is_main:
            run.log(epoch=epoch + 1, step=step, epoch_loss=float(np.mean(losses)) if losses else None,
                    seconds=round(time.time() - t0, 1))
        _save_epoch(run, epoch + 1, enc, {"step": step},
                    {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, dist)
    enc.model.eval()
    return _finish(run, enc, {
        "method": "sapbert", "pooling": enc.pooling, "max_length": enc.max_length, "sparse_weight": 0.0,
        "base_encoder": enc.source, "steps": step, "kb": kb.name, "mentions": rep.kept,
    }, prior=concept_prior(documents, kb) if documents else None, dist=dist)


class _LastHidden(torch.nn.Module):
    """An encoder's transformer returning only its last hidden states (what the pooling reads)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        return BaseModelOutput(last_hidden_state=self.model(**inputs).last_hidden_state)


def _wrap_encoder(enc: TextEncoder, dist: DistContext) -> torch.nn.Module:
    """The encoder's model as it trains: itself with one process; with several, in
    DistributedDataParallel, showing it only the last hidden states, so that the pooler of a BERT
    checkpoint (trainable, unused by mean/CLS pooling) is seen as unused and left out."""
    if not dist.enabled:
        return enc.model
    return dist.wrap(_LastHidden(enc.model), find_unused=True)


def _canonical(mentions: Sequence[TrainingMention]) -> list[tuple[str, list[int]]]:
    """Mentions as plain data whose text does not depend on set order (which differs between processes)."""
    return [(m.key, sorted(m.concepts)) for m in mentions]


def _digest(items: Sequence[Any]) -> str:
    """A short hash of training items (what the ranks compare: they must build the same data)."""
    import hashlib

    return f"{len(items)}:" + hashlib.sha1(repr(list(items)).encode()).hexdigest()[:16]


def _embed_share(enc: TextEncoder, model: torch.nn.Module, texts: Sequence[str],
                 placeholder: str) -> torch.Tensor:
    """This rank's embeddings of ``texts``; with no text (a short last batch split over more ranks
    than it has items) a ``(0, dim)`` tensor that still runs the model once, so that the gradient
    exchange of DistributedDataParallel sees every parameter on every rank."""
    if texts:
        return enc.embed(texts, model=model)
    return enc.embed([placeholder], model=model)[:0]


def _pair_embeddings(enc: TextEncoder, model: torch.nn.Module, batch: Sequence[tuple[str, str, int]],
                     dist: DistContext) -> torch.Tensor:
    """Embeddings of a batch of pairs in the one-process order (every first name, then every second):
    each rank embeds its contiguous share of the pairs, and the shares are all-gathered with their
    gradient (:meth:`DistContext.gather_padded`) so that in-batch losses see the global batch."""
    if not dist.enabled:
        return enc.embed([a for a, _, _ in batch] + [b for _, b, _ in batch], model=model)
    mine = dist.shard(batch)
    local = _embed_share(enc, model, [a for a, _, _ in mine] + [b for _, b, _ in mine], batch[0][0])
    parts = dist.gather_padded(local)
    halves = [len(p) // 2 for p in parts]
    return torch.cat([p[:h] for p, h in zip(parts, halves)] + [p[h:] for p, h in zip(parts, halves)])


# ====================================================================== BioSyn
def _biosyn_candidates(
    mentions: Sequence[TrainingMention], enc: TextEncoder, table: NameTable, sparse: SparseLinker,
    n_sparse: int, topk: int, progress: bool, name_vectors: np.ndarray | None = None,
    dist: DistContext | None = None,
    vector_store: str | Path | None = None,
) -> np.ndarray:
    """``(len(mentions), topk)`` candidate name rows: the ``n_sparse`` best TF-IDF names, then the
    best dense names not already chosen (BioSyn's candidate mix). With ``vector_store`` (a folder of
    name-vector stores; one process) the KB vectors are read from / added to this encoder's store;
    with several processes each embeds its share of the KB names and every rank gets them all."""
    dist = dist or DistContext()
    keys = [m.key for m in mentions]
    _, s_rows = sparse.search_names(keys, topk)
    d_rows = np.zeros((len(keys), 0), dtype=np.int64)
    if topk > n_sparse:
        if name_vectors is None and vector_store is not None and dist.world_size == 1:
            from genbel.encoders.vector_store import NameVectorStore, embed_with_store

            store = NameVectorStore.for_encoder(vector_store, enc)
            try:
                name_vectors, stats = embed_with_store(enc, list(table.keys), store, progress=progress)
            finally:
                store.close()
            logger.info("KB names for the candidates: %s", stats)
        elif name_vectors is None:
            mine = enc.encode(list(dist.shard(table.keys)), progress=progress and dist.is_main,
                              desc="embedding KB names")
            name_vectors = torch.cat(dist.gather_padded(torch.from_numpy(mine))).numpy()
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
    vector_store: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every: int | None = None,
) -> Path:
    """BioSyn training on ``train_documents`` (mention → gold concept) against ``kb``; returns ``out_dir``.

    The KB is the dictionary; augment it with training mentions first (``augment_kb``) to follow the
    BioSyn protocol. ``sparse`` is the TF-IDF retriever for ``kb`` (built when ``None``).
    ``initial_name_vectors`` are embeddings of the KB names by the *initial* encoder (e.g. from a
    :class:`~genbel.linkers.dense.DenseLinker` index, see :func:`~genbel.linkers.dense_index.index_vectors`); the first epoch then
    retrieves its candidates with them instead of embedding the KB again. ``vector_store`` (a folder of
    name-vector stores, e.g. :func:`~genbel.encoders.vector_store.vector_store_dir`) keeps the KB vectors
    each epoch embeds under the encoder's fingerprint: a resumed run, or the linker of an intermediate
    encoder, reads them instead of embedding again. ``checkpoint_every`` N steps a checkpoint is also
    written inside an epoch (with the epoch's candidates), so that ``resume`` continues an interrupted
    epoch where it stopped.
    """
    cfg = config or BiosynConfig()
    _check_positive("batch_size", cfg.batch_size)
    dist = distributed.setup("cpu")
    dist.per_rank(cfg.batch_size)
    _check_positive("temperature", cfg.temperature)
    if cfg.topk < 2:
        raise ConfigError(Errors.E023.format(value=cfg.topk, field="topk", constraint=">= 2"))
    if not 0.0 <= cfg.dense_ratio <= 1.0:
        raise ConfigError(Errors.E023.format(value=cfg.dense_ratio, field="dense_ratio", constraint="in [0, 1]"))
    enc = _encoder(encoder, cfg.max_length, cfg.pooling)
    sparse = sparse if sparse is not None else SparseLinker(kb)
    table = sparse.table
    mentions, rep = training_mentions(train_documents, kb, table, unique=cfg.unique_mentions)
    if not mentions:
        raise InputError(
            Errors.E017.format(reason=f"no training mention has a gold concept in the KB ({asdict(rep)})")
        )
    run = _start_run(out_dir, {"method": "biosyn", "kb": kb.fingerprint(), "base_encoder": enc.source,
                               "mentions": len(mentions), **asdict(cfg)}, resume, dist)
    dist.check_same("training data", {"mentions": _digest(_canonical(mentions))})
    logger.info("BioSyn training: %d mentions (%d duplicates, %d NIL, %d not in KB skipped)",
                rep.kept, rep.duplicates, rep.nil, rep.not_in_kb)
    seed_all(cfg.seed)
    topk = min(cfg.topk, len(table))
    n_sparse = topk - int(round(topk * cfg.dense_ratio))
    freeze_layers(enc.model, cfg.freeze_layers)
    lam = torch.nn.Parameter(torch.tensor(float(cfg.initial_sparse_weight)))
    opt = torch.optim.AdamW([
        {"params": [p for p in enc.model.parameters() if p.requires_grad], "lr": cfg.lr,
         "weight_decay": cfg.weight_decay},
        {"params": [lam], "lr": cfg.sparse_lr, "weight_decay": 0.0},
    ])
    ckpt = _resume(run, enc, dist) if resume else None
    start_epoch, step, skip = 0, 0, 0
    cand: np.ndarray | None = None
    if ckpt is not None:
        load_checkpoint_safely(lambda: opt.load_state_dict(ckpt.tensors("optimizer")), ckpt.path)
        with torch.no_grad():
            lam.fill_(float(ckpt.state["sparse_weight"]))
        start_epoch, step, skip = ckpt.number, int(ckpt.state["step"]), int(ckpt.state.get("batch", 0))
        if skip:  # inside an epoch: its candidates were mined by the encoder of the epoch's start
            cand = load_checkpoint_safely(lambda: ckpt.tensors("candidates").numpy(), ckpt.path)
        ckpt.restore_rng(dist.rank, dist.world_size)
        logger.info("resuming %s epoch %d (step %d, λ=%.3f)", f"inside (batch {skip} of)" if skip else "after",
                    start_epoch + (1 if skip else 0), step, lam.item())
    model = _wrap_encoder(enc, dist)
    row_concept = torch.from_numpy(table.row_concept)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        done = skip if epoch == start_epoch else 0  # batches of this epoch trained before a resume
        if done and cand is not None:
            pass  # the interrupted epoch's candidates, from its checkpoint
        elif cand is None or cfg.refresh_candidates:
            first = epoch == 0 and initial_name_vectors is not None
            if first and len(initial_name_vectors) != len(table):  # type: ignore[arg-type]
                n_vectors = len(initial_name_vectors)  # type: ignore[arg-type]
                raise ConfigError(Errors.E310.format(n_vectors=n_vectors, n_names=len(table)))
            cand = _biosyn_candidates(mentions, enc, table, sparse, n_sparse, topk, progress,
                                      name_vectors=initial_name_vectors if first else None, dist=dist,
                                      vector_store=vector_store)
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
        n_batches = len(range(0, len(order), cfg.batch_size))
        bar = tqdm(range(done * cfg.batch_size, len(order), cfg.batch_size), initial=done, total=n_batches,
                   desc=f"biosyn epoch {epoch + 1}/{cfg.epochs}", disable=not (progress and dist.is_main),
                   unit="step")
        for s in bar:
            loss, value = _biosyn_loss(enc, model, order[s : s + cfg.batch_size], keys, table, cand_t,
                                       sparse_scores, dup, positive, lam, cfg.temperature, dist)
            opt.zero_grad()
            loss.backward()
            dist.average_grad([lam])  # λ lives outside the wrapped encoder
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            step += 1
            losses.append(value)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lam=f"{lam.item():.3f}")
            if step % cfg.log_every == 0 and dist.is_main:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])),
                        sparse_weight=lam.item())
            done += 1
            if _inside_epoch(checkpoint_every, done, n_batches):
                _save_epoch(run, epoch, enc, {"step": step, "batch": done, "sparse_weight": lam.item()},
                            {"optimizer": opt.state_dict(), "candidates": torch.from_numpy(cand)}, dist)
        bar.close()
        enc.model.eval()
        if dist.is_main:
            run.log(epoch=epoch + 1, step=step, epoch_loss=float(np.mean(losses)) if losses else None,
                    sparse_weight=lam.item(),
                    candidate_recall=recall, seconds=round(time.time() - t0, 1))
        _save_epoch(run, epoch + 1, enc, {"step": step, "sparse_weight": lam.item()},
                    {"optimizer": opt.state_dict()}, dist)
    return _finish(run, enc, {
        "method": "biosyn", "pooling": enc.pooling, "max_length": enc.max_length, "sparse_weight": lam.item(),
        "base_encoder": enc.source, "steps": step, "kb": kb.name, "mentions": rep.kept,
    }, prior=concept_prior(train_documents, kb), dist=dist)


def _biosyn_loss(
    enc: TextEncoder, model: torch.nn.Module, batch: Sequence[int], keys: Sequence[str], table: NameTable,
    cand_t: torch.Tensor, sparse_scores: torch.Tensor, dup: torch.Tensor, positive: torch.Tensor,
    lam: torch.Tensor, temperature: float, dist: DistContext,
) -> tuple[torch.Tensor, float]:
    """``(loss to backpropagate, the batch's mean loss)`` for a batch of mention positions.

    One process: the mean over the batch. Several: each rank embeds its share of the mentions and
    their candidates in one forward pass, sums its mentions' losses and divides by the number of
    mentions with a positive in the whole batch (times the number of processes, which the
    gradient average divides back out)."""
    idx = torch.tensor(list(dist.shard(batch) if dist.enabled else batch), dtype=torch.long)
    rows = cand_t[idx]
    uniq, inv = torch.unique(rows, return_inverse=True)
    mention_texts = [keys[i] for i in idx.tolist()]
    name_texts = [table.keys[r] for r in uniq.tolist()]
    if not dist.enabled:
        q = enc.embed(mention_texts, model=model)
        c = enc.embed(name_texts, model=model)
    else:  # one forward pass per step: DistributedDataParallel exchanges gradients once per pass
        both = _embed_share(enc, model, mention_texts + name_texts, keys[batch[0]])
        q, c = both[: len(mention_texts)], both[len(mention_texts):]
    dense = torch.einsum("bd,bkd->bk", q, c[inv]) if len(idx) else q.sum() * 0.0
    logits = (dense + lam * sparse_scores[idx]) / temperature
    logits = logits.masked_fill(dup[idx], float("-inf"))
    if not dist.enabled:
        loss = marginal_nll(logits, positive[idx])
        return loss, loss.item()
    n_global = int(positive[torch.tensor(list(batch))].any(1).sum())
    total = marginal_nll(logits, positive[idx], reduction="sum") if len(idx) else logits.sum() * 0.0
    share = total / max(n_global, 1)
    if not len(idx):
        share = share + both.sum() * 0.0  # keeps the encoder in this rank's graph
    return share * dist.world_size, dist.all_sum(float(share.detach()))


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
        raise FormatError(Errors.E300.format(path=run, kind="trained retriever", missing=RETRIEVER_CONFIG))
    texts = list(texts)
    if delta_from is not None and texts:
        raise ConfigError(Errors.E308)
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
