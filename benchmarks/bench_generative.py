"""Benchmark the GenerativeLinker with SmolLM2-135M over MEDIC on NCBI-disease test mentions.

Measures, with the same model and ``num_beams`` (default 5):

* constrained (trie) vs unconstrained beam search on the same mentions and batch size: wall time,
  decoding steps, time per decoding step (wall time minus the prompt prefill, over the steps) and
  the time spent inside the trie logits processor (share of the step time and of the wall time);
* throughput in mentions/s of constrained linking for batch sizes 1, 8 and 32;
* R@1 / R@5 on a 100-mention sample (every 9th test mention) as a sanity number: SmolLM2 is NOT
  trained for linking here, so the figure is near the floor (the training engineer fine-tunes it).

Mentions: NCBI-disease test (``../shared/data``), gold spans, no abbreviation expansion, KB not
augmented; prompts are the default ``syncabel`` format (200 characters of context on each side).
The 100-mention R@1 sample is linked at batch size 32 (96 mentions, which also give the batch-32
throughput) and 1 (the last 4, which give the batch-1 throughput); the constrained/unconstrained
comparison and the batch-8 throughput use the first ``--compare`` mentions of the sample.
The machine is shared: the table prints the load average before and after.

Run:  nice -n 10 .venv/bin/python benchmarks/bench_generative.py
Writes ``benchmarks/out/bench_generative.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"


class Probe:
    """Times model forward passes (prefill vs decoding steps) and the trie logits processor."""

    def __init__(self, linker) -> None:
        from genbel.trie import TrieLogitsProcessor

        self.reset()
        model = linker.model
        forward = model.forward

        def timed_forward(*args, **kwargs):
            ids = kwargs.get("input_ids")
            t = time.perf_counter()
            out = forward(*args, **kwargs)
            dt = time.perf_counter() - t
            if ids is not None and ids.shape[1] > 1:  # the prompt (all but its last token)
                self.prefill += dt
            else:
                self.steps += 1
                self.step_model += dt
            return out

        model.forward = timed_forward
        call = TrieLogitsProcessor.__call__

        def timed_call(proc, input_ids, scores):
            t = time.perf_counter()
            out = call(proc, input_ids, scores)
            self.trie += time.perf_counter() - t
            return out

        TrieLogitsProcessor.__call__ = timed_call

    def reset(self) -> None:
        self.prefill = 0.0
        self.steps = 0
        self.step_model = 0.0
        self.trie = 0.0


def run(linker, probe: Probe, queries, *, batch_size: int, num_beams: int, constrained: bool) -> dict:
    probe.reset()
    t = time.perf_counter()
    beams = linker.generate(queries, constrained=constrained, num_beams=num_beams, batch_size=batch_size)
    wall = time.perf_counter() - t
    decode = wall - probe.prefill
    return {
        "mentions": len(queries),
        "batch_size": batch_size,
        "constrained": constrained,
        "wall_s": wall,
        "mentions_per_s": len(queries) / wall,
        "prefill_s": probe.prefill,
        "steps": probe.steps,
        "step_ms": 1000 * decode / max(probe.steps, 1),
        "step_model_ms": 1000 * probe.step_model / max(probe.steps, 1),
        "trie_ms_per_step": 1000 * probe.trie / max(probe.steps, 1),
        "trie_share_of_steps": probe.trie / decode if decode > 0 else 0.0,
        "trie_share_of_wall": probe.trie / wall,
        "beams": beams,
    }


def recall(linker, queries, beams, k: int) -> float:
    from genbel.eval.metrics import first_correct_rank

    hits = 0
    for q, bs in zip(queries, beams):
        concepts: list[str] = []
        for b in bs:
            for c in b.codes:
                if c not in concepts:
                    concepts.append(c)
        rank = first_correct_rank([linker.kb.ids_of(c) for c in concepts], set(q.gold_ids))
        hits += rank is not None and rank < k
    return 100.0 * hits / len(queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--num-beams", type=int, default=5)
    ap.add_argument("--sample", type=int, default=100, help="mentions in the R@1 sample")
    ap.add_argument(
        "--compare", type=int, default=8, help="mentions for constrained vs unconstrained (batch 8)"
    )
    ap.add_argument("--unconstrained-max-tokens", type=int, default=32)
    ap.add_argument("--json-out", default=str(OUT / "bench_generative.json"))
    args = ap.parse_args()

    from genbel.data import load_corpus
    from genbel.data.queries import queries_from_documents
    from genbel.kb import load_kb
    from genbel.linkers.generative import GenerativeLinker

    load0 = os.getloadavg()
    t = time.perf_counter()
    kb = load_kb(DATA / "medic" / "medic_06Jul2012.txt")
    docs = load_corpus(DATA / "ncbi-disease" / "NCBItestset_corpus.txt")
    queries = [q for q in queries_from_documents(docs) if q.gold_ids]
    sample = queries[::9][: args.sample]
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    linker = GenerativeLinker.load(args.model, kb, num_beams=args.num_beams)
    t_setup = time.perf_counter() - t
    probe = Probe(linker)
    nb = args.num_beams

    runs = []
    n32 = (len(sample) // 32) * 32 if len(sample) >= 32 else len(sample)
    runs.append(run(linker, probe, sample[:n32], batch_size=32, num_beams=nb, constrained=True))
    if n32 < len(sample):
        runs.append(run(linker, probe, sample[n32:], batch_size=1, num_beams=nb, constrained=True))
    beams = [b for r in runs for b in r["beams"]]
    r1, r5 = recall(linker, sample, beams, 1), recall(linker, sample, beams, 5)

    cmp_q = sample[: args.compare]
    linker.max_target_length = args.unconstrained_max_tokens
    con = run(linker, probe, cmp_q, batch_size=8, num_beams=nb, constrained=True)
    unc = run(linker, probe, cmp_q, batch_size=8, num_beams=nb, constrained=False)
    runs += [con, unc]
    load1 = os.getloadavg()

    print(
        f"\nSmolLM2-135M ({args.model}), MEDIC ({len(kb)} concepts, {len(linker.trie)} names, trie depth "
        f"{linker._trie_depth}), NCBI-disease test mentions, num_beams={nb}, torch threads "
        f"{torch.get_num_threads()}; data {t_data:.1f} s, model + trie build {t_setup:.1f} s; "
        f"load average {load0[0]:.1f} → {load1[0]:.1f}\n"
    )
    print(
        "| run | batch | mentions | wall s | mentions/s | prefill s | steps | ms/step | model ms/step "
        "| trie ms/step | trie % of steps | trie % of wall |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = ["constrained"] * (len(runs) - 2) + ["constrained (compare)", "unconstrained (compare)"]
    for name, r in zip(names, runs):
        print(
            f"| {name} | {r['batch_size']} | {r['mentions']} | {r['wall_s']:.1f} | "
            f"{r['mentions_per_s']:.2f} | "
            f"{r['prefill_s']:.1f} | {r['steps']} | {r['step_ms']:.0f} | {r['step_model_ms']:.0f} | "
            f"{r['trie_ms_per_step']:.1f} | {100 * r['trie_share_of_steps']:.1f} | "
            f"{100 * r['trie_share_of_wall']:.1f} |"
        )
    overhead = con["step_ms"] / unc["step_ms"] - 1 if unc["step_ms"] else float("nan")
    print(
        f"\nconstrained vs unconstrained, same {len(cmp_q)} mentions, batch 8: time per decoding step "
        f"{con['step_ms']:.0f} vs {unc['step_ms']:.0f} ms ({100 * overhead:+.1f}%); trie processor "
        f"{con['trie_ms_per_step']:.1f} ms/step = {100 * con['trie_share_of_steps']:.1f}% of the step time"
    )
    print(f"untrained sanity check on {len(sample)} mentions (batch 32 + 1): R@1 {r1:.1f}  R@5 {r5:.1f}")

    OUT.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": args.model,
        "num_beams": nb,
        "kb_concepts": len(kb),
        "trie_names": len(linker.trie),
        "setup_s": t_setup,
        "load_before": load0,
        "load_after": load1,
        "recall_at_1": r1,
        "recall_at_5": r5,
        "step_overhead": overhead,
        "runs": [{k: v for k, v in r.items() if k != "beams"} for r in runs],
    }
    Path(args.json_out).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
