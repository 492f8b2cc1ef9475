"""Text encoders for dense retrieval and their on-disk weight formats (read and write).

* :mod:`genbel.encoders.text_encoder` — :class:`TextEncoder`: a Hugging Face encoder that maps
  short strings to L2-normalised vectors (pooling, tokenisation, batched inference), saved with
  :meth:`TextEncoder.save` and loaded with :meth:`TextEncoder.load`.
* :mod:`genbel.encoders.weights` — the compact weight formats of a saved encoder: ``int8`` (int8
  matrices with a float16 scale per row) and ``delta``/``delta-int8`` (only the tensors that differ
  from a base model); both read and written here.
* :mod:`genbel.encoders.compact` — smaller copies of an encoder for shipping
  (:func:`compact_encoder`: pruned vocabulary + int8; :func:`delta_encoder`: a delta from a base).
* :mod:`genbel.encoders.vector_store` — :class:`~genbel.encoders.vector_store.NameVectorStore`: the
  vectors an encoder gave to each text, kept on disk so a KB embeds only the names no earlier KB had.
* :mod:`genbel.encoders.vector_pack` — :class:`~genbel.encoders.vector_pack.NameVectorPack`: precomputed
  name vectors shipped with an encoder (int8, int4 or product-quantised), used only with that encoder.
* :mod:`genbel.encoders.projection` — :class:`~genbel.encoders.projection.OutputProjection`: an optional
  fixed linear map (e.g. PCA) applied to every vector of an encoder and part of its fingerprint.

Used by the dense linker (:mod:`genbel.linkers.dense`) and retriever training
(:mod:`genbel.training.retriever`).
"""

from genbel.deps import require

require("torch", "transformers", "safetensors", extra="models", feature="text encoders")

from genbel.encoders.compact import compact_encoder, delta_encoder
from genbel.encoders.text_encoder import POOLINGS, TextEncoder, encoder_fingerprint

__all__ = ["POOLINGS", "TextEncoder", "compact_encoder", "delta_encoder", "encoder_fingerprint"]
