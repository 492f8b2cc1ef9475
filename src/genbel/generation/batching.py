"""Batches of encoded queries and their padded model inputs.

Causal prompts are LEFT-padded (attention mask 0 on the pads, position ids counted from the first
real token) so every prompt ends where generation starts; seq2seq inputs are right-padded on the
encoder side and batched by equal decoder-prompt length (no decoder padding, so models with
absolute decoder positions such as BART give the same results in a batch as one by one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genbel.generation.encoding import EncodedQuery


def batches(
    encoded: Sequence[EncodedQuery], todo: Sequence[int], batch_size: int, architecture: str
) -> list[list[int]]:
    """Indices of ``todo`` grouped into batches: by length (causal) or by equal decoder-prompt length
    (seq2seq)."""
    if architecture == "causal":
        order = sorted(todo, key=lambda i: len(encoded[i].input_ids))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    buckets: dict[int, list[int]] = {}
    for i in sorted(todo, key=lambda i: len(encoded[i].input_ids)):
        buckets.setdefault(len(encoded[i].decoder_ids or []), []).append(i)
    out: list[list[int]] = []
    for _, idx in sorted(buckets.items()):
        out.extend(idx[j : j + batch_size] for j in range(0, len(idx), batch_size))
    return out


def model_inputs(
    batch: Sequence[EncodedQuery], architecture: str, pad_token_id: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], int]:
    """The padded ``generate`` inputs of a batch and the prompt length generation starts after
    (causal: the padded prompt width; seq2seq: the decoder-prompt length)."""
    pad = pad_token_id
    if architecture == "causal":
        n = max(len(e.input_ids) for e in batch)
        ids = torch.tensor([[pad] * (n - len(e.input_ids)) + e.input_ids for e in batch], dtype=torch.long)
        mask = torch.tensor(
            [[0] * (n - len(e.input_ids)) + [1] * len(e.input_ids) for e in batch], dtype=torch.long
        )
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        return {k: v.to(device) for k, v in inputs.items()}, n
    n = max(len(e.input_ids) for e in batch)
    ids = torch.tensor([e.input_ids + [pad] * (n - len(e.input_ids)) for e in batch], dtype=torch.long)
    mask = torch.tensor(
        [[1] * len(e.input_ids) + [0] * (n - len(e.input_ids)) for e in batch], dtype=torch.long
    )
    dec = torch.tensor([e.decoder_ids for e in batch], dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec}
    return {k: v.to(device) for k, v in inputs.items()}, dec.shape[1]
