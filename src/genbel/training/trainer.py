"""Fine-tune a generative linker (causal or seq2seq; full or LoRA) on CPU or GPU.

A small torch loop:

* data: human examples (synonym-aware targets), KB-guided pre-training samples and synthetic
  contexts, mixed in fixed per-batch shares by :class:`~genbel.training.mixing.MixedBatchSampler`;
  with ``memory`` (robust memory training, :mod:`genbel.training.memory`) the human and dev examples
  carry a corrupted memory of the earlier gold names of their document, and every prompt is built by
  the :class:`~genbel.generation.encoding.DocumentPromptEncoder` a :class:`~genbel.linkers.document.DocumentLinker` uses;
* loss: token cross-entropy on the target name + EOS only (prompt and padding are ``-100``); causal
  batches are left-padded and only the last ``max_target + 1`` logits are computed;
* checkpoints every ``save_every`` steps under ``<run>/checkpoints/step-NNNNNNN/`` (trainable weights,
  optimizer, scheduler, RNG states, position in the epoch), written atomically by the shared run
  framework (:mod:`genbel.training.run`), the last ``keep_checkpoints`` kept (plus the best on the
  dev set); ``resume=True`` continues from the last one with the same state (checkpoint files are
  read as tensors and plain data only);
* the result, ``<run>/final/``, is a saved :class:`~genbel.linkers.generative.GenerativeLinker`
  directory (weights or LoRA adapter, tokenizer, prompt format, KB, trie).

``<run>/config.json`` records every setting, ``<run>/data_report.json`` what the data builders kept
and dropped, ``<run>/log.jsonl`` the loss, learning rate and dev metrics over time.

Under ``torchrun`` (several processes, :mod:`genbel.training.distributed`) every rank builds the
same batches and trains on its share of each (``batch_size / N`` examples; the model in
DistributedDataParallel); each rank's loss is its sum of token losses divided by the token count
of the whole batch, so that the averaged gradient, the logged loss, the step count and the
learning-rate schedule are those of one process with the same ``batch_size``. Rank 0 writes the
run directory, evaluates and saves the final linker.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from genbel.deps import require

require("torch", "transformers", extra="models", feature="training")

import torch

from genbel.errors import ConfigError, Errors, InputError
from genbel.generation.encoding import DocumentPromptEncoder, PromptEncoder
from genbel.generation.prompts import PromptFormat
from genbel.io import atomic_write_text
from genbel.kb.base import KnowledgeBase
from genbel.training import distributed
from genbel.training.config import RESUME_FREE, TrainConfig
from genbel.training.data import SOURCES, build_training_data, load_kb_from_config
from genbel.training.encode import IGNORE, Encoded, collate, encode_example
from genbel.training.mixing import MixedBatchSampler
from genbel.training.model import compute_loss, load_model_and_tokenizer
from genbel.training.run import RunDirectory, load_checkpoint_safely, seed_all

logger = logging.getLogger(__name__)


def _length(e: Encoded) -> int:
    return len(e.input_ids) + len(e.decoder_input_ids or [])


# ====================================================================== trainer
class Trainer:
    """Train a generative linker as configured by a :class:`TrainConfig`.

    ``model``/``tokenizer``/``kb``/``documents`` may be given as objects (tests, notebooks); otherwise
    they are loaded from the config. ``evaluate`` (optional) is called with ``(trainer, step)`` at
    every ``eval_every`` steps and returns ``{metric: value}``; the first key is maximised to pick
    the best checkpoint. Without it the dev loss (minimised) is used when a dev corpus is given.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        model=None,
        tokenizer=None,
        kb: KnowledgeBase | None = None,
        documents: dict[str, Sequence] | None = None,
        evaluate: Callable[[Trainer, int], dict[str, float]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.run = RunDirectory(self.run_dir, unit="step", digits=7)
        self.evaluate_fn = evaluate
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        #: this process's place among the training processes (one process outside torchrun)
        self.dist = distributed.setup(cfg.device)
        self.dist.per_rank(cfg.batch_size)  # E590 before any work
        self.dist.check_same("settings", {k: v for k, v in cfg.model_dump().items() if k != "num_threads"})
        seed_all(cfg.seed)
        self.kb = kb if kb is not None else load_kb_from_config(cfg)
        self.model, self.tokenizer, self.architecture, self.base_model_ref = load_model_and_tokenizer(
            cfg, model, tokenizer
        )
        self.format = PromptFormat(
            style=cfg.style(self.architecture),
            context_chars=cfg.context_chars,
            include_group=cfg.include_group,
            memory_size=cfg.memory_size,
            memory_style=cfg.memory_style,
        )
        start = getattr(self._config(), "decoder_start_token_id", None)
        # with memory: the document-level encoder of DocumentLinker (memory block + token-trimmed
        # context), so that training prompts are the prompts the saved linker sees at inference
        encoder_cls = DocumentPromptEncoder if cfg.memory else PromptEncoder
        self.encoder = encoder_cls(
            self.tokenizer,
            self.format,
            self.architecture,
            # long contexts are clipped (keeping the mention), leaving room for a 32-token target
            max_source_length=max(16, cfg.max_length - 32),
            decoder_start_token_id=start,
        )
        self.data = build_training_data(cfg, self.kb, self.format, documents)
        self.device = self._device()
        self.model.to(self.device)
        self.use_bf16 = (
            cfg.bf16
            if cfg.bf16 is not None
            else (self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        )
        self._encode_all()
        self.dist.check_same("training data", self._data_summary())
        #: the model that trains: DistributedDataParallel around :attr:`model` with several processes
        self.train_model = self.dist.wrap(self.model)

    # ------------------------------------------------------------------ setup
    def _config(self):
        m = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        return m.config

    def _device(self) -> torch.device:
        return self.dist.device(self.cfg.device)

    def _data_summary(self) -> dict:
        """What every rank must agree on: examples per source, their token lengths, the dev set."""
        import hashlib

        lengths = ",".join(str(_length(e)) for e in self.encoded)
        return {
            "examples": {s: len(self.data.sources[s]) for s in self.order},
            "lengths": hashlib.sha1(lengths.encode()).hexdigest()[:16],
            "dev": len(self.dev_encoded),
            "batches": len(self.sampler),
        }

    def _encode_all(self) -> None:
        self.encoded: list[Encoded] = []
        limit = self.cfg.max_length
        for s in SOURCES:
            if not self.data.sources.get(s):
                continue
            # examples longer than max_length (prompt + target tokens) are dropped: one very long name
            # pads its whole batch and multiplies the activation memory (GBs on CPU)
            kept_ex, kept_enc = [], []
            for ex in self.data.sources[s]:
                enc = encode_example(ex, self.encoder)
                if _length(enc) <= limit:
                    kept_ex.append(ex)
                    kept_enc.append(enc)
            dropped = len(self.data.sources[s]) - len(kept_ex)
            if dropped:
                logger.warning("%s: %d examples longer than max_length=%d tokens dropped", s, dropped, limit)
            self.data.sources[s] = kept_ex
            self.data.report.setdefault(s, {})["too_long"] = dropped
            self.encoded.extend(kept_enc)
        self.order = [s for s in SOURCES if self.data.sources.get(s)]
        if not self.encoded:
            raise InputError(Errors.E017.format(reason=f"every example is longer than max_length={limit} tokens"))
        dev = [encode_example(ex, self.encoder) for ex in self.data.dev[: self.cfg.eval_max_mentions]]
        self.dev_encoded = sorted((e for e in dev if _length(e) <= limit), key=_length)
        sizes = [len(self.data.sources[s]) for s in self.order]
        shares = [self.cfg.mix.get(s, 0.0) for s in self.order]
        if len(self.order) == 1:
            shares = [1.0]
        lengths = [_length(e) for e in self.encoded]
        self.sampler = MixedBatchSampler(
            sizes,
            shares,
            self.cfg.batch_size,
            seed=self.cfg.seed,
            lengths=lengths if self.cfg.group_by_length else None,
        )
        per_epoch = math.ceil(len(self.sampler) / self.cfg.grad_accum)
        self.total_steps = self.cfg.max_steps or max(1, math.ceil(self.cfg.epochs * per_epoch))
        logger.info(
            "training data: %s; %d batches per epoch (per batch: %s); %d optimizer steps",
            {s: len(self.data.sources[s]) for s in self.order},
            len(self.sampler),
            dict(zip(self.order, self.sampler.counts)),
            self.total_steps,
        )

    def _optim(self):
        from transformers import get_scheduler

        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        sched = get_scheduler(
            self.cfg.scheduler if self.cfg.scheduler != "constant" else "constant_with_warmup",
            opt,
            num_warmup_steps=int(self.cfg.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        return opt, sched

    def _batch(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        b = collate([self.encoded[i] for i in idx], self.encoder.pad_token_id, self.architecture)
        return {k: v.to(self.device) for k, v in b.items()}

    def _loss(self, batch) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            return compute_loss(self.model, batch, self.architecture, self.cfg.label_smoothing)

    def _train_loss(self, idx: Sequence[int]) -> tuple[torch.Tensor, float]:
        """``(loss to backpropagate, its share of the global batch's mean loss)`` for one batch of
        global indices. One process: the mean token loss. Several: this rank's share of the batch,
        summed over its target tokens and divided by the batch's token count (times the number of
        processes, which DistributedDataParallel's gradient average divides back out)."""
        if not self.dist.enabled:
            loss = self._loss(self._batch(idx))
            return loss, float(loss.detach())
        batch = self._batch(self.dist.shard(idx))
        n_tokens = self.dist.all_sum(int((batch["labels"] != IGNORE).sum()))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            total = compute_loss(self.train_model, batch, self.architecture, self.cfg.label_smoothing,
                                 reduction="sum")
        share = total / max(n_tokens, 1)
        return share * self.dist.world_size, float(share.detach())

    # ------------------------------------------------------------------ state
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.model.named_parameters() if p.requires_grad}

    def checkpoints(self) -> list[Path]:
        return self.run.checkpoints()

    def save_checkpoint(self, step: int, opt, sched, pos: dict, history: dict) -> Path:
        """Write checkpoint ``step`` (rank 0, once; every rank's random state goes in it)."""
        rngs = self.dist.rng_states() if self.dist.enabled else None

        def write() -> Path:
            path = self.run.write_checkpoint(
                step,
                {"step": step, **pos, **history, "world_size": self.dist.world_size},
                {"trainable": self.trainable_state(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict()},
                rng_states=rngs,
            )
            self.run.prune(self.cfg.keep_checkpoints, protect=[history.get("best_checkpoint")])
            return path

        return Path(self.dist.on_main(write))

    def load_checkpoint(self, path: Path, opt, sched) -> dict:
        ckpt = self.run.read_checkpoint(path)

        def read() -> dict:
            weights = ckpt.tensors("trainable")
            opt.load_state_dict(ckpt.tensors("optimizer"))
            sched.load_state_dict(ckpt.tensors("scheduler"))
            return weights

        weights = load_checkpoint_safely(read, path)
        self._load_trainable(weights, path)
        load_checkpoint_safely(lambda: ckpt.restore_rng(self.dist.rank, self.dist.world_size), path)
        return ckpt.state

    def _load_trainable(self, weights: dict[str, torch.Tensor], path: Path) -> None:
        params = dict(self.model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
        unknown = [n for n in weights if n not in params]
        if missing or unknown:
            raise ConfigError(
                Errors.E351.format(
                    path=path,
                    reason=f"weights do not fit the model (missing {missing[:3]}, unexpected {unknown[:3]})",
                )
            )
        with torch.no_grad():
            for n, w in weights.items():
                params[n].copy_(w.to(params[n].device))

    # ------------------------------------------------------------------ eval
    @torch.no_grad()
    def dev_loss(self) -> float | None:
        if not self.dev_encoded:
            return None
        was = self.model.training
        self.model.eval()
        tot, n = 0.0, 0
        bs = self.cfg.batch_size
        for i in range(0, len(self.dev_encoded), bs):
            chunk = self.dev_encoded[i : i + bs]
            b = {
                k: v.to(self.device)
                for k, v in collate(chunk, self.encoder.pad_token_id, self.architecture).items()
            }
            ntok = int((b["labels"] != IGNORE).sum())
            tot += float(self._loss(b)) * ntok
            n += ntok
        self.model.train(was)
        return tot / max(n, 1)

    def _evaluate(self, step: int) -> tuple[dict[str, float], float | None]:
        """Metrics and the score to maximise (None without dev data)."""
        if self.evaluate_fn is not None:
            self.model.eval()
            m = self.evaluate_fn(self, step)
            self.model.train()
            return m, (next(iter(m.values())) if m else None)
        dl = self.dev_loss()
        return ({"dev_loss": dl}, -dl) if dl is not None else ({}, None)

    # ------------------------------------------------------------------ loop
    def _prepare_run_dir(self, resume: bool) -> None:
        def prepare() -> None:
            self.run.start(
                self.cfg.model_dump(),
                resume=resume,
                free=RESUME_FREE,
                read_settings=lambda p: TrainConfig.read(p).model_dump(),
            )
            atomic_write_text(self.run_dir / "data_report.json", json.dumps(self.data.report, indent=2) + "\n")

        self.dist.on_main(prepare)  # rank 0 writes; its errors (E350, E352) stop every rank

    def train(self, resume: bool = False, save_final: bool = True, stop_after: int | None = None) -> Path:
        """Run the loop; returns the final linker directory (or the run dir if ``save_final`` is False).

        ``stop_after`` interrupts the run after that step, with a checkpoint, as a kill would (the
        run continues with ``resume=True``); the run directory is returned.
        """
        from tqdm.auto import tqdm

        self._prepare_run_dir(resume)
        opt, sched = self._optim()
        step, epoch, batch_in_epoch = 0, 0, 0
        history: dict = {"best_score": None, "best_checkpoint": None, "best_step": None}
        if resume:  # every rank resumes from the checkpoint rank 0 found
            ckpt = Path(self.dist.broadcast(str(self.checkpoints()[-1]) if self.dist.is_main else None))
            st = self.load_checkpoint(ckpt, opt, sched)
            step, epoch, batch_in_epoch = st["step"], st["epoch"], st["batch_in_epoch"]
            history = {k: st.get(k) for k in history}
            logger.info("resumed from %s (step %d)", ckpt, step)
        self.model.train()
        main = self.dist.is_main
        bar = tqdm(total=self.total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not main)
        batches = self.sampler.batches(epoch)
        t0, running, n_run = time.time(), 0.0, 0
        best_state = None
        deadline = time.time() + 60 * self.cfg.max_minutes if self.cfg.max_minutes else None
        stop_at = self.total_steps
        while step < stop_at:
            opt.zero_grad(set_to_none=True)
            acc = 0.0
            for micro in range(self.cfg.grad_accum):
                if batch_in_epoch >= len(batches):
                    epoch, batch_in_epoch = epoch + 1, 0
                    batches = self.sampler.batches(epoch)
                # gradients are exchanged once per optimizer step, on the last micro-batch
                sync = micro == self.cfg.grad_accum - 1 or not self.dist.enabled
                with contextlib.nullcontext() if sync else self.train_model.no_sync():
                    loss, value = self._train_loss(batches[batch_in_epoch])
                    (loss / self.cfg.grad_accum).backward()
                acc += value / self.cfg.grad_accum
                batch_in_epoch += 1
            acc = self.dist.all_sum(acc) if self.dist.enabled else acc
            if self.cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], self.cfg.max_grad_norm
                )
            opt.step()
            sched.step()
            step += 1
            running += acc
            n_run += 1
            bar.update(1)
            bar.set_postfix(loss=f"{acc:.4f}", epoch=epoch)
            over = deadline is not None and time.time() > deadline
            if deadline is not None and self.dist.enabled:
                over = bool(self.dist.broadcast(over))  # rank 0's clock decides for every rank
            if over and step < stop_at:
                logger.warning(
                    "time budget of %s min reached at step %d of %d; stopping",
                    self.cfg.max_minutes,
                    step,
                    self.total_steps,
                )
                stop_at = step
            last = step == stop_at
            rec: dict = {}
            if step % self.cfg.log_every == 0 or last:
                rec = {
                    "step": step,
                    "epoch": epoch,
                    "loss": running / n_run,
                    "lr": sched.get_last_lr()[0],
                    "elapsed_s": round(time.time() - t0, 1),
                }
                running, n_run = 0.0, 0
            is_eval = (self.cfg.eval_every and step % self.cfg.eval_every == 0) or last
            if is_eval:  # on rank 0; every rank gets the metrics (they decide which checkpoint is kept)
                metrics, score = self.dist.on_main(functools.partial(self._evaluate, step))
                rec = {"step": step, **rec, **metrics}
                if score is not None and (history["best_score"] is None or score > history["best_score"]):
                    history.update(best_score=score, best_step=step, best_checkpoint=f"step-{step:07d}")
                    best_state = self.trainable_state()
                    logger.info("step %d: new best %s", step, metrics)
            if rec and main:
                self.run.log(**rec)
            saved = step % self.cfg.save_every == 0 or last or (is_eval and history["best_step"] == step)
            interrupted = stop_after is not None and step >= stop_after and step < stop_at
            if saved or interrupted:  # each checkpoint is written once
                self.save_checkpoint(
                    step, opt, sched, {"epoch": epoch, "batch_in_epoch": batch_in_epoch}, history
                )
            if interrupted:
                bar.close()
                return self.run_dir
        bar.close()
        if not save_final:
            return self.run_dir
        if history["best_checkpoint"] and history["best_step"] != step:
            if best_state is None:  # the best was found before a resume: read it back
                best = self.run.read_checkpoint(self.run.checkpoint_dir / history["best_checkpoint"])
                best_state = load_checkpoint_safely(lambda: best.tensors("trainable"), best.path)
            logger.info("using the best checkpoint %s", history["best_checkpoint"])
            self._load_trainable(best_state, self.run_dir)
        return Path(self.dist.on_main(lambda: self.save_linker(self.run_dir / "final")))

    # ------------------------------------------------------------------ output
    def save_linker(self, out: Path) -> Path:
        """Write a :class:`GenerativeLinker` directory for the current weights (atomic)."""
        from genbel.training.save import save_linker

        extra: dict = {}
        if self.cfg.memory:
            # DocumentLinker.load reads this record: same context window and prompt budget as training
            extra = {
                "max_source_length": self.encoder.max_source_length,
                "memory_training": {
                    "memory_size": self.cfg.memory_size,
                    "memory_style": self.cfg.memory_style,
                    "memory_corruption": self.cfg.memory_corruption,
                    "memory_fraction": self.cfg.memory_fraction,
                    "context_chars": self.cfg.context_chars,
                    "max_prompt_tokens": self.encoder.max_source_length,
                },
            }
        return save_linker(
            self.model,
            self.tokenizer,
            self.kb,
            self.format,
            self.architecture,
            self.base_model_ref,
            out,
            training={"config": self.cfg.model_dump(), "data": self.data.report},
            **extra,
        )
