"""Smaller copies of a :class:`~genbel.encoders.text_encoder.TextEncoder` for shipping.

* :func:`compact_encoder` — the vocabulary cut to the tokens a KB and corpora use (plus single
  characters), with int8 (or float16) weights.
* :func:`delta_encoder` — only the tensors that differ from a base model, for fine-tuned encoders
  whose bottom layers were frozen.

Both write the formats of :mod:`genbel.encoders.weights`, which :meth:`TextEncoder.load` reads.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch

from genbel.encoders import weights as w
from genbel.encoders.text_encoder import TextEncoder
from genbel.errors import ConfigError, Errors
from genbel.io import atomic_dir

logger = logging.getLogger(__name__)


def _as_encoder(encoder: TextEncoder | str | Path) -> TextEncoder:
    return encoder if isinstance(encoder, TextEncoder) else TextEncoder.load(encoder)


def compact_encoder(
    encoder: TextEncoder | str | Path,
    texts: Iterable[str],
    out_dir: str | Path,
    *,
    weights: str = "int8",
    keep_characters: bool = True,
) -> Path:
    """Write a smaller copy of a WordPiece (BERT-family) encoder for shipping.

    * The vocabulary keeps the special tokens, every token used to tokenise ``texts`` (the KB names
      and corpora the encoder will see) and, with ``keep_characters``, every single-character piece
      (``a``, ``##a`` …) so that any other word still tokenises (into smaller pieces).
    * ``weights="int8"`` stores large matrices as int8 with a float16 scale per row (dequantised to
      float32 on load); ``"float16"`` halves the size; ``"float32"`` keeps it.

    Texts made only of kept tokens are tokenised exactly as before, so their embeddings change only
    by the weight rounding. Returns ``out_dir``.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if weights not in ("int8", "float16", "float32"):
        raise ConfigError(
            Errors.E022.format(value=weights, field="weights", known="int8, float16, float32")
        )
    enc = _as_encoder(encoder)
    tok = enc.tokenizer
    spec = json.loads(tok.backend_tokenizer.to_str())
    if spec.get("model", {}).get("type") != "WordPiece":
        raise ConfigError(
            Errors.E307.format(where=enc.source or "encoder")
        )
    vocab: dict[str, int] = spec["model"]["vocab"]
    id_to_token = {i: t for t, i in vocab.items()}
    keep: set[int] = set(tok.all_special_ids)
    batch: list[str] = []

    def flush() -> None:
        for ids in tok(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            keep.update(ids)
        batch.clear()

    for t in texts:
        batch.append(t)
        if len(batch) >= 4096:
            flush()
    if batch:
        flush()
    if keep_characters:
        prefix = spec["model"].get("continuing_subword_prefix", "##")
        for t, i in vocab.items():
            core = t[len(prefix):] if t.startswith(prefix) else t
            if len(core) == 1:
                keep.add(i)
    kept = sorted(i for i in keep if i in id_to_token)
    new_id = {old: new for new, old in enumerate(kept)}
    spec["model"]["vocab"] = {id_to_token[i]: new_id[i] for i in kept}
    for added in spec.get("added_tokens", []):
        if added["id"] in new_id:
            added["id"] = new_id[added["id"]]
    post = spec.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    for key in ("cls", "sep"):  # BertProcessing stores [token, id] pairs
        if isinstance(post.get(key), list):
            post[key] = [post[key][0], new_id[post[key][1]]]
    new_tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_max_length=tok.model_max_length,
        **{k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)},
    )

    model = copy.deepcopy(enc.model).float()
    old_emb = model.get_input_embeddings()
    pad = model.config.pad_token_id
    new_emb = torch.nn.Embedding(len(kept), old_emb.weight.shape[1],
                                 padding_idx=new_id.get(pad) if pad is not None else None)
    with torch.no_grad():
        new_emb.weight.copy_(old_emb.weight[torch.tensor(kept)])
    model.set_input_embeddings(new_emb)
    model.config.vocab_size = len(kept)
    if pad is not None:
        model.config.pad_token_id = new_id.get(pad, 0)

    def write(d: Path) -> None:
        new_tok.save_pretrained(d)
        info = {"pooling": enc.pooling, "max_length": enc.max_length, "vocab_kept": len(kept),
                "vocab_before": len(vocab)}
        if weights == "int8":
            w.write_int8(d, model)
            info["weights"] = w.INT8_WEIGHTS
        else:
            (model.half() if weights == "float16" else model).save_pretrained(d)
            info["weights"] = weights
        w.write_encoder_config(d, info)

    out = atomic_dir(out_dir, write)
    logger.info("compact encoder: vocabulary %d → %d tokens, %s weights, %.1f MB", len(vocab), len(kept),
                weights, sum(f.stat().st_size for f in out.iterdir()) / 1e6)
    return out


def delta_encoder(
    encoder: TextEncoder | str | Path,
    base: str | Path,
    out_dir: str | Path,
    *,
    weights: str = "int8",
    min_size: int = 4096,
) -> Path:
    """Write only the tensors of ``encoder`` that differ from the ``base`` model (an alias such as
    ``minilm`` or a checkpoint directory), for fine-tuned encoders whose bottom layers were frozen.

    ``weights="float32"`` stores the changed tensors as they are (``weights: delta``: loading gives
    the same model exactly); ``"int8"`` stores their differences from the base, 2-D tensors of at
    least ``min_size`` elements as int8 with a float16 scale per row (``delta-int8``; fine-tuning
    moves weights little, so this rounds far less than quantising the weights themselves).
    ``genbel_encoder.json`` records the base and its weight fingerprint; the tokenizer and config
    are the base's and are not copied. Refuses (``E304``) a base with other tensor names or shapes,
    another architecture config or another tokenizer. Returns ``out_dir``.
    """
    if weights not in ("int8", "float32"):
        raise ConfigError(
            Errors.E022.format(value=weights, field="weights (delta export)", known="int8, float32")
        )
    enc = _as_encoder(encoder)
    where = enc.source or str(encoder)
    base_enc = TextEncoder.load(base)
    w.check_delta_base(enc.model, enc.tokenizer, base_enc.model, base_enc.tokenizer, where, str(base))
    state, base_state = enc.model.state_dict(), base_enc.model.state_dict()
    tensors, changed = w.delta_tensors(state, base_state, int8=weights == "int8", min_size=min_size)
    info = {
        "weights": w.DELTA_INT8_WEIGHTS if weights == "int8" else w.DELTA_WEIGHTS,
        "base": w.delta_base_reference(base),
        "base_fingerprint": w.state_fingerprint(base_state),
        "pooling": enc.pooling,
        "max_length": enc.max_length,
        "changed_tensors": len(changed),
        "changed_parameters": int(sum(state[k].numel() for k in changed)),
        "total_parameters": int(sum(t.numel() for t in state.values())),
    }
    out = atomic_dir(out_dir, lambda d: w.write_delta(d, tensors, info))
    logger.info("delta encoder: %d of %d tensors (%d of %d parameters) differ from %s, %s, %.1f MB",
                len(changed), len(state), info["changed_parameters"], info["total_parameters"], base,
                info["weights"], (out / w.DELTA_FILE).stat().st_size / 1e6)
    return out


__all__ = ["compact_encoder", "delta_encoder"]
