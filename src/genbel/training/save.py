"""Write a trained model as a :class:`~genbel.linkers.generative.GenerativeLinker` directory.

The directory is what :meth:`GenerativeLinker.load` reads: ``genbel_linker.json`` (architecture,
``base_model``, prompt format, KB fingerprint), the weights — a full checkpoint, or a peft LoRA
adapter (``adapter_config.json`` + ``adapter_model.safetensors``, stored in fp16 by default: half the
size, no measurable change in the scores) applied over ``base_model`` at load time — the
tokenizer, and optionally ``text_to_code.json`` + ``trie/`` and ``kb/``. Without the trie the linker
builds it from the KB it is given at load time; without ``kb/`` a KB must be given to ``load``.
``training.json`` records the training config and data report; a model trained with memory prompts
(``genbel train --memory``) also has a ``memory_training`` record in ``genbel_linker.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from genbel.generation import saved
from genbel.generation.prompts import PromptFormat
from genbel.io import atomic_directory
from genbel.kb.base import KnowledgeBase

logger = logging.getLogger(__name__)


def save_linker(
    model: Any,
    tokenizer: Any,
    kb: KnowledgeBase,
    fmt: PromptFormat,
    architecture: str,
    base_model: str | None,
    out: str | Path,
    *,
    include_trie: bool = True,
    include_kb: bool = True,
    fp16_adapter: bool = True,
    training: dict | None = None,
    max_source_length: int = 512,
    memory_training: dict | None = None,
) -> Path:
    """Save ``model`` (a peft model → adapter only; else the full model) as a linker directory, atomically.

    The files are written by :func:`genbel.generation.saved.write_linker` (the adapter in fp16 with
    ``fp16_adapter``, pointing at the portable ``base_model``). ``memory_training`` records that the
    model was trained on document-level memory prompts (stored in ``genbel_linker.json``;
    :meth:`DocumentLinker.load <genbel.linkers.document.DocumentLinker.load>` then defaults to the
    training context window).
    """
    out = Path(out)
    was_training = model.training
    with atomic_directory(out) as d:
        trie = saved.build_trie(kb, tokenizer, tokenizer.eos_token_id, show_progress=True)
        saved.write_linker(
            d,
            model=model,
            tokenizer=tokenizer,
            kb=kb,
            trie=trie,
            architecture=architecture,
            prompt_format=fmt,
            base_model=base_model,
            max_source_length=max_source_length,
            max_target_length=saved.longest_target(trie),
            memory_training=memory_training,
            include_trie=include_trie,
            include_kb=include_kb,
            fp16_adapter=fp16_adapter,
            portable_adapter_base=True,
        )
        if training is not None:
            (d / "training.json").write_text(json.dumps(training, indent=2, default=str), encoding="utf-8")
    model.train(was_training)
    logger.info("saved the linker to %s", out)
    return out


def dir_size(path: str | Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def copy_linker(
    src: str | Path,
    dst: str | Path,
    *,
    drop: tuple[str, ...] = (saved.TRIE_DIR, saved.KB_DIR, saved.TEXT_TO_CODE_FILE, "README.md"),
) -> Path:
    """Copy a linker directory without the large, rebuildable parts (for shipping inside the package).

    The trie and ``text_to_code.json`` are rebuilt from the KB given to ``GenerativeLinker.load``; the
    ``README.md`` peft writes is a generic model-card template. ``adapter_config.json`` gets the
    portable ``base_model`` of ``genbel_linker.json``.
    """
    src = Path(src)
    with atomic_directory(dst) as d:
        for f in src.iterdir():
            if f.name in drop:
                continue
            if f.is_dir():
                shutil.copytree(f, d / f.name)
            else:
                shutil.copy2(f, d / f.name)
        meta = saved.read_linker_config(d)
        if saved.is_adapter_dir(d) and meta.get("base_model"):
            saved.set_adapter_base(d, meta["base_model"])
    return Path(dst)


__all__ = ["save_linker", "copy_linker", "dir_size"]
