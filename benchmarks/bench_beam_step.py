"""Cost of one decoding step against the width of the key/value cache (the prompt length).

Why long (document-level) prompts cost more per decoded mention on CPU: a beam-search step of
``rows`` rows (batch × beams) over a cache of ``L`` prompt tokens, timed with the same model call
generate makes (one new token per row, the cache grown by ``torch.cat``, and the beam reordering of
the cache) — with the default cache (the prompt copied for each beam) and with genbel's shared-prompt
cache (``genbel.generation.cache``: the prompt kept once per query). ::

    .venv/bin/python benchmarks/bench_beam_step.py --threads 2                 # SmolLM2-135M, 100 rows
    .venv/bin/python benchmarks/bench_beam_step.py --lengths 16 64 140 --rows 100 --beams 5 --steps 10
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from functools import partial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="alias, local path or hub id")
    ap.add_argument("--rows", type=int, default=100, help="batch x beams (20 mentions x 5 beams)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 140])
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from genbel.generation.cache import SharedPromptCache, shared_prompt_decoding
    from genbel.models import resolve_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model)).eval()
    print(
        f"| prompt tokens | ms per step, prompt per beam | ms per step, shared prompt |"
        f" ({args.rows} rows = {args.rows // args.beams} queries x {args.beams} beams, {args.threads} threads)"
        "\n|---|---|---|"
    )
    queries = args.rows // args.beams
    for length in args.lengths:
        ids = torch.randint(100, 1000, (queries, length))
        prompt_mask = torch.ones_like(ids)
        prompt_mask[:, :3] = 0  # some left padding, as in a batch
        with torch.inference_mode():
            prompt = model(input_ids=ids, attention_mask=prompt_mask, use_cache=True).cache
            per_beam = _step_ms(model, args, _copied(prompt, args.beams), prompt_mask, nullcontext)
            shared = SharedPromptCache([(layer.keys, layer.values) for layer in prompt.layers], args.beams)
            shared_ms = _step_ms(model, args, shared, prompt_mask, partial(shared_prompt_decoding, model, shared))
        print(f"| {length} | {per_beam:.0f} | {shared_ms:.0f} |")


def _copied(prompt, beams):
    from transformers import DynamicCache

    cache = DynamicCache(ddp_cache_data=[(layer.keys, layer.values) for layer in prompt.layers])
    cache.batch_repeat_interleave(beams)
    return cache


def _step_ms(model, args, cache, prompt_mask, context) -> float:
    import torch

    mask = prompt_mask.repeat_interleave(args.beams, dim=0)
    token = torch.randint(100, 1000, (args.rows, 1))
    order = torch.arange(args.rows)
    with context():
        t0 = time.perf_counter()
        for _ in range(args.steps):
            mask = torch.cat([mask, torch.ones(args.rows, 1, dtype=mask.dtype)], dim=1)
            model(input_ids=token, attention_mask=mask, cache=cache, use_cache=True)
            cache.reorder_cache(order)
        return 1000 * (time.perf_counter() - t0) / args.steps

if __name__ == "__main__":
    main()
