"""``genbel train`` (fine-tune a generative linker) and ``genbel synth`` (synthetic contexts)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import typer

from genbel.cli.nproc import NPROC_OPTION
from genbel.io import check_output

logger = logging.getLogger(__name__)


def train_cmd(
    train_corpus: list[Path] = typer.Option(
        [], "--train-corpus", "-t", help="Annotated corpus (PubTator/BigBio); repeatable."
    ),
    kb: str | None = typer.Option(None, "--kb", help="KB file or directory (default: the bundled KB)."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    kb_group: str | None = typer.Option(
        None, "--kb-group", help="Semantic group given to concepts without one."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (final linker in OUT/final)."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="JSON/YAML TrainConfig; options given here override it."
    ),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Packaged alias, local HF dir or hub id."
    ),
    init: str | None = typer.Option(
        None, "--init", help="Start from a genbel linker or run dir (e.g. a KB-guided pre-training run)."
    ),
    dev_corpus: Path | None = typer.Option(
        None, "--dev-corpus", help="Corpus for the dev loss / checkpoint choice."
    ),
    synthetic: list[Path] = typer.Option(
        [], "--synthetic", "-s", help="Synthetic BigBio JSONL from `genbel synth`; repeatable."
    ),
    synth_share: float | None = typer.Option(
        None, "--synth-share", help="Share of synthetic examples per batch (default 0.5)."
    ),
    pretrain_per_concept: int | None = typer.Option(
        None, "--kb-pretrain", help="KB-guided samples per concept (0 = none)."
    ),
    kb_share: float | None = typer.Option(
        None, "--kb-share", help="Share of KB-guided samples per batch (default 0.5)."
    ),
    entity_types: str | None = typer.Option(
        None, "--entity-types", help="Comma-separated entity types to train on."
    ),
    abbreviations: str | None = typer.Option(None, "--abbreviations", help="none|expand|both"),
    composite: str | None = typer.Option(
        None, "--composite", help="each|first|skip (mentions with several ids)."
    ),
    target: str | None = typer.Option(None, "--target", help="tfidf (most similar synonym) | preferred"),
    strict: bool | None = typer.Option(
        None, "--strict/--no-strict", help="Fail on gold ids missing from the KB."
    ),
    lora: bool | None = typer.Option(
        None, "--lora/--full", help="LoRA adapter (default) or full fine-tuning."
    ),
    lora_r: int | None = typer.Option(None, "--lora-r"),
    context_chars: int | None = typer.Option(
        None, "--context-chars", help="Context window per side (-1 = whole text)."
    ),
    memory: bool | None = typer.Option(
        None,
        "--memory/--no-memory",
        help="Robust memory training: human examples carry a corrupted memory of earlier gold names.",
    ),
    memory_corruption: float | None = typer.Option(
        None, "--memory-corruption", help="Probability that a memory entry is corrupted (default 0.1)."
    ),
    memory_fraction: float | None = typer.Option(
        None, "--memory-fraction", help="Share of human examples that carry a memory (default 0.5)."
    ),
    memory_size: int | None = typer.Option(
        None, "--memory-size", help="Most recent distinct memory entries in a prompt (default 10)."
    ),
    memory_style: str | None = typer.Option(
        None, "--memory-style",
        help="Memory layout: 'block' (LongBEL, default) or 'lines' (an append-only transcript: each decode "
             "reuses the previous prompt's states; mention-only prompts).",
    ),
    epochs: float | None = typer.Option(None, "--epochs"),
    max_steps: int | None = typer.Option(None, "--max-steps"),
    max_minutes: float | None = typer.Option(
        None, "--max-minutes", help="Stop and save after this much time."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    seed: int | None = typer.Option(None, "--seed"),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads (1 is fastest on a busy machine)."
    ),
    device: str | None = typer.Option(None, "--device", help="auto|cpu|cuda"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUT."),
    nproc: int | None = NPROC_OPTION,
) -> None:
    """Fine-tune a generative linker (causal or seq2seq, LoRA or full) on annotated, synthetic and KB data."""
    from genbel.cli.nproc import relaunch

    relaunch(nproc)
    from genbel.data import parse_entity_types
    from genbel.training.config import TrainConfig
    from genbel.training.trainer import Trainer

    data = TrainConfig.read(config).model_dump() if config else {}
    given = {
        "kb": kb,
        "kb_format": kb_format,
        "kb_group": kb_group,
        "base_model": base_model,
        "init": init,
        "dev_corpus": str(dev_corpus) if dev_corpus else None,
        "pretrain_per_concept": pretrain_per_concept,
        "abbreviations": abbreviations,
        "composite": composite,
        "target": target,
        "strict": strict,
        "lora": lora,
        "lora_r": lora_r,
        "memory": memory,
        "memory_corruption": memory_corruption,
        "memory_fraction": memory_fraction,
        "memory_size": memory_size,
        "memory_style": memory_style,
        "epochs": epochs,
        "max_steps": max_steps,
        "max_minutes": max_minutes,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "num_threads": threads,
        "device": device,
    }
    data.update({k: v for k, v in given.items() if v is not None})
    if train_corpus:
        data["train_corpora"] = [str(p) for p in train_corpus]
    if synthetic:
        data["synthetic_corpora"] = [str(p) for p in synthetic]
    types = parse_entity_types(entity_types)
    if types:
        data["entity_types"] = types
    if context_chars is not None:
        data["context_chars"] = None if context_chars < 0 else context_chars
    mix = dict(data.get("mix") or {"human": 0.5, "synthetic": 0.5, "kb": 0.5})
    if synth_share is not None:
        mix["synthetic"], mix["human"] = synth_share, 1.0 - synth_share
    if kb_share is not None:
        mix["kb"] = kb_share
    data["mix"] = mix
    if out is not None:
        data["out"] = str(out)
        check_output(out, [config, dev_corpus, init, *train_corpus, *synthetic], stores=[kb], kind="run")
    cfg = TrainConfig.parse(data, where="genbel train")
    final = Trainer(cfg).train(resume=resume)
    from genbel.training.distributed import setup

    if setup(cfg.device).is_main:  # under torchrun: rank 0 reports
        typer.echo(str(final))


def synth_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Output BigBio JSONL file."),
    kb: str | None = typer.Option(None, "--kb", help="KB file or directory (default: the bundled KB)."),
    kb_format: str | None = typer.Option(None, "--kb-format"),
    generator: str = typer.Option("template", "--generator", "-g", help="template | hf:MODEL | openai:URL"),
    n: int = typer.Option(100, "--n", help="Number of synthetic documents."),
    per_concept: int = typer.Option(1, "--per-concept"),
    train_corpus: list[Path] = typer.Option(
        [], "--train-corpus", help="Concepts of these corpora come last."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model name the OpenAI-compatible endpoint serves."
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="Env variable holding the endpoint key."
    ),
    timeout: float = typer.Option(60.0, "--timeout"),
    retries: int = typer.Option(3, "--retries"),
    group: str | None = typer.Option(
        None, "--group", help="Entity type written (default: the concept's group)."
    ),
    case_sensitive: bool = typer.Option(False, "--case-sensitive", help="Reject case changes of the name."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Generate synthetic contextual examples (SynCABEL) for KB concepts; resumable."""
    from genbel.data import load_documents
    from genbel.kb import DEFAULT_KB_SPEC, open_kb
    from genbel.training.generators import make_generator
    from genbel.training.synth import synthesize

    check_output(out, list(train_corpus), stores=[kb])
    the_kb = open_kb(kb, kb_format) if kb else open_kb(DEFAULT_KB_SPEC)
    seen = [g for d in load_documents(train_corpus) for e in d.entities for g in e.gold_ids]
    gen = make_generator(
        generator,
        seed=seed,
        model=model,
        api_key=os.environ.get(api_key_env),
        timeout=timeout,
        retries=retries,
    )
    res = synthesize(
        the_kb,
        gen,
        out,
        n=n,
        per_concept=per_concept,
        seen_ids=seen,
        seed=seed,
        group=group,
        case_sensitive=case_sensitive,
    )
    typer.echo(json.dumps({"out": str(res.out), "documents": len(res.documents), **res.stats.to_dict()}))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("synth")(synth_cmd)
