"""Throughput of the shipped generative default (SmolLM2-135M + LoRA, 5 beams, trie-constrained) over
MEDIC on distinct NCBI-disease test mention strings (distinct so that no input is decoded twice), for
batch sizes 1, 8 and 32, with torch's default threads. Prints one JSON line per batch size.

    .venv/bin/python benchmarks/bench_default_throughput.py [--n 96] [--n1 24]
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
    ap.add_argument("--n", type=int, default=96, help="mentions for batch sizes 8 and 32")
    ap.add_argument("--n1", type=int, default=24, help="mentions for batch size 1")
    args = ap.parse_args()

    import torch

    from genbel.data import load_corpus
    from genbel.data.queries import queries_from_documents
    from genbel.kb import load_kb
    from genbel.linkers.generative import GenerativeLinker

    kb = load_kb(DATA / "medic" / "medic_06Jul2012.txt")
    docs = load_corpus(DATA / "ncbi-disease" / "NCBItestset_corpus.txt")
    seen: set[str] = set()
    queries = []
    for q in queries_from_documents(docs):
        if q.text not in seen:
            seen.add(q.text)
            queries.append(q)
    t0 = time.perf_counter()
    linker = GenerativeLinker.load(str(REPO / "src" / "genbel" / "resources" / "models" / "default"), kb)
    setup = time.perf_counter() - t0
    print(json.dumps({"setup_s": round(setup, 1), "threads": torch.get_num_threads(), "load": os.getloadavg()}))
    for bs, n in ((1, args.n1), (8, args.n), (32, args.n)):
        qs = queries[:n]
        t0 = time.perf_counter()
        linker.generate(qs, batch_size=bs)
        dt = time.perf_counter() - t0
        print(json.dumps({"batch_size": bs, "mentions": n, "seconds": round(dt, 1),
                          "mentions_per_s": round(n / dt, 2), "load": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
