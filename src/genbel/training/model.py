"""The model of a generative-linker run and its loss.

:func:`load_model_and_tokenizer` starts from a base model, a saved linker or a run (full weights or a
LoRA adapter, resolved by :mod:`genbel.generation.saved`) and adds a LoRA adapter when configured;
:func:`compute_loss` is the token cross-entropy on the target name + EOS only.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
import torch.nn.functional as F

from genbel.errors import ConfigError, Errors
from genbel.training.config import TrainConfig
from genbel.training.encode import IGNORE


def load_model_and_tokenizer(cfg: TrainConfig, model=None, tokenizer=None):
    """``(model, tokenizer, architecture, base_model_ref)``; LoRA applied when configured.

    ``cfg.init`` may name a genbel linker directory (or a run directory, whose ``final/`` is used):
    its weights — a full checkpoint or a LoRA adapter over its base model — are the starting point.
    """
    from transformers import AutoConfig, AutoTokenizer

    from genbel.generation import saved
    from genbel.models import resolve_model

    base_ref = cfg.base_model
    adapter_dir: Path | None = None
    if model is None:
        src = resolve_model(cfg.base_model)
        if cfg.init:
            init = Path(cfg.init)
            if (init / "final").is_dir():
                init = init / "final"
            if not saved.is_linker_dir(init):
                raise ConfigError(Errors.E358.format(path=init, what="it", reason=f"no {saved.CONFIG_FILE}"))
            info = saved.read_linker_config(init)
            if saved.is_adapter_dir(init):
                base_ref = saved.lora_base(init, info, default=cfg.base_model)
                src = resolve_model(base_ref)
                adapter_dir = init
            else:
                src = str(init)
                base_ref = str(init)
        arch = cfg.architecture or saved.architecture_of(AutoConfig.from_pretrained(src))
        model = saved.model_class(arch).from_pretrained(src, dtype=torch.float32)
        if tokenizer is None:
            # an adapter saved without its tokenizer files (the shipped default) reads its base model's
            tokenizer = (
                saved.read_tokenizer(adapter_dir, info) if adapter_dir is not None else AutoTokenizer.from_pretrained(src)
            )
    else:
        arch = cfg.architecture or saved.architecture_of(model.config)
        if tokenizer is None:
            raise ConfigError(
                Errors.E357.format(field="tokenizer", reason="a tokenizer must come with a model object")
            )
    if cfg.lora:
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model

        if adapter_dir is not None:
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
        else:
            targets = cfg.lora_targets or _linear_targets(model)
            lcfg = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=targets,
                task_type=TaskType.SEQ_2_SEQ_LM if arch == "seq2seq" else TaskType.CAUSAL_LM,
            )
            model = get_peft_model(model, lcfg)
    elif adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return model, tokenizer, arch, base_ref


def _linear_targets(model) -> list[str]:
    """Names of the linear sub-modules LoRA adapts: attention and MLP projections (not the LM head)."""
    names: set[str] = set()
    skip = {"lm_head", "embed_out", "output", "classifier"}
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) or type(m).__name__ in ("Conv1D",):
            leaf = n.rsplit(".", 1)[-1]
            if leaf not in skip:
                names.add(leaf)
    if not names:
        raise ConfigError(
            Errors.E357.format(field="lora_targets", reason="no linear layer found in the model")
        )
    return sorted(names)


def _accepts(model, arg: str) -> bool:
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module  # the model inside the wrapper
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return arg in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def compute_loss(
    model,
    batch: dict[str, torch.Tensor],
    architecture: str,
    label_smoothing: float = 0.0,
    keep_logits: bool | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean cross-entropy over target tokens (labels != -100); ``reduction="sum"`` gives their sum
    (a share of a batch split over several processes, divided by the whole batch's token count)."""
    labels = batch["labels"]
    if architecture == "causal":
        kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if "position_ids" in batch and _accepts(model, "position_ids"):
            kw["position_ids"] = batch["position_ids"]
        k = int(batch["n_target"]) + 1
        if keep_logits is None:
            keep_logits = _accepts(model, "logits_to_keep")
        if keep_logits:
            logits = model(**kw, logits_to_keep=k).logits
        else:
            logits = model(**kw).logits[:, -k:]
        lab = labels[:, -k:]
        logits = logits[:, :-1]
        lab = lab[:, 1:]
    else:
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
            decoder_attention_mask=batch["decoder_attention_mask"],
        ).logits
        lab = labels
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        lab.reshape(-1),
        ignore_index=IGNORE,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )
