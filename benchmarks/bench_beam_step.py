"""Cost of one decoding step against the width of the key/value cache (the prompt length).

Why document-level prompts cost more per decoded mention on CPU: a beam-search step of ``rows`` rows
(batch × beams) over a cache of ``L`` prompt tokens, timed with the same model call generate makes
(one new token per row, the cache grown by ``torch.cat``, and the beam reordering of the cache). ::

    .venv/bin/python benchmarks/bench_beam_step.py --threads 2                 # SmolLM2-135M, 100 rows
    .venv/bin/python benchmarks/bench_beam_step.py --lengths 16 64 140 --rows 100 --steps 10
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="alias, local path or hub id")
    ap.add_argument("--rows", type=int, default=100, help="batch x beams (20 mentions x 5 beams)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 140])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from genbel.models import resolve_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model)).eval()
    print(f"| prompt tokens | ms per step ({args.rows} rows, {args.threads} threads) |\n|---|---|")
    for length in args.lengths:
        ids = torch.randint(100, 1000, (args.rows, length))
        mask = torch.ones_like(ids)
        mask[:, :3] = 0  # some left padding, as in a batch
        with torch.inference_mode():
            past = model(input_ids=ids, attention_mask=mask, use_cache=True).past_key_values
            token = torch.randint(100, 1000, (args.rows, 1))
            order = torch.arange(args.rows)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                mask = torch.cat([mask, torch.ones(args.rows, 1, dtype=mask.dtype)], dim=1)
                out = model(input_ids=token, attention_mask=mask, past_key_values=past, use_cache=True)
                past = out.past_key_values
                past.reorder_cache(order)
            ms = 1000 * (time.perf_counter() - t0) / args.steps
        print(f"| {length} | {ms:.0f} |")


if __name__ == "__main__":
    main()
