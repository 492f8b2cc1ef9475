"""Int8 dynamic quantisation of a generative model's linear layers for CPU decoding.

Most of a beam-search step on CPU is the linear layers (the projections of every layer and the LM head:
60 % of document-level linking in ``benchmarks/profile_document.py``). ``quantize="int8"`` replaces each
``torch.nn.Linear`` by torch's dynamically quantised one (``torch.ao.quantization.quantize_dynamic``:
int8 weights, per-tensor scale; activations quantised per call), after any LoRA adapter was merged into
the base weights. Embeddings and layer norms stay in float. Scores move slightly, so beams can change;
``docs/benchmarks.md`` has the speed and R@1 measured against the float model on the same mentions.

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
    from torch.ao.quantization import quantize_dynamic

    model.eval()
    with warnings.catch_warnings():  # torch marks its quantised tensor types as deprecated (still supported)
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def is_quantized(model: Any) -> bool:
    """Whether ``model`` holds dynamically quantised linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return any(isinstance(m, QLinear) for m in model.modules())
