"""Speed changes of generative decoding on CPU, interleaved in one run (issue 19, item 4).

Variants of the shipped generative default (SmolLM2-135M + LoRA, 5 beams, trie over the whole bundled
MEDIC KB), all on the same distinct NCBI-disease test mention strings (distinct, so no input is decoded
twice; mention-only prompts as the model was trained; no abbreviation expansion):

* ``bf16``           — the default on CPUs with native bfloat16 (``quantize="auto"``): ``fp32`` with every
  linear layer's weight in bfloat16 (:mod:`genbel.generation.quantize`);
* ``fp32``           — the LoRA merged into the base, float32 (``quantize="none"``), genbel's beam-search loop
  (:mod:`genbel.generation.beam_loop`: finished queries leave the batch, waiting ones join, trie-forced
  tokens fed ahead), HF's early-stop rule per query;
* ``hf``             — the same model decoded by Hugging Face ``generate`` (``search="hf"``, the default
  until 2026-12-06): a batch runs until its slowest query ends;
* ``noforce``        — genbel's loop without feeding forced tokens ahead (``force_unique=False``): one
  forward pass per beam-search step;
* ``lora``           — the adapter *not* merged (``merge_lora=False``): what merging saves;
* ``int8``           — linear layers int8 (``quantize="int8"``, :mod:`genbel.generation.quantize`);
* ``fp32+es``, ``int8+es`` — Hugging Face ``early_stopping=True`` (patched into this run only): a query
  stops once ``num_beams`` hypotheses are finished;
* ``hybrid``         — the retriever-restricted trie over the ``bf16`` model (``hybrid:default`` ``mode=constrain``,
  ``n_candidates=5``, retriever ``dense:default``): beam search over the names of 5 retrieved concepts
  (retrieval time included).

Speed: for each round, for each variant, batch sizes 1, 8 and 32 in turn (interleaved, so the shared
machine's load hits every variant alike); distinct mentions/s per (variant, batch), median over rounds,
with the load average before and after and the process CPU time (``cpu_s``: with one torch thread,
the compute a variant needs, much less moved by other jobs than wall time); *positions* = tokens the model computes (prompt prefill plus one
per beam row per step, padding included), a cost figure that does not move with the load.

Accuracy (``--dev N``): R@1/R@5 of each variant on the first N distinct NCBI-disease **dev** mention
strings (batch 8), and how many top-1 concepts equal the first variant's; ``--ref V`` also compares
every variant's whole candidate lists (concepts, matched names, scores) with variant ``V``'s (the
acceptance test of genbel's loop: ``--variants hf,fp32 --ref hf``).

    nice -n 19 .venv/bin/python benchmarks/bench_generative_speed.py --rounds 2 --n 48 --n1 8 --dev 200

Writes ``benchmarks/out/bench_generative_speed.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"
VARIANTS = ("fp32", "bf16", "hf", "noforce", "lora", "int8", "fp32+es", "int8+es", "hybrid")


def distinct_queries(path: Path) -> list:
    from genbel.data import load_corpus
    from genbel.data.queries import queries_from_documents

    seen: set[str] = set()
    out = []
    for q in queries_from_documents(load_corpus(path)):
        if q.gold_ids and q.text not in seen:
            seen.add(q.text)
            out.append(q)
    return out


class PositionCounter:
    """Counts the token positions a model's forward passes compute, and the passes."""

    def __init__(self, model) -> None:
        self.n = 0
        self.calls = 0
        forward = model.forward

        def counted(*args, **kwargs):
            x = kwargs.get("input_ids")
            if x is None:
                x = kwargs.get("inputs_embeds")
            if x is not None:
                self.n += int(x.shape[0]) * int(x.shape[1])
            self.calls += 1
            return forward(*args, **kwargs)

        model.forward = counted


def build(variant: str, kb, cache: dict):
    """``(linker, generative linker)`` of a variant; models are shared between ``x`` and ``x+es``."""
    from genbel.linkers.generative import GenerativeLinker

    base = variant.split("+")[0]
    if base in ("hf", "noforce"):  # the fp32 model, another decoding setting (set in run)
        return build("fp32", kb, cache)
    if base not in cache:
        if base == "hybrid":
            from genbel.linkers.hybrid import HybridLinker
            from genbel.linkers.registry import create_linker

            gen, _ = build("bf16", kb, cache)
            retriever = create_linker("dense:default", kb)
            cache[base] = HybridLinker(kb, gen, retriever, mode="constrain", n_candidates=5), gen
        else:
            opts = {"fp32": {"quantize": "none"}, "lora": {"merge_lora": False, "quantize": "none"},
                    "int8": {"quantize": "int8"}, "bf16": {"quantize": "bf16"}}[base]
            gen = GenerativeLinker.load(str(default_dir()), kb, **opts)
            gen.counter = PositionCounter(gen.model)
            cache[base] = gen, gen
    return cache[base]


def default_dir() -> Path:
    from genbel.linkers.default import default_model_dir

    d = default_model_dir()
    assert d is not None, "no shipped generative model"
    return d


def run(variant: str, kb, cache: dict, queries: list, batch_size: int) -> dict:
    linker, gen = build(variant, kb, cache)
    config = type(gen.decoder).generation_config
    if variant.endswith("+es"):  # HF early_stopping=True for this run (not a linker setting: it lost R@1)
        def with_es(dec, num_beams, max_new_tokens):
            cfg = config(dec, num_beams, max_new_tokens)
            cfg.early_stopping = True
            return cfg

        gen.decoder.generation_config = with_es.__get__(gen.decoder)
    gen.batch_size = batch_size
    gen.decoder.search = "hf" if variant.endswith("+es") or variant == "hf" else "genbel"
    gen.decoder.force_unique = variant != "noforce"
    gen.decoder.last_loop_stats = None
    gen.counter.n = gen.counter.calls = 0
    t, cpu = time.perf_counter(), time.process_time()
    results = linker.link(queries, k=5)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    gen.decoder.__dict__.pop("generation_config", None)
    stats = gen.decoder.last_loop_stats
    loop = None
    if stats is not None:  # forward passes against beam-search steps: what feeding forced tokens saves
        loop = {"forwards": stats.forwards, "query_steps": stats.steps, "passes_per_query": stats.passes_per_query,
                "forced": stats.forced, "forced_used": stats.forced_used,
                "steps_saved": 1 - stats.passes_per_query / stats.steps if stats.steps else 0.0}
    gen.decoder.search, gen.decoder.force_unique = "genbel", True
    return {"seconds": dt, "cpu_s": cpu, "mentions_per_s": len(queries) / dt, "positions": gen.counter.n,
            "forwards": gen.counter.calls, "loop": loop, "results": results}


def same_candidates(a: list, b: list, tol: float = 1e-3) -> tuple[bool, float]:
    """Whether two link results give the same candidates (concept, matched name) in the same order,
    and the largest score difference."""
    same, worst = True, 0.0
    for ca, cb in zip(a, b):
        if [(c.concept_id, c.matched) for c in ca] != [(c.concept_id, c.matched) for c in cb]:
            same = False
        for x, y in zip(ca, cb):
            worst = max(worst, abs(x.score - y.score))
    return same and worst <= tol and len(a) == len(b), worst


def recall(kb, queries, results) -> tuple[float, float, list[str | None]]:
    from genbel.eval.metrics import first_correct_rank

    r1 = r5 = 0
    tops: list[str | None] = []
    for q, cands in zip(queries, results):
        rank = first_correct_rank([set(kb.ids_of(c.concept_id)) for c in cands], set(q.gold_ids))
        r1 += rank == 0
        r5 += rank is not None and rank < 5
        tops.append(cands[0].concept_id if cands else None)
    n = len(queries)
    return 100.0 * r1 / n, 100.0 * r5 / n, tops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=48, help="distinct test mentions at batch 8 and 32")
    ap.add_argument("--n1", type=int, default=8, help="distinct test mentions at batch 1")
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--dev", type=int, default=0, help="distinct NCBI dev mentions for R@1 (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref", default="", help="compare every variant's dev candidates with this variant's")
    ap.add_argument("--json-out", default=str(OUT / "bench_generative_speed.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from genbel.kb import default_kb

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    kb = default_kb()
    test = distinct_queries(DATA / "ncbi-disease" / "NCBItestset_corpus.txt")
    cache: dict = {}
    setup = {}
    for v in variants:
        t = time.perf_counter()
        build(v, kb, cache)
        setup[v] = time.perf_counter() - t
    report: dict = {"setup_s": setup, "threads": args.threads, "load_start": os.getloadavg(), "speed": {}, "dev": {}}
    print(json.dumps({"setup_s": setup, "load": os.getloadavg()}), flush=True)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    for r in range(args.rounds):
        for v in variants:
            for bs in sizes:
                qs = test[: args.n1] if bs == 1 else test[: args.n]
                load0 = os.getloadavg()[0]
                res = run(v, kb, cache, qs, bs)
                row = {"round": r, "mentions": len(qs), "load_before": load0, "load_after": os.getloadavg()[0],
                       **{k: res[k] for k in ("seconds", "cpu_s", "mentions_per_s", "positions", "forwards", "loop")}}
                report["speed"].setdefault(f"{v}@{bs}", []).append(row)
                print(json.dumps({"variant": v, "batch": bs, **row}), flush=True)
    if args.dev:
        dev = distinct_queries(DATA / "ncbi-disease" / "NCBIdevelopset_corpus.txt")[: args.dev]
        ref: list[str | None] | None = None
        outputs: dict[str, list] = {}
        for v in variants:
            res = run(v, kb, cache, dev, 8)
            outputs[v] = res["results"]
            r1, r5, tops = recall(kb, dev, res["results"])
            if ref is None:
                ref = tops
            same = sum(a == b for a, b in zip(tops, ref))
            report["dev"][v] = {"mentions": len(dev), "r1": r1, "r5": r5, "same_top1_as_first": same,
                                "mentions_per_s": res["mentions_per_s"], "cpu_s": res["cpu_s"],
                                "positions": res["positions"], "forwards": res["forwards"], "loop": res["loop"]}
        if args.ref in outputs:
            for v in variants:
                equal, worst = same_candidates(outputs[v], outputs[args.ref])
                n_equal = sum(same_candidates([a], [b])[0] for a, b in zip(outputs[v], outputs[args.ref]))
                report["dev"][v].update({"ref": args.ref, "all_candidates_equal": equal,
                                         "mentions_equal": n_equal, "max_score_diff": worst})
        for v in variants:
            print(json.dumps({"dev": v, **report["dev"][v]}), flush=True)
    report["load_end"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nload average {report['load_start']} → {report['load_end']}; {args.threads} torch threads")
    print("| variant | " + " | ".join(f"batch {b}: mentions/s (median) / positions" for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for v in variants if args.rounds else ():
        cells = []
        for b in sizes:
            rows = report["speed"][f"{v}@{b}"]
            cells.append(f"{statistics.median(x['mentions_per_s'] for x in rows):.2f} / {rows[0]['positions']:,}")
        print(f"| {v} | " + " | ".join(cells) + " |")
    for v, d in report["dev"].items():
        print(f"dev {v}: R@1 {d['r1']:.1f} R@5 {d['r5']:.1f} top-1 = first variant's {d['same_top1_as_first']}/{d['mentions']}")


if __name__ == "__main__":
    main()
