"""Tokenize training examples exactly as the generative linker decodes them, and batch them.

Causal LMs (``syncabel`` prompts): ``input_ids = prompt_ids + target_ids + [eos]`` where
``prompt_ids = tokenizer(source + "\\n" + "mention is")`` (with the tokenizer's own special tokens)
and ``target_ids = tokenizer(" " + name, add_special_tokens=False)``; the labels are ``-100`` on
every prompt token, so only the target and EOS are learnt. Tokenizing the two pieces separately and
concatenating the ids gives the token boundaries the trie is built from.

Seq2seq models (``genbioel`` prompts): the encoder reads the source; the decoder sequence is
``[decoder_start] + prefix_ids + target_ids + [eos]``, fed shifted by one, with labels ``-100`` on
the decoder prompt ("mention is").

Batches of causal examples are padded on the *left*, so every row ends with its target: the loss
then needs the LM-head logits of the last ``max_target + 1`` positions only (``logits_to_keep``),
which saves most of the vocabulary projection for short targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from genbel.generation.encoding import PromptEncoder
from genbel.training.examples import TrainingExample

IGNORE = -100


@dataclass
class Encoded:
    """One tokenized example; ``input_ids``/``labels`` for causal, plus decoder ids for seq2seq."""

    input_ids: list[int]
    labels: list[int]
    decoder_input_ids: list[int] | None = None


def encode_example(ex: TrainingExample, encoder: PromptEncoder) -> Encoded:
    """Token ids and labels of one example, through the linker's own :class:`PromptEncoder`."""
    q = encoder.encode(ex.query)
    tgt = encoder.encode_target(ex.target)
    if encoder.architecture == "causal":
        return Encoded(input_ids=q.input_ids + tgt, labels=[IGNORE] * len(q.input_ids) + tgt)
    dec = list(q.decoder_ids or []) + tgt
    # decoder input = dec[:-1]; label i = dec[i + 1]; the prompt part (after the start token) is ignored
    labels = [IGNORE] * (len(q.decoder_ids or []) - 1) + tgt
    return Encoded(input_ids=q.input_ids, labels=labels, decoder_input_ids=dec[:-1])


def collate(batch: Sequence[Encoded], pad: int, architecture: str) -> dict[str, torch.Tensor]:
    """Pad a batch: causal rows on the left (targets end-aligned), seq2seq encoder/decoder on the right.

    Causal batches also carry ``position_ids`` (0 at each row's first real token) and
    ``n_target`` (the number of trailing positions whose logits the loss needs).
    """
    if architecture == "causal":
        n = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), n), pad, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        n_target = 0
        for i, e in enumerate(batch):
            m = len(e.input_ids)
            ids[i, n - m :] = torch.tensor(e.input_ids)
            labels[i, n - m :] = torch.tensor(e.labels)
            mask[i, n - m :] = 1
            n_target = max(n_target, sum(1 for x in e.labels if x != IGNORE))
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "position_ids": pos,
            "n_target": torch.tensor(n_target),
        }
    n = max(len(e.input_ids) for e in batch)
    d = max(len(e.decoder_input_ids or []) for e in batch)
    ids = torch.full((len(batch), n), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    dec = torch.full((len(batch), d), pad, dtype=torch.long)
    dmask = torch.zeros((len(batch), d), dtype=torch.long)
    labels = torch.full((len(batch), d), IGNORE, dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
        di = e.decoder_input_ids or []
        dec[i, : len(di)] = torch.tensor(di)
        dmask[i, : len(di)] = 1
        labels[i, : len(e.labels)] = torch.tensor(e.labels)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "decoder_input_ids": dec,
        "decoder_attention_mask": dmask,
        "labels": labels,
    }
