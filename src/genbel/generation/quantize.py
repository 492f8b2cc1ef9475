"""Int8 dynamic quantisation of a generative model's linear layers for CPU decoding.

Most of a beam-search step on CPU is the linear layers (the projections of every layer and the LM head:
60 % of document-level linking in ``benchmarks/profile_document.py``). ``quantize="int8"`` replaces each
``torch.nn.Linear`` but the output head by torch's dynamically quantised one
(``torch.ao.quantization.quantize_dynamic``: int8 weights with one scale per output channel; activations
quantised per call), after any LoRA adapter was merged into the base weights. Embeddings, layer norms
and the head (whose logits rank the trie's tokens) stay in float. Scores move, so beams can change: a
first version with per-tensor scales and a quantised head lost 7.8 R@1 on 64 NCBI-disease dev mentions;
``docs/benchmarks.md`` has the figures. Not on by default.

A quantised model is for inference only: teacher-forced scoring works, saliency maps (gradients) do not.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from genbel.errors import ConfigError, Errors

#: the values of ``quantize`` (``None`` = ``"none"``)
QUANTIZATIONS = ("none", "int8")


def quantize_model(model: Any, mode: str | None) -> Any:
    """``model`` with its linear layers quantised as ``mode`` says (``None``/``"none"``: unchanged; E633
    for an unknown mode). The model is changed in place and returned, in eval mode."""
    mode = "none" if mode is None else str(mode).strip().lower()
    if mode not in QUANTIZATIONS:
        raise ConfigError(Errors.E633.format(value=mode, known=", ".join(QUANTIZATIONS)))
    if mode == "none":
        return model
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model.eval()
    # every linear layer but the output head (its logits rank the trie's tokens), one scale per output channel
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    spec = {
        name: per_channel_dynamic_qconfig
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    }
    with warnings.catch_warnings():  # torch marks its quantised tensor types as deprecated (still supported)
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def is_quantized(model: Any) -> bool:
    """Whether ``model`` holds dynamically quantised linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return any(isinstance(m, QLinear) for m in model.modules())
