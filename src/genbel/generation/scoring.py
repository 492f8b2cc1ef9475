"""Teacher-forced scores of given concept names: what beam search would score them.

For a query's prompt and a name's target ids ``y`` (``" " + name`` + EOS), the score is the
log-likelihood ``sum_t log p(y_t | prompt, y_<t)``, or with ``normalize`` its mean over the target
tokens — the ``s_i`` that beam search ranks by (``length_penalty=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genbel.data.queries import MentionQuery
from genbel.errors import Errors, InputError
from genbel.generation.encoding import EncodedQuery, PromptEncoder


@torch.inference_mode()
def score_candidates(
    model: Any,
    encoder: PromptEncoder,
    queries: Sequence[MentionQuery],
    candidate_names: Sequence[Sequence[str]],
    *,
    normalize: bool = True,
    rows: int = 40,
    device: torch.device | None = None,
) -> list[list[float]]:
    """Teacher-forced log-likelihood of each given name (target + EOS) for its query.

    ``normalize=True`` gives the mean log-probability per target token, ``False`` the sum. All
    (query, name) pairs go through the model in chunks of ``rows`` sequences.
    """
    if len(candidate_names) != len(queries):
        raise InputError(
            Errors.E252.format(
                where="candidate_names", n_candidates=len(candidate_names), n_queries=len(queries)
            )
        )
    device = device if device is not None else next(model.parameters()).device
    encoded = [encoder.encode(q) for q in queries]
    pairs = [(qi, ci) for qi, names in enumerate(candidate_names) for ci in range(len(names))]
    targets = {(qi, ci): encoder.encode_target(candidate_names[qi][ci]) for qi, ci in pairs}
    out: list[list[float]] = [[0.0] * len(names) for names in candidate_names]
    # seq2seq chunks share one decoder-prompt length (targets then start at the same position)
    groups: dict[int, list[tuple[int, int]]] = {}
    for p in pairs:
        groups.setdefault(len(encoded[p[0]].decoder_ids or []), []).append(p)
    for group in groups.values():
        group.sort(key=lambda p: len(encoded[p[0]].input_ids) + len(targets[p]))
        for j in range(0, len(group), rows):
            chunk = group[j : j + rows]
            logps = teacher_forced(
                model, encoder, [encoded[qi] for qi, _ in chunk], [targets[p] for p in chunk], device
            )
            for (qi, ci), (total, n) in zip(chunk, logps):
                out[qi][ci] = total / n if normalize else total
    return out


def teacher_forced(
    model: Any,
    encoder: PromptEncoder,
    prompts: Sequence[EncodedQuery],
    targets: Sequence[list[int]],
    device: torch.device,
) -> list[tuple[float, int]]:
    """``(sum of target log-probabilities, target length)`` per (prompt, target) pair, in one batch.

    Seq2seq prompts of one call must share their decoder-prompt length.
    """
    pad = encoder.pad_token_id
    tmax = max(len(t) for t in targets)
    if encoder.architecture == "causal":
        pmax = max(len(p.input_ids) for p in prompts)
        ids, mask = [], []
        for p, t in zip(prompts, targets):
            lp, rp = pmax - len(p.input_ids), tmax - len(t)
            ids.append([pad] * lp + p.input_ids + t + [pad] * rp)
            mask.append([0] * lp + [1] * (len(p.input_ids) + len(t)) + [0] * rp)
        ids_t = torch.tensor(ids, dtype=torch.long, device=device)
        mask_t = torch.tensor(mask, dtype=torch.long, device=device)
        pos = (mask_t.cumsum(-1) - 1).clamp(min=0)
        # only the logits that predict target tokens: the last tmax + 1 positions (lm head and
        # log-softmax over the vocabulary are then not computed for the prompt)
        logits = model(
            input_ids=ids_t, attention_mask=mask_t, position_ids=pos, logits_to_keep=tmax + 1
        ).logits
        start = 1  # logits[:, 0] is the prompt's last position, which predicts the first target token
    else:
        dmax = len(prompts[0].decoder_ids or [])  # equal within a chunk (see score_candidates)
        nmax = max(len(p.input_ids) for p in prompts)
        enc = torch.tensor([p.input_ids + [pad] * (nmax - len(p.input_ids)) for p in prompts], device=device)
        enc_mask = torch.tensor(
            [[1] * len(p.input_ids) + [0] * (nmax - len(p.input_ids)) for p in prompts], device=device
        )
        dec = torch.tensor(
            [(p.decoder_ids or []) + t + [pad] * (tmax - len(t)) for p, t in zip(prompts, targets)],
            device=device,
        )
        logits = model(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec).logits
        start = dmax
    logp = torch.log_softmax(logits[:, start - 1 : start - 1 + tmax].float(), dim=-1)
    tgt = torch.tensor([t + [0] * (tmax - len(t)) for t in targets], device=device)
    tok = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    valid = torch.tensor([[1] * len(t) + [0] * (tmax - len(t)) for t in targets], device=device).bool()
    sums = tok.masked_fill(~valid, 0.0).sum(-1).tolist()
    return [(s, len(t)) for s, t in zip(sums, targets)]
