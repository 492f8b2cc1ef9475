"""The tagger's encoder and head run by ONNX Runtime instead of torch (``runtime="onnx"``).

The loaded model (base + delta, so whatever the tagger was trained to) is exported once, in memory,
with ``torch.onnx.export`` (the TorchScript exporter, eager attention) and opened as an ONNX Runtime
session; nothing is written to disk. The exported graph takes ``input_ids`` and ``attention_mask`` and
returns the logits; the attention mask is turned into the additive mask of every layer inside the
graph, so the graph is shape-generic (batch and length). The logits equal torch's to ~1e-5.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np

from genbel.deps import require
from genbel.errors import ConfigError, Errors

logger = logging.getLogger(__name__)

__all__ = ["OnnxTokenClassifier"]


class OnnxTokenClassifier:
    """``logits = OnnxTokenClassifier(model)(input_ids, attention_mask)`` for a BERT-family
    token-classification model (``model.base_model.embeddings``, ``.encoder.layer``, ``model.classifier``)."""

    def __init__(self, model: Any, *, threads: int | None = None) -> None:
        require("onnxruntime", "onnx", extra="onnx", feature="the tagger's ONNX Runtime path")
        import onnxruntime as ort
        import torch

        base = getattr(model, "base_model", None)
        if not (hasattr(base, "embeddings") and hasattr(getattr(base, "encoder", None), "layer")
                and hasattr(model, "classifier")):
            raise ConfigError(Errors.E504.format(field="runtime", reason="onnx needs a BERT-family encoder "
                                                                         "(embeddings, encoder.layer, classifier)"))
        t0 = time.perf_counter()
        data = _export(model, base)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        logger.info("tagger exported to ONNX Runtime in %.1f s (%.0f MB graph)", time.perf_counter() - t0,
                    len(data) / 1e6)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": np.asarray(input_ids, dtype=np.int64),
                                       "attention_mask": np.asarray(attention_mask, dtype=np.int64)})[0]


def _export(model: Any, base: Any) -> bytes:
    import warnings

    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base, self.classifier = base, model.classifier

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            h = self.base.embeddings(input_ids=input_ids)
            mask = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            for layer in self.base.encoder.layer:
                h = layer(h, mask)
                h = h[0] if isinstance(h, tuple) else h
            return self.classifier(h)

    example = (torch.tensor([[1, 2, 3, 1], [1, 2, 1, 0]]),  # any ids: the graph does not depend on them
               torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    attn = getattr(model.config, "_attn_implementation", None)
    buf = io.BytesIO()
    model.set_attn_implementation("eager")  # sdpa does not trace to a shape-generic graph
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(Logits().eval(), example, buf, input_names=["input_ids", "attention_mask"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={k: {0: "batch", 1: "tokens"}
                                            for k in ("input_ids", "attention_mask", "logits")})
    finally:
        if attn:
            model.set_attn_implementation(attn)
    return buf.getvalue()
