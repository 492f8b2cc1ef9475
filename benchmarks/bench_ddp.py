"""Step time and loss curves of genbel's trainers with 1 and 2 processes (torchrun + DDP, gloo on CPUs).

One command::

    .venv/bin/python benchmarks/bench_ddp.py --steps 12 [--trainers retriever,generative] [--dropout]

For each trainer it runs the same training (same global batch, same steps) as

* ``1p x 1t``: one process, one torch thread;
* ``1p x 2t``: one process, two threads (the whole 2-core machine);
* ``2p x 1t``: two processes under ``torchrun --standalone --nproc_per_node 2``, one thread each;

interleaved in that order (``--rounds`` times), and reports the median seconds per optimizer step
(the first step, which warms up, left out where the log allows) and the largest difference between the
per-step losses of the 2-process run and the 1-process run. Trainers, on the real small models:

* ``retriever``: ``train_sapbert`` on all-MiniLM-L6-v2 (``minilm``) with the shipped retriever's
  recipe (multi-positive InfoNCE, batch 64 pairs, embeddings + 3 layers frozen, 25 tokens) over MEDIC
  synonym pairs and NCBI-disease train mentions;
* ``generative``: ``Trainer`` on SmolLM2-135M-Instruct with the shipped default model's LoRA recipe
  (r=16, batch 16, lr 5e-4, max 128 tokens) on NCBI-disease train vs MEDIC.

Dropout is off unless ``--dropout`` (MiniLM's 0.1, LoRA's 0.05): dropout masks are drawn per process,
so only without it can the two curves agree step by step; with it they agree in distribution.
Results: ``benchmarks/out/ddp.json`` and a markdown table on stdout. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VARIANTS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)


# ====================================================================== one run (a torchrun worker)
def _retriever(out: Path, steps: int, dropout: bool) -> list[tuple[int, float]]:
    from genbel.data import load_documents
    from genbel.encoders import TextEncoder
    from genbel.kb import load_kb
    from genbel.models import resolve_model
    from genbel.training.retriever import SapbertConfig, train_sapbert

    kb = load_kb(DATA / "medic" / "medic_06Jul2012.txt", "medic")
    docs = load_documents(str(DATA / "ncbi-disease" / "NCBItrainset_corpus.txt"))
    enc = TextEncoder.load(resolve_model("minilm"))
    if not dropout:
        _no_dropout(enc.model)
    cfg = SapbertConfig(epochs=1, max_steps=steps, batch_size=64, loss="infonce", freeze_layers=3,
                        max_length=25, log_every=1, seed=0)
    train_sapbert(kb, enc, out, documents=docs, config=cfg, progress=False)
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _generative(out: Path, steps: int, dropout: bool, threads: int) -> list[tuple[int, float]]:
    from genbel.training import TrainConfig, Trainer

    cfg = TrainConfig(
        base_model="smollm2-135m", kb=str(DATA / "medic" / "medic_06Jul2012.txt"),
        train_corpora=[str(DATA / "ncbi-disease" / "NCBItrainset_corpus.txt")], context_chars=0,
        include_group=False, lora_r=16, lora_alpha=32, lora_dropout=0.05 if dropout else 0.0,
        batch_size=16, lr=5e-4, warmup_ratio=0.03, max_steps=steps, log_every=1, save_every=10**6,
        num_threads=threads, out=str(out), seed=0,
    )
    tr = Trainer(cfg)
    if not dropout:
        _no_dropout(tr.model)
    tr.train(save_final=False)
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["elapsed_s"]) for r in rows if "loss" in r]


def _no_dropout(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t0 = time.perf_counter()
    if args.trainer == "retriever":
        rows = _retriever(out, args.steps, args.dropout)
    else:
        rows = _generative(out, args.steps, args.dropout, args.threads)
    wall = time.perf_counter() - t0
    if int(os.environ.get("RANK", "0")) == 0:
        (out / "bench.json").write_text(json.dumps({"rows": rows, "wall_s": wall}))


# ====================================================================== the comparison
def _run(trainer: str, nproc: int, threads: int, steps: int, dropout: bool, out: Path) -> dict:
    cmd = [__file__, "worker", "--trainer", trainer, "--steps", str(steps), "--threads", str(threads),
           "--out", str(out)] + (["--dropout"] if dropout else [])
    if nproc > 1:
        cmd = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *cmd], check=True, env=env, stdout=subprocess.DEVNULL)
    res = json.loads((out / "bench.json").read_text())
    res["process_wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def _step_seconds(trainer: str, res: dict) -> float:
    rows = res["rows"]
    if trainer == "generative":  # elapsed_s per logged step: the first step (warm-up) left out
        el = [r[2] for r in rows]
        return (el[-1] - el[0]) / max(1, len(el) - 1)
    run_dir = Path(res["out"])
    epoch = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    secs = [r["seconds"] for r in epoch if "seconds" in r]
    return secs[0] / max(1, len(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--trainer", required=True)
    w.add_argument("--steps", type=int, required=True)
    w.add_argument("--threads", type=int, default=1)
    w.add_argument("--out", required=True)
    w.add_argument("--dropout", action="store_true")
    ap.add_argument("--trainers", default="retriever,generative")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--dropout", action="store_true")
    ap.add_argument("--variants", default="1x1,1x2,2x1",
                    help="processes x threads per process; the reference 1x1 is read from --work when not run")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_ddp"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "out" / "ddp.json"))
    args = ap.parse_args()
    if args.cmd == "worker":
        worker(args)
        return
    if not (DATA / "medic").is_dir():
        sys.exit(f"needs the staged data in {DATA}")
    variants = [tuple(int(x) for x in v.split("x")) for v in args.variants.split(",")]
    results: list[dict] = []
    load = os.getloadavg()
    for trainer in args.trainers.split(","):
        for rnd in range(args.rounds):
            for nproc, threads in variants:
                out = Path(args.work) / f"{trainer}-{nproc}p{threads}t-r{rnd}"
                if out.exists():
                    import shutil

                    shutil.rmtree(out)
                before = os.getloadavg()[0]
                res = _run(trainer, nproc, threads, args.steps, args.dropout, out)
                res.update(trainer=trainer, nproc=nproc, threads=threads, round=rnd, out=str(out),
                           load_before=before, load_after=os.getloadavg()[0])
                res["step_s"] = round(_step_seconds(trainer, res), 3)
                results.append(res)
                print(f"{trainer} {nproc}p x {threads}t round {rnd}: {res['step_s']} s/step "
                      f"(load {before:.1f} -> {res['load_after']:.1f})", file=sys.stderr, flush=True)
    table = [("| trainer | processes x threads | s/step (median) | max abs loss diff vs 1p x 1t | "
              "max rel diff | load (1-min, before/after) |"), "|---|---|---|---|---|---|"]
    for trainer in args.trainers.split(","):
        ref = [r for r in results if r["trainer"] == trainer and (r["nproc"], r["threads"]) == (1, 1)]
        if not ref:  # measured by an earlier invocation
            ref = [json.loads((Path(args.work) / f"{trainer}-1p1t-r0" / "bench.json").read_text())]
        for nproc, threads in variants:
            runs = [r for r in results if r["trainer"] == trainer and (r["nproc"], r["threads"]) == (nproc, threads)]
            a = [row[1] for row in runs[0]["rows"]]
            b = [row[1] for row in ref[0]["rows"]]
            diffs = [abs(x - y) for x, y in zip(a, b)]
            rel = [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b)]
            for r in runs:
                r["max_abs_loss_diff"], r["max_rel_loss_diff"] = max(diffs), max(rel)
            loads = ", ".join(f"{r['load_before']:.1f}/{r['load_after']:.1f}" for r in runs)
            table.append(f"| {trainer} | {nproc} x {threads} | "
                         f"{statistics.median(r['step_s'] for r in runs):.2f} | {max(diffs):.2e} | "
                         f"{max(rel):.2e} | {loads} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": args.steps,
        "dropout": args.dropout, "load_at_start": load, "runs": results,
    }, indent=1))
    print("\n".join(table))


if __name__ == "__main__":
    main()
