"""Train the BIO token tagger (:class:`genbel.ner.tagger.TokenTagger`) on annotated documents.

Examples are the pieces each document is read in (sentences, or with ``windows`` consecutive
sentences packed to ``max_chars`` plus ``context_chars`` of overlap: :func:`genbel.ner.tagger.window_spans`),
labelled ``B-<group>``/``I-<group>``/``O`` from the gold offsets: every word piece that overlaps a
mention (the first is ``B-``), or with ``word_level`` only the first piece of every word (the word's
label; the other pieces are not scored). Mentions are typed by semantic group (``SpecificDisease`` →
``Disorders``); overlapping gold mentions keep the longest.

Two ways to train, both giving a small delta over the base:

* ``lora_rank > 0`` (the shipped taggers): LoRA adapters (:mod:`peft`) on every projection of every
  layer (query, key, value, attention output, feed-forward in and out) + the head, the whole encoder
  run each step; saved as the low-rank factors (float16, ~1.3 MB at rank 16 for MiniLM);
* ``lora_rank == 0``: only the top ``train_layers`` layers and the head are trained; the frozen bottom
  (embeddings and lower layers, without dropout) is run once over all chunks and its output kept
  (float16), so an epoch runs only the top layers; saved as int8 differences.

With ``crf``, a linear-chain CRF (:mod:`genbel.ner.crf`) over the word labels is trained jointly (its
negative log-likelihood replaces the cross-entropy) and its transition scores are used in decoding.
AdamW with a linear schedule and warm-up; one checkpoint per epoch on the run framework
(:mod:`genbel.training.run`: ``--resume`` continues after the last finished epoch, same settings
required). With dev documents, every epoch is scored (exact-span F1, both decodings) and the best
epoch is the one saved as ``out_dir/tagger``.

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

from genbel.deps import require
from genbel.errors import ConfigError, Errors, InputError
from genbel.ner.dictionary import entity_group
from genbel.ner.tagger import DECODINGS, TokenTagger, chunk_spans, window_spans

logger = logging.getLogger(__name__)

__all__ = ["NERConfig", "hold_out", "labels_for", "lora_factors", "token_examples", "train_ner"]


@dataclass
class NERConfig:
    """Settings of :func:`train_ner` (defaults: the shipped tagger's recipe, all 6 MiniLM layers, ~2.3 min
    an epoch for NCBI-disease train on 2 idle CPU cores with 2 threads)."""

    base: str = "minilm"
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    train_layers: int = 6
    max_length: int = 256
    max_chars: int = 600
    decoding: str = "viterbi"
    seed: int = 0
    log_every: int = 50
    num_threads: int | None = 1
    lora_rank: int = 0
    lora_alpha: float = 0.0
    lora_dropout: float = 0.1
    windows: bool = False
    context_chars: int = 0
    word_level: bool = False
    crf: bool = False

    def check(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "max_chars", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(Errors.E504.format(field=name, reason="must be at least 1"))
        if self.lora_rank < 0 or self.context_chars < 0 or not 0 <= self.lora_dropout < 1:
            raise ConfigError(Errors.E504.format(field="lora_rank/context_chars/lora_dropout",
                                                 reason="lora_rank >= 0, context_chars >= 0, 0 <= lora_dropout < 1"))
        if self.crf and not self.word_level:
            raise ConfigError(Errors.E504.format(field="crf", reason="a CRF layer needs word_level labels"))
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


def hold_out(docs: Sequence[Any], fraction: float, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """``(kept, held out)``: a seeded random ``fraction`` of ``docs`` (at least one) held out as dev data."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n = max(1, round(fraction * len(docs))) if fraction > 0 else 0
    held = set(order[:n])
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def _gold(doc: Any) -> list[tuple[int, int, str]]:
    spans = sorted({(e.start, e.end, entity_group(e.type)) for e in doc.entities},
                   key=lambda x: (-(x[1] - x[0]), x[0]))
    kept: list[tuple[int, int, str]] = []
    for s in spans:
        if not any(s[0] < k[1] and k[0] < s[1] for k in kept):
            kept.append(s)
    return sorted(kept)


def token_examples(docs: Sequence[Any], tokenizer: Any, labels: Sequence[str], *, max_length: int = 256,
                   max_chars: int = 600, windows: bool = False, context_chars: int = 0,
                   word_level: bool = False) -> list[tuple[list[int], list[int]]]:
    """``(input ids, label ids)`` per piece (special tokens, and with ``word_level`` every piece but
    the first of each word, labelled ``-100``: not scored)."""
    index = {lab: i for i, lab in enumerate(labels)}
    texts: list[str] = []
    golds: list[list[tuple[int, int, str]]] = []
    for d in docs:
        text = d.text
        gold = _gold(d)
        pieces = (window_spans(text, max_chars, context_chars) if windows
                  else [(s, e, s, e) for s, e in chunk_spans(text, max_chars)])
        for cs, ce, _, _ in pieces:
            texts.append(text[cs:ce])
            golds.append([(max(s, cs) - cs, min(e, ce) - cs, g) for s, e, g in gold if s < ce and cs < e])
    out: list[tuple[list[int], list[int]]] = []
    for b in range(0, len(texts), 512):
        enc = tokenizer(texts[b:b + 512], return_offsets_mapping=True, truncation=True, max_length=max_length)
        for row, (ids, offs, gold) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], golds[b:b + 512])):
            words = enc.word_ids(row)
            word_end: dict[int, int] = {}
            for (_, oe), w in zip(offs, words):
                if w is not None:
                    word_end[w] = max(word_end.get(w, 0), oe)
            lab = []
            started: set[int] = set()
            prev_word = None
            for pos, (s, e) in enumerate(offs):
                if e <= s or words[pos] is None or (word_level and words[pos] == prev_word):
                    lab.append(-100)
                    continue
                prev_word = words[pos]
                if word_level:  # the word's span: all its pieces
                    e = word_end[words[pos]]
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


LORA_TARGETS = ["query", "key", "value", "dense"]  # BERT: attention q/k/v/output, feed-forward in/out


def _lora(model: Any, cfg: NERConfig) -> Any:
    """``model`` with LoRA adapters on every projection of the top ``train_layers`` layers (peft; the
    adapters are injected into ``model`` itself); the head stays trainable."""
    require("peft", extra="models", feature="LoRA training of the NER tagger")
    from peft import LoraConfig, get_peft_model

    n_layers = int(model.config.num_hidden_layers)
    top = list(range(max(0, n_layers - cfg.train_layers), n_layers))
    lcfg = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_rank,
                      lora_dropout=cfg.lora_dropout, target_modules=LORA_TARGETS, bias="none",
                      **({"layers_to_transform": top, "layers_pattern": "layer"} if len(top) < n_layers else {}))
    peft_model = get_peft_model(model, lcfg)
    for name, p in peft_model.named_parameters():
        if ".classifier." in name:
            p.requires_grad_(True)
    return peft_model


def lora_factors(peft_model: Any) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """``({base tensor name: (A, B)}, head tensors)`` of a LoRA-wrapped tagger: each adapted matrix
    changes by ``A @ B`` (``A = lora_B * scaling``, ``B = lora_A``), in the base model's names."""
    factors: dict[str, tuple[Any, Any]] = {}
    head: dict[str, Any] = {}
    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a = module.lora_B["default"].weight.detach() * float(module.scaling["default"])
            factors[name.removeprefix(prefix) + ".weight"] = (a, module.lora_A["default"].weight.detach())
    for name, t in peft_model.state_dict().items():
        plain = name.removeprefix(prefix)
        if plain.startswith("classifier."):
            head[plain] = t.detach()
    return factors, head


def _full_loss(model: Any, batch: dict[str, Any], crf: Any) -> Any:
    """Cross-entropy of the whole model over the scored positions, or the CRF's negative
    log-likelihood over each row's scored positions (the word starts) in order."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    if crf is None:
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1),
                                                 ignore_index=-100)
    valid = labels != -100
    keep = valid.any(1)
    logits, labels, valid = logits[keep], labels[keep], valid[keep]
    n = valid.sum(1)
    width = int(n.max())
    idx = torch.zeros((len(n), width), dtype=torch.long)
    mask = torch.zeros((len(n), width), dtype=torch.bool)
    for r in range(len(n)):
        pos = valid[r].nonzero().squeeze(1)
        idx[r, :len(pos)] = pos
        mask[r, :len(pos)] = True
    em = logits.gather(1, idx[..., None].expand(-1, -1, logits.shape[-1]))
    return crf(em, labels.gather(1, idx).clamp(min=0), mask)


def _crf_scores(crf: Any) -> dict[str, np.ndarray] | None:
    if crf is None:
        return None
    return {"start": crf.start.detach().numpy().copy(), "trans": crf.trans.detach().numpy().copy(),
            "end": crf.end.detach().numpy().copy()}


def dev_f1(tagger: TokenTagger, dev_docs: Sequence[Any]) -> dict[str, float]:
    """Exact-span F1 on ``dev_docs`` with each decoding (no bootstrap)."""
    from genbel.eval.spans import ner_scores

    out: dict[str, float] = {}
    keep = tagger.decoding
    texts = [d.text for d in dev_docs]
    scored = tagger.scores(texts)
    for mode in DECODINGS:
        tagger.decoding = mode
        preds = tagger.spans(texts, scored)
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

    from genbel.ner.crf import crf_module
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
                                   decoding=cfg.decoding, windows=cfg.windows, context_chars=cfg.context_chars,
                                   word_level=cfg.word_level)
    lora = cfg.lora_rank > 0
    crf = crf_module(labels) if cfg.crf else None
    inner = tagger.model  # the transformers model (LoRA adapters are injected into it)
    n_layers = int(inner.config.num_hidden_layers)
    first = max(0, n_layers - cfg.train_layers)
    if lora:
        tagger.model = _lora(tagger.model, cfg)
        trained = [n for n, p in tagger.model.named_parameters() if p.requires_grad]
    else:
        trained = _trainable(tagger.model, cfg.train_layers)
    model = tagger.model
    examples = token_examples(train_docs, tagger.tokenizer, labels, max_length=cfg.max_length,
                              max_chars=cfg.max_chars, windows=cfg.windows, context_chars=cfg.context_chars,
                              word_level=cfg.word_level)
    steps_per_epoch = math.ceil(len(examples) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    params = dict(model.named_parameters())
    head = [params[n] for n in trained if "classifier." in n] + (list(crf.parameters()) if crf is not None else [])
    body = [params[n] for n in trained if "classifier." not in n]
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
            if crf is not None:
                crf.load_state_dict(ckpt.tensors("crf"))
            opt.load_state_dict(ckpt.tensors("optimizer"))
            sched.load_state_dict(ckpt.tensors("scheduler"))
        load_checkpoint_safely(restore, ckpt.path)
        ckpt.restore_rng()
        start_epoch, best = int(ckpt.state["epoch"]), dict(ckpt.state["best"])
        logger.info("resuming after epoch %d (best dev F1 %.2f at epoch %d)", start_epoch, best["f1"], best["epoch"])
    logger.info("NER training: %d pieces, %d labels, %d trainable tensors (%d parameters), %d steps",
                len(examples), len(labels), len(trained), sum(params[n].numel() for n in trained), total)
    rng = random.Random(cfg.seed)
    for _ in range(start_epoch):  # the batch order of finished epochs, so a resumed run is the same run
        _batches(examples, cfg.batch_size, rng)
    pad = tagger.tokenizer.pad_token_id or 0
    cached = None  # the frozen bottom's output, when some layers are frozen and no CRF is trained
    if first > 0 and crf is None and start_epoch < cfg.epochs:
        cached = _bottom_states(inner, examples, first, pad)
    trainable = [p for p in model.parameters() if p.requires_grad] + (list(crf.parameters()) if crf else [])
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        losses: list[float] = []
        bar = tqdm(_batches(examples, cfg.batch_size, rng), desc=f"ner epoch {epoch + 1}/{cfg.epochs}",
                   leave=False)
        for step, idx in enumerate(bar, start=1):
            batch = _collate(examples, idx, pad)
            if cached is None:
                loss = _full_loss(model, batch, crf)
            else:
                loss = _top_loss(inner, _stack([cached[i] for i in idx]), batch["attention_mask"], batch["labels"],
                                 first)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if step % cfg.log_every == 0:
                run.log(epoch=epoch + 1, step=step, loss=float(np.mean(losses[-cfg.log_every:])))
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_every:]):.4f}")
        model.eval()
        tagger.crf = _crf_scores(crf)
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
        names = set(trained)
        state = {n: t.detach().clone() for n, t in model.state_dict().items() if n in names}
        tensors = {"model": state, "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        if crf is not None:
            tensors["crf"] = crf.state_dict()
        run.write_checkpoint(epoch + 1, {"epoch": epoch + 1, "best": best}, tensors)
        run.prune(keep=1)
    final = out / "tagger"
    if dev_docs and (out / "best").is_dir():
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(out / "best", final)
    else:
        tagger.crf = _crf_scores(crf)
        _save_tagger(tagger, cfg, final, best, len(train_docs))
    return final


def _save_tagger(tagger: TokenTagger, cfg: NERConfig, path: Path, best: dict[str, Any], n_docs: int) -> None:
    extra = {"training": {**asdict(cfg), "n_train_docs": n_docs, "best": best}}
    if cfg.lora_rank > 0:
        factors, head = lora_factors(tagger.model)
        tagger.save(path, base=cfg.base, extra=extra, lowrank=factors, head=head)
    else:
        tagger.save(path, base=cfg.base, extra=extra)
