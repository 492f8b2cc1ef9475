"""Train the BIO token tagger (:class:`genbel.ner.tagger.TokenTagger`) on annotated documents.

Examples are the sentence-sized chunks of each document (:func:`genbel.ner.tagger.chunk_spans`),
word pieces labelled ``B-<group>``/``I-<group>``/``O`` from the gold offsets (a word piece belongs to
a mention when it overlaps it; the first such piece is ``B-``). Mentions are typed by semantic
group (``SpecificDisease`` → ``Disorders``); overlapping gold mentions keep the longest.

Only the top ``train_layers`` transformer layers and the head are trained (the rest stays the
base's), so that the saved tagger is a small int8 delta. The frozen bottom (embeddings and lower
layers, without dropout) is run once over all chunks and its output kept (float16), so an epoch
runs only the top layers: about 3× faster on CPU than running the whole encoder each step. AdamW with a linear schedule and warm-up;
one checkpoint per epoch on the run framework (:mod:`genbel.training.run`: ``--resume`` continues
after the last finished epoch, same settings required). With dev documents, every epoch is scored
(exact-span F1, both decodings) and the best epoch is the one saved as ``out_dir/tagger``.

Run directory::

    out_dir/config.json, log.jsonl, checkpoints/epoch-N/   (the run framework)
    out_dir/best/                                          the best epoch so far (a tagger directory)
    out_dir/tagger/                                        the result: the best epoch's tagger
"""

from __future__ import annotations

import logging
import math
import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genbel.errors import ConfigError, Errors, InputError
from genbel.ner.dictionary import entity_group
from genbel.ner.tagger import DECODINGS, TokenTagger, chunk_spans

logger = logging.getLogger(__name__)

__all__ = ["NERConfig", "labels_for", "token_examples", "train_ner"]


@dataclass
class NERConfig:
    """Settings of :func:`train_ner` (defaults: ~25 min on 2 CPU cores for NCBI-disease train)."""

    base: str = "minilm"
    epochs: int = 4
    batch_size: int = 16
    lr: float = 2e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    train_layers: int = 2
    max_length: int = 256
    max_chars: int = 600
    decoding: str = "viterbi"
    seed: int = 0
    log_every: int = 50
    num_threads: int | None = 1

    def check(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "max_chars", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(Errors.E504.format(field=name, reason="must be at least 1"))
        if self.train_layers < 0:
            raise ConfigError(Errors.E504.format(field="train_layers", reason="must be 0 or more"))
        if not (self.lr > 0 and self.head_lr > 0 and 0 <= self.warmup < 1):
            raise ConfigError(Errors.E504.format(field="lr/head_lr/warmup", reason="lr > 0, 0 <= warmup < 1"))
        if self.decoding not in DECODINGS:
            raise ConfigError(Errors.E504.format(field="decoding", reason=f"one of {DECODINGS}"))


def labels_for(docs: Sequence[Any]) -> list[str]:
    """``O`` then ``B-``/``I-`` of every group occurring in ``docs``, sorted."""
    groups = sorted({entity_group(e.type) for d in docs for e in d.entities})
    return ["O"] + [f"{p}-{g}" for g in groups for p in ("B", "I")]


def _gold(doc: Any) -> list[tuple[int, int, str]]:
    spans = sorted({(e.start, e.end, entity_group(e.type)) for e in doc.entities},
                   key=lambda x: (-(x[1] - x[0]), x[0]))
    kept: list[tuple[int, int, str]] = []
    for s in spans:
        if not any(s[0] < k[1] and k[0] < s[1] for k in kept):
            kept.append(s)
    return sorted(kept)


def token_examples(docs: Sequence[Any], tokenizer: Any, labels: Sequence[str], *, max_length: int = 256,
                   max_chars: int = 600) -> list[tuple[list[int], list[int]]]:
    """``(input ids, label ids)`` per chunk (special tokens labelled ``-100``: not scored)."""
    index = {lab: i for i, lab in enumerate(labels)}
    texts: list[str] = []
    golds: list[list[tuple[int, int, str]]] = []
    for d in docs:
        text = d.text
        gold = _gold(d)
        for cs, ce in chunk_spans(text, max_chars):
            texts.append(text[cs:ce])
            golds.append([(max(s, cs) - cs, min(e, ce) - cs, g) for s, e, g in gold if s < ce and cs < e])
    out: list[tuple[list[int], list[int]]] = []
    for b in range(0, len(texts), 512):
        enc = tokenizer(texts[b:b + 512], return_offsets_mapping=True, truncation=True, max_length=max_length)
        for ids, offs, gold in zip(enc["input_ids"], enc["offset_mapping"], golds[b:b + 512]):
            lab = []
            started: set[int] = set()
            for s, e in offs:
                if e <= s:
                    lab.append(-100)
                    continue
                tag = "O"
                for gi, (gs, ge, g) in enumerate(gold):
                    if s < ge and gs < e:
                        tag = f"{'I' if gi in started else 'B'}-{g}"
                        started.add(gi)
                        break
                lab.append(index.get(tag, 0))
            out.append((list(ids), lab))
    return out


def _batches(examples: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar lengths (sorted within shuffled pools of 50 batches), shuffled."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=lambda i: len(examples[i][0]))
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(examples: list[tuple[list[int], list[int]]], idx: list[int], pad_id: int) -> dict[str, Any]:
    import torch

    n = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    lab = torch.full((len(idx), n), -100, dtype=torch.long)
    att = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        x, y = examples[i]
        ids[r, :len(x)] = torch.tensor(x)
        lab[r, :len(y)] = torch.tensor(y)
        att[r, :len(x)] = 1
    return {"input_ids": ids, "attention_mask": att, "labels": lab}


def _trainable(model: Any, train_layers: int) -> list[str]:
    """Freeze all but the top ``train_layers`` encoder layers and the head; the trained names."""
    n_layers = int(model.config.num_hidden_layers)
    first = n_layers - train_layers
    names = []
    for name, p in model.named_parameters():
        train = name.startswith("classifier.")
        if ".layer." in name:
            layer = int(name.split(".layer.")[1].split(".")[0])
            train = train or layer >= first
        p.requires_grad_(train)
        if train:
            names.append(name)
    return names


def _bottom_states(model: Any, examples: list[tuple[list[int], list[int]]], first: int, pad: int,
                   batch_size: int = 64) -> list[Any]:
    """The frozen bottom's output (input of layer ``first``) for every example, float16, unpadded."""
    import torch
    from tqdm.auto import tqdm
    from transformers.masking_utils import create_bidirectional_mask

    model.eval()
    out: list[Any] = [None] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    with torch.inference_mode():
        for b in tqdm(range(0, len(order), batch_size), desc="ner: frozen layers", leave=False):
            idx = order[b:b + batch_size]
            batch = _collate(examples, idx, pad)
            h = model.bert.embeddings(input_ids=batch["input_ids"])
            mask = create_bidirectional_mask(config=model.config, inputs_embeds=h,
                                             attention_mask=batch["attention_mask"])
            for layer in model.bert.encoder.layer[:first]:
                h = layer(h, mask)
                h = h[0] if isinstance(h, tuple) else h
            for r, i in enumerate(idx):
                out[i] = h[r, :len(examples[i][0])].to(torch.float16).clone()
    return out


def _stack(states: list[Any]) -> Any:
    import torch

    n = max(len(x) for x in states)
    out = torch.zeros((len(states), n, states[0].shape[-1]), dtype=torch.float32)
    for r, x in enumerate(states):
        out[r, :len(x)] = x.float()
    return out


def _top_loss(model: Any, hidden: Any, attention_mask: Any, labels: Any, first: int) -> Any:
    """Cross-entropy of the top layers + head over cached bottom states."""
    import torch
    from transformers.masking_utils import create_bidirectional_mask

    mask = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask)
    h = hidden
    for layer in model.bert.encoder.layer[first:]:
        h = layer(h, mask)
        h = h[0] if isinstance(h, tuple) else h
    logits = model.classifier(model.dropout(h))
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)


def dev_f1(tagger: TokenTagger, dev_docs: Sequence[Any]) -> dict[str, float]:
    """Exact-span F1 on ``dev_docs`` with each decoding (no bootstrap)."""
    from genbel.eval.spans import ner_scores

    out: dict[str, float] = {}
    keep = tagger.decoding
    for mode in DECODINGS:
        tagger.decoding = mode
        preds = tagger.detect_batch([d.text for d in dev_docs])
        out[mode] = ner_scores(dev_docs, preds, n_bootstrap=0).scores["exact"].f1
    tagger.decoding = keep
    return out


def train_ner(
    train_docs: Sequence[Any], out_dir: str | Path, config: NERConfig | None = None, *,
    dev_docs: Sequence[Any] | None = None, resume: bool = False,
) -> Path:
    """Train a tagger on ``train_docs``; returns ``out_dir/tagger`` (see the module doc)."""
    import torch
    from tqdm.auto import tqdm

    from genbel.training.run import RunDirectory, load_checkpoint_safely, seed_all

    cfg = config or NERConfig()
    cfg.check()
    if not train_docs or not any(d.entities for d in train_docs):
        raise InputError(Errors.E505.format(where="training documents", reason="no annotated mention"))
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    labels = labels_for(train_docs)
    settings = {**asdict(cfg), "labels": labels, "n_train_docs": len(train_docs),
                "n_dev_docs": len(dev_docs or [])}
    out = Path(out_dir)
    run = RunDirectory(out, unit="epoch")
    run.start(settings, resume=resume, free=("epochs", "log_every", "num_threads"), restart=True,
              resume_needs_checkpoint=False)
    seed_all(cfg.seed)
    tagger = TokenTagger.from_base(cfg.base, labels, max_length=cfg.max_length, max_chars=cfg.max_chars,
                                   decoding=cfg.decoding)
    model = tagger.model
    trained = _trainable(model, cfg.train_layers)
    examples = token_examples(train_docs, tagger.tokenizer, labels, max_length=cfg.max_length,
                              max_chars=cfg.max_chars)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    params = dict(model.named_parameters())
    head = [params[n] for n in trained if n.startswith("classifier.")]
    body = [params[n] for n in trained if not n.startswith("classifier.")]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr}, {"params": head, "lr": cfg.head_lr}],
                            weight_decay=cfg.weight_decay)
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    start_epoch, best = 0, {"f1": -1.0, "epoch": 0, "decoding": cfg.decoding}
    ckpt = run.last_checkpoint() if resume else None
    if ckpt is not None:
        def restore() -> None:
            model.load_state_dict(ckpt.tensors("model"), strict=False)
            opt.load_state_dict(ckpt.tensors("optimizer"))
            sched.load_state_dict(ckpt.tensors("scheduler"))
        load_checkpoint_safely(restore, ckpt.path)
        ckpt.restore_rng()
        start_epoch, best = int(ckpt.state["epoch"]), dict(ckpt.state["best"])
        logger.info("resuming after epoch %d (best dev F1 %.2f at epoch %d)", start_epoch, best["f1"], best["epoch"])
    logger.info("NER training: %d chunks, %d labels, %d trainable tensors, %d steps", len(examples),
                len(labels), len(trained), total)
    rng = random.Random(cfg.seed)
    for _ in range(start_epoch):  # the batch order of finished epochs, so a resumed run is the same run
        _batches(examples, cfg.batch_size, rng)
    pad = tagger.tokenizer.pad_token_id or 0
    first = int(model.config.num_hidden_layers) - cfg.train_layers
    cached = _bottom_states(model, examples, first, pad)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        losses: list[float] = []
        bar = tqdm(_batches(examples, cfg.batch_size, rng), desc=f"ner epoch {epoch + 1}/{cfg.epochs}",
                   leave=False)
        for step, idx in enumerate(bar, start=1):
            batch = _collate(examples, idx, pad)
            loss = _top_loss(model, _stack([cached[i] for i in idx]), batch["attention_mask"], batch["labels"], first)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if step % cfg.log_every == 0:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])))
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_every:]):.4f}")
        model.eval()
        row: dict[str, Any] = {"epoch": epoch + 1, "epoch_loss": float(np.mean(losses)) if losses else None}
        if dev_docs:
            f1s = dev_f1(tagger, dev_docs)
            row["dev_f1"] = f1s
            mode = max(f1s, key=lambda m: f1s[m])
            if f1s[mode] > best["f1"]:
                best = {"f1": f1s[mode], "epoch": epoch + 1, "decoding": mode}
                tagger.decoding = mode
                _save_tagger(tagger, cfg, out / "best", best, len(train_docs))
                tagger.decoding = cfg.decoding
        run.log(**row)
        logger.info("epoch %d: %s", epoch + 1, row)
        state = {n: t.detach().clone() for n, t in model.state_dict().items() if n in set(trained)}
        run.write_checkpoint(epoch + 1, {"epoch": epoch + 1, "best": best},
                             {"model": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
        run.prune(keep=1)
    final = out / "tagger"
    if dev_docs and (out / "best").is_dir():
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(out / "best", final)
    else:
        _save_tagger(tagger, cfg, final, best, len(train_docs))
    return final


def _save_tagger(tagger: TokenTagger, cfg: NERConfig, path: Path, best: dict[str, Any], n_docs: int) -> None:
    tagger.save(path, base=cfg.base, extra={"training": {**asdict(cfg), "n_train_docs": n_docs, "best": best}})
