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
from pathlib import Path

from genbel.kb.base import KnowledgeBase
from genbel.linkers.prompts import PromptFormat
from genbel.io import atomic_directory

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def adapter_to_fp16(d: Path) -> None:
    """Rewrite a saved peft adapter's weights in fp16 (in place)."""
    from safetensors.torch import load_file, save_file

    f = d / ADAPTER_WEIGHTS
    sd = load_file(f)
    save_file(
        {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
        f,
        metadata={"format": "pt"},
    )


def save_linker(
    model,
    tokenizer,
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

    ``memory_training`` records that the model was trained on document-level memory prompts (stored in
    ``genbel_linker.json``; :meth:`DocumentLinker.load <genbel.linkers.document.DocumentLinker.load>`
    then defaults to the training context window).
    """
    from genbel.linkers.generative import CONFIG_FILE, KB_DIR, TEXT_TO_CODE_FILE, TRIE_DIR, save_linker_config
    from genbel.trie import CandidateTrie

    out = Path(out)
    is_peft = hasattr(model, "peft_config")
    was_training = model.training
    with atomic_directory(out) as d:
        model.save_pretrained(d)
        if is_peft and fp16_adapter and (d / ADAPTER_WEIGHTS).exists():
            adapter_to_fp16(d)
        if is_peft and base_model and (d / "adapter_config.json").exists():
            # the portable reference (an alias such as "smollm2-135m"), not this machine's cache path
            acfg = json.loads((d / "adapter_config.json").read_text(encoding="utf-8"))
            acfg["base_model_name_or_path"] = base_model
            (d / "adapter_config.json").write_text(json.dumps(acfg, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(d)
        eos = tokenizer.eos_token_id
        trie = CandidateTrie.from_kb(kb, tokenizer, target=PromptFormat.target, eos_token_id=eos)
        if include_trie:
            trie.save(d / TRIE_DIR)
            (d / TEXT_TO_CODE_FILE).write_text(
                json.dumps(trie.text_to_code, ensure_ascii=False), encoding="utf-8"
            )
        if include_kb:
            kb.save(d / KB_DIR)
        longest = _longest(trie)
        save_linker_config(
            d,
            architecture=architecture,
            prompt_format=fmt,
            base_model=base_model,
            kb_fingerprint=kb.fingerprint(),
            kb_name=kb.name,
            max_source_length=max_source_length,
            max_target_length=longest,
            memory_training=memory_training,
        )
        if training is not None:
            (d / "training.json").write_text(json.dumps(training, indent=2, default=str), encoding="utf-8")
        assert (d / CONFIG_FILE).exists()
    model.train(was_training)
    logger.info("saved the linker to %s", out)
    return out


def _longest(trie) -> int:
    t = trie.trie
    if t.num_nodes <= 1:
        return 1
    return len(t.path(t.num_nodes - 1))


def dir_size(path: str | Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def copy_linker(
    src: str | Path,
    dst: str | Path,
    *,
    drop: tuple[str, ...] = ("trie", "kb", "text_to_code.json", "README.md"),
) -> Path:
    """Copy a linker directory without the large, rebuildable parts (for shipping inside the package).

    The trie and ``text_to_code.json`` are rebuilt from the KB given to ``GenerativeLinker.load``; the
    ``README.md`` peft writes is a generic model-card template. ``adapter_config.json`` gets the
    portable ``base_model`` of ``genbel_linker.json``.
    """
    import shutil

    from genbel.io import atomic_directory as _atomic

    src = Path(src)
    with _atomic(dst) as d:
        for f in src.iterdir():
            if f.name in drop:
                continue
            if f.is_dir():
                shutil.copytree(f, d / f.name)
            else:
                shutil.copy2(f, d / f.name)
        meta = json.loads((d / "genbel_linker.json").read_text(encoding="utf-8"))
        acfg_file = d / "adapter_config.json"
        if acfg_file.exists() and meta.get("base_model"):
            acfg = json.loads(acfg_file.read_text(encoding="utf-8"))
            acfg["base_model_name_or_path"] = meta["base_model"]
            acfg_file.write_text(json.dumps(acfg, indent=2), encoding="utf-8")
    return Path(dst)


__all__ = ["save_linker", "copy_linker", "adapter_to_fp16", "dir_size"]
