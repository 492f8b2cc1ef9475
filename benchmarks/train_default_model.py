"""Train genbel's shipped default model (LoRA over SmolLM2-135M-Instruct, MEDIC diseases).

Data: NCBI-disease train + dev (minus ``--heldout`` dev documents kept for checkpoint selection)
and the Disease mentions of BC5CDR train + dev, linked to MEDIC (2012). Usage::

    nohup nice -n 10 .venv/bin/python benchmarks/train_default_model.py --out runs/default \
        > runs/default.log 2>&1 &

The held-out documents are written to ``<out>/data/`` so the evaluation can use them. Extra
``--set key=value`` pairs override :class:`genbel.training.TrainConfig` fields (JSON values).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/default")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument(
        "--heldout", type=int, default=20, help="NCBI dev documents held out for checkpoint selection"
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from genbel.data import load_documents, write_corpus
    from genbel.training import TrainConfig, Trainer

    data = Path(args.data)
    out = Path(args.out)
    split_dir = out / "data"
    dev_train, dev_held = split_dir / "ncbi_dev_train.pubtator", split_dir / "ncbi_dev_heldout.pubtator"
    if not dev_held.exists():
        dev = load_documents(data / "ncbi-disease" / "NCBIdevelopset_corpus.txt")
        dev = sorted(dev, key=lambda d: d.document_id)  # deterministic: the last N PMIDs are held out
        split_dir.mkdir(parents=True, exist_ok=True)
        write_corpus(dev[: len(dev) - args.heldout], dev_train, "pubtator")
        write_corpus(dev[len(dev) - args.heldout :], dev_held, "pubtator")

    settings = dict(
        base_model="smollm2-135m",
        kb=str(data / "medic" / "medic_06Jul2012.txt"),
        train_corpora=[
            str(data / "ncbi-disease" / "NCBItrainset_corpus.txt"),
            str(dev_train),
            str(data / "bc5cdr" / "CDR_TrainingSet.PubTator.txt"),
            str(data / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"),
        ],
        dev_corpus=str(dev_held),
        entity_types=["SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention", "Disease"],
        abbreviations="both",
        context_chars=0,
        include_group=False,
        lora=True,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        epochs=2.5,
        batch_size=16,
        lr=5e-4,
        warmup_ratio=0.03,
        scheduler="linear",
        num_threads=1,
        max_minutes=55,
        eval_every=100,
        save_every=50,
        keep_checkpoints=2,
        out=str(out),
    )
    for kv in args.set:
        k, _, v = kv.partition("=")
        settings[k] = json.loads(v)
    cfg = TrainConfig(**settings)
    trainer = Trainer(cfg)
    final = trainer.train(resume=args.resume)
    logging.info("final linker: %s", final)


if __name__ == "__main__":
    main()
