"""The one-command retriever recipe: SapBERT-style metric learning, then one epoch of BioSyn.

This is how the shipped retriever (``dense:default``) was made, packaged so that
``genbel train-retriever --kb KB --train CORPUS --out RUN`` reproduces it on a new corpus and KB
within a time budget (``max_minutes``, 30 by default) on a 2-core CPU:

1. **Stage 1, SapBERT-style** (:func:`~genbel.training.retriever.train_sapbert`, run directory
   ``RUN/sapbert``): multi-positive InfoNCE over KB synonym pairs and the training mentions (each
   paired with a name of its gold concept, ``mention_repeats`` times), embeddings + first 3 layers
   frozen, batches of 64 pairs, lr 2e-5 with a linear decay over the *planned* steps. The KB pairs are
   sampled so that one epoch is exactly the planned number of steps (the learning-rate schedule ends
   where the plan does).
2. **Stage 2, BioSyn** (:func:`~genbel.training.retriever.train_biosyn`, run directory ``RUN``): the
   KB names are embedded with the stage-1 encoder, each training mention gets 20 candidates (half
   TF-IDF, half dense; hard negatives), and one epoch of the synonym-marginal likelihood is trained
   with the first 4 layers frozen.
3. The KB index (the KB augmented with the training mentions, the BioSyn protocol) is built by the
   caller (``genbel train-retriever``) into ``RUN/index``.

**Plan and ETA.** Before training, :func:`plan_recipe` measures this machine: a few stage-1 and
stage-2 forward/backward passes (no optimizer step: the model is unchanged) and the embedding speed
on a sample of KB names. The estimate of every phase is printed, and when it exceeds
``max_minutes`` the stage-1 steps are cut to fit (never below ``min_sapbert_steps``; stage 2 is
always one whole epoch, as in the shipped recipe). The plan is written to ``RUN/plan.json``; a
resumed run (``resume=True``) reuses it instead of measuring again, skips a finished stage 1 and
continues stage 2 from its checkpoint.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genbel.deps import require

require("torch", "transformers", extra="models", feature="training")

import torch

from genbel.data.model import Document
from genbel.encoders import TextEncoder
from genbel.errors import ConfigError, Errors, InputError
from genbel.io import atomic_write_text
from genbel.kb.base import KnowledgeBase
from genbel.linkers.dense import RETRIEVER_CONFIG
from genbel.linkers.nametable import NameTable
from genbel.textio import read_json
from genbel.training.losses import infonce_loss
from genbel.training.retriever import (
    BiosynConfig,
    SapbertConfig,
    freeze_layers,
    train_biosyn,
    train_sapbert,
)
from genbel.training.retriever_data import training_mentions
from genbel.training.run import RunDirectory, settings_differences

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
STAGE1_DIR = "sapbert"


@dataclass
class RecipeConfig:
    """Settings of :func:`train_recipe` (defaults: the shipped retriever's recipe, sized for 30 min)."""

    max_minutes: float | None = 30.0  #: wall-time budget of the whole run (None: no budget)
    sapbert_steps: int = 600  #: stage-1 steps when the budget allows (64 pairs each)
    min_sapbert_steps: int = 50  #: stage 1 is never cut below this
    sapbert_batch: int = 64
    sapbert_lr: float = 2e-5
    sapbert_top_layers: int = 3  #: stage 1 trains the top N transformer layers (MiniLM: layers 4–6)
    mention_repeats: int = 2  #: stage 1: uses of each distinct training mention
    biosyn_epochs: int = 1
    biosyn_batch: int = 16
    biosyn_lr: float = 1e-5
    biosyn_top_layers: int = 2  #: stage 2 trains the top N layers (MiniLM: 5–6)
    topk: int = 20  #: stage 2: candidates per mention (half TF-IDF, half dense)
    index_names: int | None = None  #: names the final index embeds (for the ETA; default: KB + mentions)
    seed: int = 0

    def check(self) -> None:
        for name in ("sapbert_steps", "min_sapbert_steps", "sapbert_batch", "biosyn_epochs", "biosyn_batch", "topk",
                     "sapbert_top_layers", "biosyn_top_layers"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(Errors.E023.format(value=getattr(self, name), field=name, constraint=">= 1"))
        for name in ("sapbert_lr", "biosyn_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(Errors.E023.format(value=getattr(self, name), field=name, constraint="> 0"))
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(Errors.E490.format(value=self.max_minutes))


@dataclass
class RecipePlan:
    """What :func:`train_recipe` will do and how long each phase is expected to take (seconds)."""

    sapbert_steps: int
    kb_pairs: int
    mentions: int
    biosyn_steps: int
    kb_names: int
    index_names: int
    seconds_per_sapbert_step: float
    seconds_per_biosyn_step: float
    names_per_second: float
    threads: int
    load_average: float | None
    cut: bool = False  #: stage-1 steps were cut to fit the budget
    over_budget: bool = False  #: even the minimum plan exceeds the budget
    estimates: dict[str, float] = field(default_factory=dict)
    sapbert_batch: int = 64  #: pairs per stage-1 step

    @property
    def total_seconds(self) -> float:
        return float(sum(self.estimates.values()))

    def describe(self, budget_minutes: float | None) -> str:
        """The plan as printed before training."""
        est = self.estimates
        load = self.load_average if self.load_average is not None else "?"
        budget = f" (budget {budget_minutes:g} min)" if budget_minutes is not None else " (no budget)"
        lines = [
            (f"plan (measured here: {self.seconds_per_sapbert_step:.2f} s per stage-1 step, "
             f"{self.seconds_per_biosyn_step:.2f} s per stage-2 step, {self.names_per_second:.0f} names/s embedded; "
             f"{self.threads} torch thread(s), load average {load}):"),
            (f"  stage 1 SapBERT-style: {self.sapbert_steps:,} steps × {self.sapbert_batch} pairs ({self.kb_pairs:,} KB "
             f"synonym pairs + training mentions){' — cut to fit the budget' if self.cut else ''}: "
             f"~{_mmss(est['sapbert'])}"),
            (f"  stage 2 BioSyn: embed {self.kb_names:,} KB names ~{_mmss(est['mining'])}, "
             f"{self.biosyn_steps:,} steps over {self.mentions:,} mentions ~{_mmss(est['biosyn'])}"),
            f"  index: embed {self.index_names:,} names ~{_mmss(est['index'])}",
            f"  ETA {_mmss(self.total_seconds)}{budget}",
        ]
        if self.over_budget:
            lines.append(
                "  the minimum plan exceeds the budget on this machine now (busy cores?): "
                "it runs anyway; pass a larger --max-minutes to silence this"
            )
        return "\n".join(lines)


def eta_line(plan: RecipePlan, since_plan: float, total: float, *, resumed: bool = False) -> str:
    """The closing line of a recipe run: the time since the plan was printed against the plan's ETA
    (which covers training and the index: the phases after it) and the command's whole wall time."""
    ratio = since_plan / plan.total_seconds if plan.total_seconds > 0 else float("nan")
    note = " (this resumed part only; the ETA is the whole run's)" if resumed else ""
    return (f"recipe finished: {_mmss(since_plan)} after the plan (its ETA {_mmss(plan.total_seconds)}, "
            f"×{ratio:.2f}){note}; {_mmss(total)} in all, loading and planning included")


def frozen_layers(model: torch.nn.Module, top: int) -> int:
    """How many bottom layers to freeze so that the top ``top`` transformer layers train (the
    embeddings are frozen too; a model with ``top`` layers or fewer trains them all)."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(Errors.E359.format(model=type(model).__name__))
    return max(0, len(layers) - top)


def _mmss(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _load_average() -> float | None:
    try:
        import os

        return round(os.getloadavg()[0], 1)
    except (OSError, AttributeError):
        return None


def _time_pass(enc: TextEncoder, texts: Sequence[str], labels: torch.Tensor, repeats: int = 2) -> float:
    """Median seconds of a forward + backward pass on ``texts`` (gradients dropped, weights unchanged)."""
    times: list[float] = []
    enc.model.train()
    for _ in range(repeats + 1):  # the first pass warms up
        t0 = time.perf_counter()
        loss = infonce_loss(enc.embed(list(texts)), labels, 0.05)
        loss.backward()
        times.append(time.perf_counter() - t0)
    enc.model.zero_grad(set_to_none=True)
    enc.model.eval()
    times = sorted(times[1:])
    return times[len(times) // 2]


def _measure(enc: TextEncoder, table: NameTable, cfg: RecipeConfig, seed: int) -> tuple[float, float, float]:
    """(s per stage-1 step, s per stage-2 step, names/s embedded) measured on this machine now."""
    rng = random.Random(seed)
    keys = table.keys
    sample = [keys[i] for i in rng.sample(range(len(keys)), min(len(keys), 512))]
    requires = {n: p.requires_grad for n, p in enc.model.named_parameters()}
    try:
        t0 = time.perf_counter()
        enc.encode(sample, progress=False)
        rate = len(sample) / max(time.perf_counter() - t0, 1e-6)
        pairs = [sample[i % len(sample)] for i in range(2 * cfg.sapbert_batch)]
        freeze_layers(enc.model, frozen_layers(enc.model, cfg.sapbert_top_layers))
        s1 = _time_pass(enc, pairs, torch.arange(cfg.sapbert_batch).repeat(2))
        for n, p in enc.model.named_parameters():
            p.requires_grad_(requires[n])
        # a BioSyn step embeds its mentions and their candidates' distinct names with gradients
        n2 = cfg.biosyn_batch * (1 + cfg.topk)
        texts = [sample[i % len(sample)] for i in range(n2)]
        freeze_layers(enc.model, frozen_layers(enc.model, cfg.biosyn_top_layers))
        s2 = _time_pass(enc, texts, torch.arange(n2))
    finally:
        for n, p in enc.model.named_parameters():
            p.requires_grad_(requires[n])
    return s1, s2, rate


def plan_recipe(
    kb: KnowledgeBase,
    documents: Sequence[Document],
    encoder: TextEncoder,
    config: RecipeConfig | None = None,
    *,
    measure: Callable[[TextEncoder, NameTable, RecipeConfig, int], tuple[float, float, float]] | None = None,
) -> RecipePlan:
    """Measure this machine and plan the run (see the module docstring). ``measure`` replaces the
    measurement (tests)."""
    cfg = config or RecipeConfig()
    cfg.check()
    table = NameTable.from_kb(kb)
    mentions, _ = training_mentions(documents, kb, table, unique=True)
    if not mentions:
        raise InputError(Errors.E017.format(reason="no training mention has a gold concept in the KB"))
    s1, s2, rate = (measure or _measure)(encoder, table, cfg, cfg.seed)
    biosyn_steps = cfg.biosyn_epochs * math.ceil(len(mentions) / cfg.biosyn_batch)
    index_names = cfg.index_names if cfg.index_names is not None else len(table) + len(mentions)
    fixed = {
        "mining": cfg.biosyn_epochs * (len(table) + len(mentions)) / rate,
        "biosyn": biosyn_steps * s2,
        "index": index_names / rate,
    }
    steps, cut, over = cfg.sapbert_steps, False, False
    if cfg.max_minutes is not None:
        room = cfg.max_minutes * 60 - sum(fixed.values())
        fit = int(room // s1) if room > 0 else 0
        if fit < steps:
            steps, cut = max(cfg.min_sapbert_steps, fit), True
            over = fit < cfg.min_sapbert_steps
    n_mention_pairs = len(mentions) * cfg.mention_repeats
    available = sum(n for n in (table.concept_end(j) - int(table.concept_starts[j]) for j in range(table.n_concepts))
                    if n >= 2)  # one pair per name of a concept with two names or more
    steps = max(1, min(steps, math.ceil((available + n_mention_pairs) / cfg.sapbert_batch)))  # a small KB: one pass
    kb_pairs = min(available, max(0, steps * cfg.sapbert_batch - n_mention_pairs))
    return RecipePlan(
        sapbert_steps=steps, kb_pairs=kb_pairs, mentions=len(mentions), biosyn_steps=biosyn_steps,
        kb_names=len(table), index_names=index_names, seconds_per_sapbert_step=round(s1, 3),
        seconds_per_biosyn_step=round(s2, 3), names_per_second=round(rate, 1), threads=torch.get_num_threads(),
        load_average=_load_average(), cut=cut, over_budget=over, sapbert_batch=cfg.sapbert_batch,
        estimates={"sapbert": steps * s1, **fixed},
    )


# settings that do not change what a recorded plan trains: a resumed run may change them
_FREE_SETTINGS = ("max_minutes", "index_names")


def _read_plan(path: Path, cfg: RecipeConfig | None = None) -> RecipePlan:
    """The plan recorded in ``path``; with ``cfg``, the settings it was made with must equal ``cfg``'s
    except for the budget (E352: a resumed run trains what its plan says, with the same settings)."""
    data = read_json(path, expect=dict)
    settings = data.pop("settings", None)
    try:
        plan = RecipePlan(**data)
    except TypeError as exc:
        raise ConfigError(Errors.E491.format(path=path, reason=str(exc))) from None
    if cfg is not None and isinstance(settings, dict):
        diff = settings_differences(settings, asdict(cfg), free=_FREE_SETTINGS)
        if diff:
            was = ", ".join(f"{k}={settings.get(k)!r} (now {getattr(cfg, k, None)!r})" for k in diff)
            raise ConfigError(Errors.E352.format(path=path.parent, fields=was))
    return plan


def train_recipe(
    kb: KnowledgeBase,
    documents: Sequence[Document],
    encoder: TextEncoder | str | Path,
    out_dir: str | Path,
    *,
    config: RecipeConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    on_plan: Callable[[RecipePlan], None] | None = None,
    measure: Callable[[TextEncoder, NameTable, RecipeConfig, int], tuple[float, float, float]] | None = None,
    vector_store: str | Path | None = None,
    report: Callable[[str], None] | None = None,
    checkpoint_minutes: float | None = 5.0,
) -> Path:
    """Run the recipe (stage 1 into ``out_dir/sapbert``, stage 2 into ``out_dir``); returns ``out_dir``,
    a trained retriever directory (``dense:OUT`` / ``biosyn:OUT``). ``on_plan`` receives the plan
    before training starts (the CLI prints it). The KB is the plain dictionary: train against it,
    index the KB augmented with the training mentions. ``vector_store`` keeps stage 2's KB vectors of
    the stage-1 encoder (a resumed stage 2, or ``dense:OUT/sapbert``, reads them back). ``report``
    receives one-line notes for the user (a reused plan, a skipped or resumed stage; default: the log).

    Both stages checkpoint every ``checkpoint_minutes`` of the plan (in steps: the same on every rank)
    inside their single epoch, so ``resume=True`` after an interruption continues from the last such
    checkpoint instead of starting the stage over."""
    cfg = config or RecipeConfig()
    cfg.check()
    if not documents:
        raise ConfigError(Errors.E360)
    say = report or logger.info
    out = Path(out_dir)
    enc = encoder if isinstance(encoder, TextEncoder) else TextEncoder.load(encoder)
    plan_file = out / PLAN_FILE
    if resume and plan_file.is_file():
        plan = _read_plan(plan_file, cfg)
        say(f"resuming {out}: the plan recorded in {plan_file.name} is reused, not measured again")
    else:
        plan = plan_recipe(kb, documents, enc, cfg, measure=measure)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan_file, _plan_json(plan, cfg))
    if on_plan is not None:
        on_plan(plan)
    t0 = time.perf_counter()
    stage1 = out / STAGE1_DIR
    if resume and (stage1 / RETRIEVER_CONFIG).is_file():
        say(f"stage 1 (SapBERT-style) finished in an earlier run ({stage1}): skipped")
    else:
        sap = SapbertConfig(
            epochs=1, max_steps=plan.sapbert_steps, batch_size=cfg.sapbert_batch, lr=cfg.sapbert_lr,
            max_kb_pairs=plan.kb_pairs, mention_repeats=cfg.mention_repeats,
            freeze_layers=frozen_layers(enc.model, cfg.sapbert_top_layers),
            seed=cfg.seed,
        )
        train_sapbert(kb, enc, stage1, documents=documents, config=sap, resume=resume, progress=progress,
                      checkpoint_every=_every(checkpoint_minutes, plan.seconds_per_sapbert_step))
    t1 = time.perf_counter()
    if resume:
        last = RunDirectory(out, unit="epoch").last_checkpoint()
        if last is not None:
            say(f"stage 2 (BioSyn) continues from its checkpoint {last.path.name} "
                f"(step {last.state.get('step')} of {plan.biosyn_steps})")
    bio = BiosynConfig(epochs=cfg.biosyn_epochs, batch_size=cfg.biosyn_batch, lr=cfg.biosyn_lr,
                       topk=cfg.topk, freeze_layers=frozen_layers(enc.model, cfg.biosyn_top_layers), seed=cfg.seed)
    train_biosyn(kb, documents, stage1 / "encoder", out, config=bio, resume=resume, progress=progress,
                 vector_store=vector_store, checkpoint_every=_every(checkpoint_minutes, plan.seconds_per_biosyn_step))
    t2 = time.perf_counter()
    data = read_json(out / RETRIEVER_CONFIG, expect=dict)
    data["recipe"] = {"stage1_seconds": round(t1 - t0, 1), "stage2_seconds": round(t2 - t1, 1),
                      "sapbert_steps": plan.sapbert_steps, "biosyn_steps": plan.biosyn_steps,
                      "eta_seconds": round(plan.total_seconds, 1), "resumed": resume}
    atomic_write_text(out / RETRIEVER_CONFIG, _dumps(data))
    return out


def _every(minutes: float | None, seconds_per_step: float) -> int | None:
    """Steps between checkpoints inside an epoch: ``minutes`` of the planned step time (None: none)."""
    if not minutes:
        return None
    return max(1, int(minutes * 60 // max(seconds_per_step, 1e-3)))


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, indent=2)


def _plan_json(plan: RecipePlan, cfg: RecipeConfig) -> str:
    """The plan and the settings it was made with (``plan.json``)."""
    return _dumps({**asdict(plan), "estimates": {k: round(v, 1) for k, v in plan.estimates.items()},
                   "settings": asdict(cfg)})


__all__ = ["PLAN_FILE", "RecipeConfig", "RecipePlan", "eta_line", "frozen_layers", "plan_recipe", "train_recipe"]
