"""Equal-budget training ablation: fine-tuning only vs + KB-guided samples vs + synthetic contexts.

Every variant starts from SmolLM2-135M-Instruct (LoRA r=16), trains the same number of optimizer steps
with the same batch size, learning rate and prompt format (mention only, ``context_chars=0``), on
NCBI-disease train linked to MEDIC, and is evaluated on NCBI-disease test with ``genbel evaluate``
(constrained beam search, 5 beams; seen/unseen split from NCBI train):

* ``ft``    — human examples only (synonym-aware targets);
* ``ft+kb`` — every batch half human, half KB-guided pre-training samples (GenBioEL templates);
* ``ft+syn`` — every batch half human, half synthetic contexts from ``genbel synth`` (template
  generator by default; concepts absent from NCBI train first).

The budget is small (CPU): the figures compare the variants with each other, not with published ones.

    nohup nice -n 10 .venv/bin/python benchmarks/ablation_training.py --steps 150 --out runs/ablation &
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VARIANTS = ("ft", "ft+kb", "ft+syn")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--synth-generator", default="template")
    ap.add_argument("--synth-n", type=int, default=3000)
    ap.add_argument("--eval-corpus", default=None, help="default: NCBI-disease test")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from genbel.data import load_documents
    from genbel.kb import load_kb
    from genbel.training import TrainConfig, Trainer
    from genbel.training.generators import make_generator
    from genbel.training.synth import synthesize

    data, out = Path(args.data), Path(args.out)
    kb_path = data / "medic" / "medic_06Jul2012.txt"
    train = data / "ncbi-disease" / "NCBItrainset_corpus.txt"
    test = Path(args.eval_corpus) if args.eval_corpus else data / "ncbi-disease" / "NCBItestset_corpus.txt"
    synth_file = out / "synth.jsonl"
    variants = [v for v in args.variants.split(",") if v]
    if "ft+syn" in variants and not synth_file.exists():
        kb = load_kb(kb_path)
        seen = [g for d in load_documents(train) for e in d.entities for g in e.gold_ids]
        synthesize(
            kb, make_generator(args.synth_generator), synth_file, n=args.synth_n, seen_ids=seen, seed=0
        )
    common = dict(
        base_model="smollm2-135m",
        kb=str(kb_path),
        train_corpora=[str(train)],
        context_chars=0,
        include_group=False,
        abbreviations="both",
        max_steps=args.steps,
        batch_size=16,
        lr=5e-4,
        warmup_ratio=0.03,
        num_threads=1,
        save_every=50,
        eval_every=0,
        seed=0,
    )
    extra = {
        "ft": {},
        "ft+kb": {"pretrain_per_concept": 1, "mix": {"human": 0.5, "kb": 0.5}},
        "ft+syn": {"synthetic_corpora": [str(synth_file)], "mix": {"human": 0.5, "synthetic": 0.5}},
    }
    results = {}
    for v in variants:
        run = out / v.replace("+", "_")
        final = run / "final"
        if not (final / "genbel_linker.json").exists():
            cfg = TrainConfig(**common, **extra[v], out=str(run))
            Trainer(cfg).train(
                resume=bool(list((run / "checkpoints").glob("step-*"))) if run.exists() else False
            )
        res_file = run / "eval_test.json"
        if not res_file.exists():
            env = dict(os.environ, OMP_NUM_THREADS="1")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "genbel.cli.main",
                    "evaluate",
                    str(test),
                    "--kb",
                    str(kb_path),
                    "--linker",
                    f"generative:{final}",
                    "--train-corpus",
                    str(train),
                    "--json-out",
                    str(res_file),
                ],
                check=True,
                env=env,
            )
        r = json.loads(res_file.read_text())
        results[v] = r
    print("| variant | R@1 [95% CI] | R@5 [95% CI] | R@1 seen / unseen | mentions |")
    print("|---|---|---|---|---|")
    for v, r in results.items():
        ci1, ci5 = r["ci95"]["recall_at_1"], r["ci95"]["recall_at_5"]
        sub = r.get("subsets", {})
        seen = sub.get("seen", {}).get("recall_at_1")
        unseen = sub.get("unseen", {}).get("recall_at_1")
        su = f"{seen:.1f} / {unseen:.1f}" if seen is not None and unseen is not None else "-"
        print(
            f"| {v} | {r['recall_at_1']:.1f} [{ci1[0]:.1f}, {ci1[1]:.1f}] | {r['recall_at_5']:.1f} "
            f"[{ci5[0]:.1f}, {ci5[1]:.1f}] | {su} | {r['n_mentions']} |"
        )


if __name__ == "__main__":
    main()
