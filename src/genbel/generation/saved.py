"""The saved generative-linker directory: the one place that writes and reads it.

A directory holds:

``genbel_linker.json``
    architecture (``causal`` | ``seq2seq``), ``base_model`` reference, prompt format, KB name and
    fingerprint, maximum source/target lengths, and ``memory_training`` for models trained on
    document-level memory prompts;
model weights
    a full checkpoint (``config.json`` + ``model.safetensors``) or a peft LoRA adapter
    (``adapter_config.json`` + ``adapter_model.safetensors``) over ``base_model``;
tokenizer files — left out of a LoRA adapter over a packaged base model (``smollm2-135m``…) whose
    tokenizer is the base's own: ``genbel_linker.json`` then records ``tokenizer: {"from_base": true,
    "fingerprint": …}`` and :func:`read_linker` loads the base's tokenizer, checking the fingerprint
    (``E562``). Such an adapter needs its base model installed anyway; every other linker (full
    checkpoints, hub or local bases, tokens added at training) keeps its own tokenizer files and stays
    self-contained. An adapter saved without tokenizer files and without that record also loads
    the base's tokenizer (unchecked);
``trie/`` and ``text_to_code.json`` (optional: the :class:`~genbel.trie.CandidateTrie` and its KB
name → concept codes map, the model-card asset); ``kb/`` (optional: the KB store).

:func:`write_linker` writes these files (used by
:meth:`GenerativeLinker.save <genbel.linkers.generative.GenerativeLinker.save>`, training's
:func:`~genbel.training.save.save_linker` and the Hugging Face export
:func:`~genbel.linkers.hf_export.export_linker`); :func:`read_linker` reads them back (used by
:meth:`GenerativeLinker.load <genbel.linkers.generative.GenerativeLinker.load>`). The model
architecture is detected by :func:`architecture_of` and a LoRA adapter's base model resolved by
:func:`lora_base`, for the linker and for training (``training.model.load_model_and_tokenizer``)
alike.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbel.errors import ConfigError, Errors, IndexMismatchError
from genbel.generation.prompts import PromptFormat
from genbel.kb.base import KnowledgeBase
from genbel.textio import read_json

logger = logging.getLogger(__name__)

CONFIG_FILE = "genbel_linker.json"
TEXT_TO_CODE_FILE = "text_to_code.json"
TRIE_DIR = "trie"
KB_DIR = "kb"
MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FORMAT_VERSION = 1
#: text whose token ids enter :func:`tokenizer_fingerprint` (prompt markup, accents, digits, Greek)
_PROBE = "[Myocardial infarction]{Disorders}\nmention is heart attack</s> Crohn's ß-thalassaemia 46,XY αβ 123"


# ---------------------------------------------------------------------------------------------- models
def architecture_of(config: Any) -> str:
    """``"seq2seq"`` for an encoder-decoder model config, else ``"causal"``."""
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def model_class(architecture: str) -> type:
    """The transformers auto class that loads models of ``architecture``."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if architecture == "seq2seq" else AutoModelForCausalLM


def check_generative(config: Any, model: str | os.PathLike) -> None:
    """Refuse a checkpoint that cannot generate (an encoder-only model such as BERT): ``E253``."""
    if architecture_of(config) == "causal" and not any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or []
    ):
        if config.architectures:
            raise ConfigError(Errors.E253.format(model=model, model_type=config.model_type))


def load_pretrained(ref: str | os.PathLike, dtype: Any | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a plain Hugging Face checkpoint: a local path, a packaged alias
    (:func:`genbel.models.resolve_model`) or a hub id; encoder-only checkpoints are refused."""
    from transformers import AutoConfig, AutoTokenizer

    from genbel.models import loading, resolve_model

    resolved = resolve_model(ref)
    with loading(ref, "generative model"):
        config = AutoConfig.from_pretrained(resolved)
        check_generative(config, ref)
        tokenizer = AutoTokenizer.from_pretrained(resolved)
        auto = model_class(architecture_of(config))
        model = auto.from_pretrained(resolved, dtype=dtype) if dtype else auto.from_pretrained(resolved)
    return model, tokenizer


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` holds a peft LoRA adapter (``adapter_config.json``) rather than full weights."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def lora_base(path: str | os.PathLike, config: dict, default: str | None = None) -> str | None:
    """The base model reference of the LoRA adapter in ``path``: ``base_model`` of its
    ``genbel_linker.json`` (``config``), else ``default``, else the adapter's own
    ``base_model_name_or_path``."""
    ref = config.get("base_model") or default
    if ref:
        return ref
    adapter = Path(path) / ADAPTER_CONFIG
    if not adapter.is_file():
        return None
    return read_json(adapter, expect=dict).get("base_model_name_or_path")


def load_model(path: Path, config: dict, tokenizer: Any, merge_lora: bool = True) -> Any:
    """The model of a linker directory: its full checkpoint, or its LoRA adapter applied over the
    base model (:func:`lora_base`) and merged when ``merge_lora``."""
    auto = model_class(config.get("architecture", "causal"))
    if not is_adapter_dir(path):
        if not (path / MODEL_CONFIG).is_file():
            raise ConfigError(Errors.E251.format(path=path, missing="config.json or adapter_config.json"))
        return auto.from_pretrained(path)
    from peft import PeftModel

    from genbel.models import resolve_model

    base_ref = lora_base(path, config)
    if not base_ref:
        raise ConfigError(Errors.E251.format(path=path, missing=f"base_model in {CONFIG_FILE}"))
    base = auto.from_pretrained(resolve_model(base_ref))
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:  # tokens added at training time
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, path)
    return model.merge_and_unload() if merge_lora else model


# ---------------------------------------------------------------------------------------------- tokenizer
def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of what decoding depends on: the vocabulary, the special token ids, the padding
    side and the ids of a probe text. Two tokenizers with one fingerprint give the same token ids
    (however their files are serialised)."""
    import hashlib

    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode("utf-8"))
    special = [tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id,
               getattr(tokenizer, "padding_side", None), len(tokenizer)]
    h.update(json.dumps(special).encode("utf-8"))
    h.update(json.dumps(tokenizer(_PROBE, add_special_tokens=True)["input_ids"]).encode("utf-8"))
    return h.hexdigest()[:16]


def base_tokenizer(base_model: str) -> Any:
    """The tokenizer of a base model reference (a packaged alias, a path or a hub id)."""
    from transformers import AutoTokenizer

    from genbel.models import loading, resolve_model

    with loading(base_model, "base model tokenizer"):
        return AutoTokenizer.from_pretrained(resolve_model(base_model))


def shares_base_tokenizer(tokenizer: Any, base_model: str | None, is_adapter: bool) -> str | None:
    """The fingerprint to record when a linker can leave out its tokenizer files, else ``None``: it is a
    LoRA adapter (which needs its base anyway) over a packaged base model whose tokenizer gives the same
    fingerprint."""
    from genbel.models import PACKAGED

    if not is_adapter or base_model not in PACKAGED:
        return None
    fp = tokenizer_fingerprint(tokenizer)
    try:
        same = tokenizer_fingerprint(base_tokenizer(base_model)) == fp
    except Exception as e:  # noqa: BLE001 - any failure: keep the tokenizer files (self-contained)
        logger.info("cannot compare with the tokenizer of %s (%s); saving the tokenizer files", base_model, e)
        return None
    return fp if same else None


def read_tokenizer(path: Path, cfg: dict) -> Any:
    """The tokenizer of a linker directory: its own files, or its base model's (checked against the
    recorded fingerprint, ``E562``)."""
    from transformers import AutoTokenizer

    if (path / "tokenizer_config.json").is_file() or not cfg.get("base_model"):
        return AutoTokenizer.from_pretrained(path)
    tokenizer = base_tokenizer(cfg["base_model"])  # an adapter saved without its tokenizer: the base's
    expected = (cfg.get("tokenizer") or {}).get("fingerprint")
    if expected:
        actual = tokenizer_fingerprint(tokenizer)
        if actual != expected:
            raise ConfigError(Errors.E562.format(path=path, base=cfg["base_model"], expected=expected, actual=actual))
    return tokenizer


# ---------------------------------------------------------------------------------------------- trie
def build_trie(kb: KnowledgeBase, tokenizer: Any, eos_token_id: int, show_progress: bool = False) -> Any:
    """The candidate trie of ``kb``: every name as the generation target :meth:`PromptFormat.target`."""
    from genbel.trie import CandidateTrie

    return CandidateTrie.from_kb(
        kb, tokenizer, target=PromptFormat.target, eos_token_id=eos_token_id, show_progress=show_progress
    )


def longest_target(trie: Any) -> int:
    """Tokens in the longest target of ``trie`` (EOS included; 1 for an empty trie)."""
    t = trie.trie
    if t.num_nodes <= 1:
        return 1
    return int(t.max_depth)  # TokenTrie: the depth of its last node; TailTrie: stored at build


# ---------------------------------------------------------------------------------------------- writing
def save_linker_config(
    path: str | Path,
    *,
    architecture: str,
    prompt_format: PromptFormat,
    base_model: str | None = None,
    kb_fingerprint: str | None = None,
    kb_name: str | None = None,
    max_source_length: int = 512,
    max_target_length: int = 64,
    memory_training: dict | None = None,
    tokenizer_fingerprint: str | None = None,
) -> Path:
    """Write ``genbel_linker.json`` into ``path`` (for trainers that save adapter + tokenizer themselves).

    A directory with this file, the model (full checkpoint or a peft LoRA adapter over
    ``base_model``) and the tokenizer loads with :func:`read_linker`; the trie and
    ``text_to_code.json`` are then built from the KB given to it when absent. ``memory_training`` (a
    model trained with document-level memory prompts, ``genbel train --memory``) is stored as is.
    ``tokenizer_fingerprint`` records that the directory has no tokenizer files and uses its base
    model's (:func:`shares_base_tokenizer`).
    """
    from genbel._version import __version__

    cfg = {
        "format": "genbel.GenerativeLinker",
        "format_version": FORMAT_VERSION,
        "genbel_version": __version__,
        "architecture": architecture,
        "base_model": base_model,
        "prompt_format": prompt_format.to_dict(),
        "kb": {"name": kb_name, "fingerprint": kb_fingerprint},
        "max_source_length": max_source_length,
        "max_target_length": max_target_length,
    }
    if memory_training:
        cfg["memory_training"] = dict(memory_training)
    if tokenizer_fingerprint:
        cfg["tokenizer"] = {"from_base": True, "fingerprint": tokenizer_fingerprint}
    p = Path(path) / CONFIG_FILE
    p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
    return p


def check_replaceable(path: Path) -> None:
    """Refuse to overwrite anything but a missing/empty directory or an earlier linker directory."""
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / CONFIG_FILE).is_file())):
        raise ConfigError(Errors.E256.format(path=path))


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


def set_adapter_base(d: Path, base_model: str) -> None:
    """Point the adapter in ``d`` at ``base_model``: the portable reference (an alias such as
    ``"smollm2-135m"``), not the cache path of the machine it was trained on."""
    f = d / ADAPTER_CONFIG
    acfg = read_json(f, expect=dict)
    acfg["base_model_name_or_path"] = base_model
    f.write_text(json.dumps(acfg, indent=2), encoding="utf-8")


def write_linker(
    d: str | Path,
    *,
    model: Any,
    tokenizer: Any,
    kb: KnowledgeBase,
    trie: Any,
    architecture: str,
    prompt_format: PromptFormat,
    base_model: str | None,
    max_source_length: int,
    max_target_length: int,
    memory_training: dict | None = None,
    include_trie: bool = True,
    include_kb: bool = True,
    fp16_adapter: bool = False,
    portable_adapter_base: bool = False,
) -> None:
    """Write a linker's files into the existing directory ``d`` (not atomic: callers wrap it).

    A peft model is saved as its adapter (in fp16 with ``fp16_adapter``; its
    ``adapter_config.json`` pointing at ``base_model`` with ``portable_adapter_base``), any other model
    as a full checkpoint. ``base_model`` defaults to the adapter's own base. ``text_to_code.json`` is
    a hard link to the trie's copy where the file system allows it.
    """
    d = Path(d)
    peft_cfg = getattr(model, "peft_config", None)
    model.save_pretrained(d)
    if peft_cfg and fp16_adapter and (d / ADAPTER_WEIGHTS).exists():
        adapter_to_fp16(d)
    if peft_cfg and portable_adapter_base and base_model and (d / ADAPTER_CONFIG).exists():
        set_adapter_base(d, base_model)
    if peft_cfg and not base_model:
        base_model = next(iter(peft_cfg.values())).base_model_name_or_path
    shared_fp = shares_base_tokenizer(tokenizer, base_model, is_adapter=bool(peft_cfg) and is_adapter_dir(d))
    if shared_fp is None:
        tokenizer.save_pretrained(d)
    else:
        logger.info("the tokenizer is %s's own: not saved (recorded by its fingerprint %s)", base_model, shared_fp)
    if include_trie:
        trie.save(d / TRIE_DIR)
        try:  # the model-card asset; a hard link to the trie's copy costs no space
            os.link(d / TRIE_DIR / TEXT_TO_CODE_FILE, d / TEXT_TO_CODE_FILE)
        except OSError:
            shutil.copyfile(d / TRIE_DIR / TEXT_TO_CODE_FILE, d / TEXT_TO_CODE_FILE)
    if include_kb:
        kb.save(d / KB_DIR)
    save_linker_config(
        d,
        architecture=architecture,
        prompt_format=prompt_format,
        base_model=base_model,
        kb_fingerprint=kb.fingerprint(),
        kb_name=kb.name,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        memory_training=memory_training,
        tokenizer_fingerprint=shared_fp,
    )


# ---------------------------------------------------------------------------------------------- reading
def is_linker_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a saved linker directory (it has ``genbel_linker.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()


def read_linker_config(path: str | Path) -> dict:
    """The parsed ``genbel_linker.json`` of ``path`` (``E251`` when missing, ``E013`` when invalid)."""
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise ConfigError(Errors.E251.format(path=path, missing=CONFIG_FILE))
    return read_json(cfg_file, expect=dict)


@dataclass
class SavedLinker:
    """What :func:`read_linker` reads: the model, tokenizer, KB, trie (None: build it for the KB)
    and the settings of ``genbel_linker.json``."""

    model: Any
    tokenizer: Any
    kb: KnowledgeBase
    trie: Any | None
    config: dict = field(default_factory=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The linker settings the directory records (prompt format, base model, lengths)."""
        return {
            "prompt_format": PromptFormat.from_dict(self.config.get("prompt_format") or {}),
            "base_model": self.config.get("base_model"),
            "max_source_length": self.config.get("max_source_length", 512),
            "max_target_length": self.config.get("max_target_length"),
        }

    @property
    def memory_training(self) -> dict | None:
        return self.config.get("memory_training") or None


def read_linker(
    path: str | Path,
    kb: KnowledgeBase | None = None,
    *,
    model: Any | None = None,
    merge_lora: bool = True,
) -> SavedLinker:
    """Read a linker directory (see the module docstring).

    The model is ``model`` if given (e.g. the exported model class that is reading its own folder),
    else the directory's full checkpoint, or its LoRA adapter over ``base_model``, merged with
    ``merge_lora``. The KB is ``kb`` or the saved ``kb/``; the trie is loaded (memory-mapped) when it
    was built for that KB, else left None to be rebuilt. The tokenizer is the directory's own, or its
    base model's (:func:`read_tokenizer`).
    """
    path = Path(path)
    cfg = read_linker_config(path)
    if kb is None:
        if not (path / KB_DIR).is_dir():
            raise ConfigError(Errors.E251.format(path=path, missing=f"{KB_DIR}/ (or pass a KB)"))
        kb = KnowledgeBase.load(path / KB_DIR)
    tokenizer = read_tokenizer(path, cfg)
    if model is None:
        model = load_model(path, cfg, tokenizer, merge_lora)
    trie = None
    if (path / TRIE_DIR).is_dir():
        from genbel.trie import CandidateTrie

        try:
            trie = CandidateTrie.load(path / TRIE_DIR, mmap=True, expected_fingerprint=kb.fingerprint())
        except IndexMismatchError:
            logger.info("KB %s differs from the one saved with %s; building a trie for it", kb.name, path)
    return SavedLinker(model, tokenizer, kb, trie, cfg)
