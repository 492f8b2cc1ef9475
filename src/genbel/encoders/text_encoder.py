"""A Hugging Face encoder that maps short strings (KB names, mentions) to L2-normalised vectors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbel.encoders import weights as w
from genbel.encoders.projection import PROJECTION_FILE, OutputProjection
from genbel.errors import ConfigError, Errors
from genbel.io import atomic_dir
from genbel.textio import read_json

POOLINGS = ("mean", "cls")


class TextEncoder:
    """A Hugging Face encoder that maps short strings to L2-normalised vectors.

    ``pooling`` is ``"mean"`` (mask-aware mean of the last hidden states) or ``"cls"``; inputs are
    truncated to ``max_length`` tokens (BioSyn and SapBERT use 25). :meth:`embed` keeps the
    autograd graph (training); :meth:`encode` is the batched, length-sorted inference path.
    ``projection`` (an :class:`~genbel.encoders.projection.OutputProjection`) maps every pooled unit
    vector to a smaller unit vector (:attr:`dim` is then its size). Save with :meth:`save`, load with
    :meth:`load`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        max_length: int = 25,
        batch_size: int = 128,
        source: str = "",
        projection: OutputProjection | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ConfigError(
                Errors.E022.format(value=pooling, field="pooling", known=", ".join(POOLINGS))
            )
        if max_length < 2:
            raise ConfigError(Errors.E023.format(value=max_length, field="max_length", constraint=">= 2"))
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.source = source
        self.projection: OutputProjection | None = None
        self._proj: tuple[torch.Tensor, torch.Tensor] | None = None
        self.set_projection(projection)

    def set_projection(self, projection: OutputProjection | None) -> None:
        """Use ``projection`` on every vector from now on (``None``: the pooled vectors as they are);
        E460 when it does not take vectors of the model's hidden size."""
        hidden = int(self.model.config.hidden_size)
        if projection is not None and projection.in_dim != hidden:
            raise ConfigError(Errors.E460.format(
                path="<projection>", reason=f"it takes vectors of size {projection.in_dim}, the encoder gives {hidden}"))
        self.projection = projection
        self._proj = None if projection is None else (
            torch.from_numpy(np.ascontiguousarray(projection.mean)),
            torch.from_numpy(np.ascontiguousarray(projection.matrix)),
        )

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        *,
        pooling: str = "auto",
        max_length: int | None = None,
        batch_size: int = 128,
        projection: OutputProjection | str | Path | None = None,
    ) -> TextEncoder:
        """Load a local checkpoint or packaged alias (``minilm``), in any format of
        :mod:`genbel.encoders.weights`.

        ``pooling="auto"`` takes the pooling saved by genbel (``genbel_encoder.json``), else a
        sentence-transformers ``1_Pooling/config.json``, else mean pooling. A delta directory
        (``weights: delta`` / ``delta-int8``, written by :func:`genbel.encoders.delta_encoder`)
        loads its base model (alias or directory), applies the stored tensors and uses the base's
        tokenizer. ``projection`` (a file or an
        :class:`~genbel.encoders.projection.OutputProjection`) is applied to every vector; by default
        the one saved with the encoder (``projection`` in ``genbel_encoder.json``), if any.
        """
        from transformers import AutoModel, AutoTokenizer

        from genbel.models import loading, resolve_model

        path = resolve_model(name_or_path)
        p = Path(path)
        saved = w.read_encoder_config(p)
        if pooling == "auto":
            pooling = saved.get("pooling") or _sentence_transformers_pooling(p) or "mean"
        if max_length is None:
            max_length = int(saved.get("max_length", 25))
        if w.is_delta(saved):
            model, path = w.load_delta(p, saved)  # the tokenizer is the base model's
        elif saved.get("weights") == w.INT8_WEIGHTS:
            model = w.load_int8(p)
        else:
            with loading(name_or_path, "text encoder"):
                model = AutoModel.from_pretrained(path, dtype=torch.float32)
        with loading(path, "tokenizer"):
            tokenizer = AutoTokenizer.from_pretrained(path)
        model.eval()
        if projection is None and saved.get("projection"):
            projection = p / str(saved["projection"])
        if projection is not None and not isinstance(projection, OutputProjection):
            projection = OutputProjection.load(projection, in_dim=int(model.config.hidden_size))
        return cls(
            model, tokenizer, pooling=pooling, max_length=max_length, batch_size=batch_size,
            source=str(name_or_path), projection=projection,
        )

    @property
    def dim(self) -> int:
        """The size of the vectors (the projection's output size when there is one)."""
        if self.projection is not None:
            return self.projection.out_dim
        return int(self.model.config.hidden_size)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            v = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            v = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        v = torch.nn.functional.normalize(v, dim=-1)
        if self._proj is not None:
            mean, matrix = self._proj
            v = torch.nn.functional.normalize((v - mean.to(v.dtype)) @ matrix.to(v.dtype), dim=-1)
        return v

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def embed(self, texts: Sequence[str], model: torch.nn.Module | None = None) -> torch.Tensor:
        """``(len(texts), dim)`` unit vectors, with gradients (call in train mode for training);
        ``model`` runs instead of :attr:`model` (e.g. it wrapped in DistributedDataParallel)."""
        batch = self.tokenize(texts)
        out = (model or self.model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self._pool(out.last_hidden_state, batch["attention_mask"])

    def encode(
        self, texts: Sequence[str], progress: bool | None = None, desc: str = "embedding"
    ) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; batches of similar length, no gradients."""
        from tqdm.auto import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        was_training = self.model.training
        self.model.eval()
        show = progress if progress is not None else len(texts) > 20 * self.batch_size
        try:
            with torch.inference_mode():
                starts = range(0, len(order), self.batch_size)
                for s in tqdm(starts, desc=desc, unit="batch", disable=not show):
                    idx = order[s : s + self.batch_size]
                    out[idx] = self.embed([texts[i] for i in idx]).float().numpy()
        finally:
            self.model.train(was_training)
        return out

    def save(self, path: str | Path) -> Path:
        """Save model, tokenizer and pooling settings (atomic) so :meth:`load` restores them."""

        def write(d: Path) -> None:
            self.model.save_pretrained(d)
            self.tokenizer.save_pretrained(d)
            info: dict[str, Any] = {"pooling": self.pooling, "max_length": self.max_length}
            if self.projection is not None:
                self.projection.save(d / PROJECTION_FILE)
                info["projection"] = PROJECTION_FILE
            w.write_encoder_config(d, info)

        return atomic_dir(path, write)


def encoder_fingerprint(encoder: TextEncoder) -> str:
    """SHA-256 (hex) of what an encoder's embeddings depend on: its weights (as loaded, so a delta or
    int8 export and its base are covered), its tokenizer, pooling, maximum length and output
    projection."""
    h = hashlib.sha256(w.state_fingerprint(encoder.model.state_dict()).encode())
    h.update(json.dumps(w.tokenizer_spec(encoder.tokenizer), sort_keys=True).encode()
             if getattr(encoder.tokenizer, "backend_tokenizer", None) is not None
             else json.dumps(sorted(encoder.tokenizer.get_vocab().items())).encode())
    h.update(f"|{encoder.pooling}|{encoder.max_length}".encode())
    if encoder.projection is not None:  # (an encoder without one keeps its earlier fingerprint)
        h.update(f"|projection:{encoder.projection.digest()}".encode())
    return h.hexdigest()


def _sentence_transformers_pooling(path: Path) -> str | None:
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return None
    d = read_json(cfg, expect=dict)
    if d.get("pooling_mode_cls_token"):
        return "cls"
    if d.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


__all__ = ["POOLINGS", "TextEncoder", "encoder_fingerprint"]
