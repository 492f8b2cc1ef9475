"""Retrieve-then-generate on NCBI-disease test (MEDIC): ``HybridLinker`` in both modes.

The retriever is a trained BioSyn-style MiniLM (dense score, tie-break prior from its training
mentions) over MEDIC augmented with the NCBI-disease train + dev mentions, as in the retrieval rows of
``docs/benchmarks.md``; the generator is the shipped generative default. Abbreviations are expanded.

* ``constrain`` — the retriever's top-N concepts restrict the generator's trie; evaluated end to end
  with :func:`genbel.eval.evaluate` (R@1/R@5, document-bootstrap CI, mentions/s).
* ``rerank`` — one pass computes, per mention, the retriever's top-N concepts and the generator's mean
  token log-probability of each concept's retrieved name; ``HybridLinker``'s rerank formula
  (generative + weight × retrieval score) is then applied for every ``--weights`` value (the expensive
  scoring is shared; the ranking is the same as ``HybridLinker(mode="rerank", retriever_weight=w)``).

    nice -n 5 .venv/bin/python benchmarks/bench_hybrid.py --retriever runs/retrieval/biosyn-ncbi \\
        --mode constrain --n 5 [--cache runs/indexes] [--max-docs N]
    nice -n 5 .venv/bin/python benchmarks/bench_hybrid.py --retriever runs/retrieval/biosyn-ncbi \\
        --mode rerank --n 5 --weights 0,1,2,5,10,20,50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_retrieval as br  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retriever", default="runs/retrieval/biosyn-ncbi")
    ap.add_argument("--generator", default=str(br.ROOT / "src" / "genbel" / "resources" / "models" / "default"))
    ap.add_argument("--mode", choices=("constrain", "rerank"), default="constrain")
    ap.add_argument("--n", type=int, default=5, help="retrieved concepts per mention")
    ap.add_argument("--weights", default="0,10,50", help="rerank: retriever weights to apply")
    ap.add_argument("--cache", type=Path, default=None, help="directory that keeps dense indexes")
    ap.add_argument("--max-docs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from genbel.data.queries import queries_from_documents
    from genbel.eval import evaluate, expand_gold_ids
    from genbel.eval.metrics import bootstrap_ci
    from genbel.linkers.hybrid import HybridLinker
    from genbel.linkers.nametable import concept_prior
    from genbel.linkers.registry import create_linker

    torch.set_num_threads(args.threads)
    kb, docs, _ = br._load("ncbi-test", True)
    docs = docs[: args.max_docs] if args.max_docs else docs
    t0 = time.perf_counter()
    prior = concept_prior(br._training_docs("ncbi-test"), kb)
    retriever, _, _ = br._make_linker(f"dense:{args.retriever}", kb, args.cache, {"prior": prior})
    generator = create_linker(f"generative:{args.generator}", kb)
    hybrid = HybridLinker(kb, generator, retriever, mode=args.mode, n_candidates=args.n)
    setup = time.perf_counter() - t0
    rows = []
    if args.mode == "constrain":
        res = evaluate(docs, kb, hybrid, k=5, expand_abbreviations=True, setup_seconds=setup)
        rows.append({"mode": "constrain", "n": args.n, "R@1": res.recall_at_1, "R@1 CI": res.ci95["recall_at_1"],
                     "R@5": res.recall_at_5, "mentions_per_s": res.mentions_per_second})
    else:
        queries = queries_from_documents(docs, expand_abbreviations=True)
        t1 = time.perf_counter()
        retrieved = hybrid.retrieve(queries)
        names = [[hybrid._names(c)[0] for c in r] for r in retrieved]
        scores = generator.score_candidates(queries, names, normalize=True)
        seconds = time.perf_counter() - t1
        doc_of = {d: i for i, d in enumerate(dict.fromkeys(q.doc_id for q in queries))}
        didx = np.array([doc_of[q.doc_id] for q in queries])

        golds = [expand_gold_ids(q.gold_ids, kb)[0] for q in queries]
        for w in [None, *(float(x) for x in args.weights.split(","))]:
            h1, h5 = [], []
            for cands, gen, g in zip(retrieved, scores, golds):
                order = list(range(len(cands)))
                if w is not None:
                    order.sort(key=lambda i: (-(gen[i] + w * cands[i].score), i))
                ok = [bool((kb.ids_of(cands[i].concept_id) or {cands[i].concept_id}) & g) for i in order]
                h1.append(float(any(ok[:1])))
                h5.append(float(any(ok[:5])))
            h1a, h5a = np.array(h1), np.array(h5)
            rows.append({"mode": "retriever only" if w is None else f"rerank w={w:g}", "n": args.n,
                         "R@1": round(100 * h1a.mean(), 2), "R@1 CI": list(bootstrap_ci(h1a, didx, 1000, 0)),
                         "R@5": round(100 * h5a.mean(), 2),
                         "mentions_per_s": round(len(queries) / seconds, 2) if w is not None else None})
    for r in rows:
        print(json.dumps(r))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
