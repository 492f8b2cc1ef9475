"""Cheaper linear layers for CPU decoding: bfloat16 weights (the default where the CPU computes bfloat16
natively) or int8 dynamic quantisation (opt-in).

Most of a beam-search step on CPU is the linear layers (the projections of every layer and the LM head:
69 % of the CPU time of genbel's beam-search loop at batch 8, ``torch.profiler``; 60 % of document-level
linking in ``benchmarks/profile_document.py``). After any LoRA adapter was merged into the base weights:

* ``quantize="bf16"`` stores every linear layer's weight (the LM head's too) in bfloat16 and computes
  it in bfloat16 (oneDNN, float32 accumulation): inputs are rounded to bfloat16, outputs come back as
  float32, so the layer norms, attention, softmax and the beam scores stay float32. Half the weight
  memory read per forward pass and about 1.5× the matrix-multiply throughput on CPUs with AVX-512 BF16
  or AMX. Scores move by the rounding of inputs and weights (8 mantissa bits); on the shipped default
  R@1 was unchanged (``docs/benchmarks.md``, "bfloat16 linear layers").
* ``quantize="auto"`` (the default of :meth:`GenerativeLinker.load`) is ``"bf16"`` when the model is a
  float32 model on CPU, its LoRA (if any) is merged, and torch reports native bfloat16 support
  (``torch.ops.mkldnn._is_mkldnn_bf16_supported()``: without it bfloat16 is emulated and slower);
  otherwise ``"none"``.
* ``quantize="int8"`` replaces each ``torch.nn.Linear`` but the output head by torch's dynamically
  quantised one (``torch.ao.quantization.quantize_dynamic``: int8 weights with one scale per output
  channel; activations quantised per call). It changes beams: a first version with per-tensor scales and
  a quantised head lost 7.8 R@1 on 64 NCBI-disease dev mentions, the kept one 6.2; not on by default.
  A quantised model is for inference only: teacher-forced scoring works, saliency maps (gradients) do not.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from genbel.errors import ConfigError, Errors

logger = logging.getLogger(__name__)

#: the values of ``quantize`` (``None`` = ``"none"``)
QUANTIZATIONS = ("none", "auto", "bf16", "int8")


class BFloat16Linear(torch.nn.Module):
    """A ``torch.nn.Linear`` whose weight is kept in bfloat16: float32 (any dtype) in, the same dtype out,
    the product computed in bfloat16 with float32 accumulation. Inference only (no weight gradients;
    gradients still flow to the input, for saliency maps)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = torch.nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = linear.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.to(torch.bfloat16), self.weight).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def bf16_supported() -> bool:
    """Whether this torch computes bfloat16 matrix products natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve(mode: str | None, model: Any) -> str:
    """The concrete mode (``"none"``, ``"bf16"`` or ``"int8"``) of ``mode`` for ``model`` (E633 for an
    unknown value)."""
    mode = "none" if mode is None else str(mode).strip().lower()
    if mode not in QUANTIZATIONS:
        raise ConfigError(Errors.E633.format(value=mode, known=", ".join(QUANTIZATIONS)))
    if mode != "auto":
        return mode
    try:
        param = next(model.parameters())
    except StopIteration:
        return "none"
    unmerged = any("lora_" in name for name, _ in model.named_modules())
    plain = param.device.type == "cpu" and param.dtype == torch.float32 and not unmerged
    return "bf16" if plain and bf16_supported() else "none"


def quantize_model(model: Any, mode: str | None) -> Any:
    """``model`` with its linear layers changed as ``mode`` says (``None``/``"none"``: unchanged; see the
    module docstring; E633 for an unknown mode). The model is changed in place and returned, in eval mode."""
    mode = resolve(mode, model)
    if mode == "none":
        return model
    model.eval()
    if mode == "bf16":
        return _to_bfloat16(model)
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

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


def _to_bfloat16(model: Any) -> Any:
    """Every ``torch.nn.Linear`` of ``model`` (the output head too) replaced by a :class:`BFloat16Linear`.
    A head tied to the input embeddings is untied: the embeddings stay float32."""
    n = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, BFloat16Linear(child))
                n += 1
    if getattr(model.config, "tie_word_embeddings", False):
        model.config.tie_word_embeddings = False  # so that nothing re-ties the head to the embeddings
    logger.debug("bfloat16 linear layers: %d", n)
    return model


def quantization_of(model: Any) -> str:
    """``"int8"``, ``"bf16"`` or ``"none"``: how ``model``'s linear layers are stored."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    if any(isinstance(m, QLinear) for m in model.modules()):
        return "int8"
    if any(isinstance(m, BFloat16Linear) for m in model.modules()):
        return "bf16"
    return "none"


def is_quantized(model: Any) -> bool:
    """Whether ``model`` holds dynamically quantised (int8) linear layers."""
    return quantization_of(model) == "int8"
