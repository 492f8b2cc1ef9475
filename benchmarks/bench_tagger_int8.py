"""The NER tagger in float32 and with int8 linear layers (``quantize=True``) (and with ``--onnx`` in float32
run by ONNX Runtime, ``runtime="onnx"``), interleaved: seconds per
``detect_batch`` over the first ``N`` abstracts of a PubTator corpus (default NCBI-disease dev) and the
exact-span F1 of each (no bootstrap).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_tagger_int8.py --tagger default --n-docs 20 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tagger", default="default", help="tagger path or 'default'")
    ap.add_argument("--corpus", type=Path, default=DATA / "ncbi-disease" / "NCBIdevelopset_corpus.txt")
    ap.add_argument("--n-docs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx", action="store_true", help="also the float32 tagger run by ONNX Runtime")
    args = ap.parse_args()

    import torch

    from genbel.data import LENIENT, load_corpus
    from genbel.eval.spans import ner_scores
    from genbel.ner import create_detector

    torch.set_num_threads(args.threads)
    docs = load_corpus(args.corpus, **LENIENT)[: args.n_docs]
    texts = [d.text for d in docs]
    variants = {"float32": create_detector(f"tagger:{args.tagger}"),
                "int8": create_detector(f"tagger:{args.tagger}", quantize=True)}
    if args.onnx:
        variants["onnx"] = create_detector(f"tagger:{args.tagger}", runtime="onnx")
    preds = {}
    for r in range(args.repeat):
        for name, det in variants.items():
            t0 = time.perf_counter()
            preds[name] = det.detect_batch(texts)
            dt = time.perf_counter() - t0
            print(json.dumps({"run": r, "variant": name, "seconds": round(dt, 2),
                              "docs_per_s": round(len(texts) / dt, 2), "load": os.getloadavg()}), flush=True)
    print(json.dumps({name: ner_scores(docs, p, n_bootstrap=0).scores["exact"].f1 for name, p in preds.items()}))


if __name__ == "__main__":
    main()
