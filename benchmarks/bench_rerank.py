"""Retriever vs retriever + cross-encoder reranker, on the same mentions, side by side.

Rows: ``dense:default`` and ``dense:default+rerank:PATH`` (the gate and settings stored with the
reranker; ``--no-gate`` adds a row reranking every mention) on NCBI-disease test vs MEDIC (KB +
NCBI train/dev mentions, and KB only) and BC5CDR dev disease mentions vs CTD diseases (KB + BC5CDR
train mentions). Abbreviations are expanded; the retriever's concept prior is on (as shipped). R@1/R@5
with document-bootstrap 95% CIs (``genbel.eval.evaluate``), mentions/s of the whole pipeline (retrieval
+ reranking; KB embedding excluded, it is the index build), the share of mentions the gate let
through without reranking, and the load average. Also the NIL check: "cystic fibrosis" against the
bundled KB with its cystic fibrosis concepts removed, with ``nil=true``.

    nice -n 10 .venv/bin/python benchmarks/bench_rerank.py --reranker src/genbel/resources/models/reranker \\
        --protocols ncbi-kb+train ncbi-kb bc5cdr-kb+train [--no-gate] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

PROTOCOLS = {
    "ncbi-kb+train": ("ncbi-disease", "test", None, ("medic/medic_06Jul2012.txt", "medic", "MEDIC"),
                      [("ncbi-disease", "train"), ("ncbi-disease", "dev")]),
    "ncbi-kb": ("ncbi-disease", "test", None, ("medic/medic_06Jul2012.txt", "medic", "MEDIC"), []),
    "ncbi-dev-kb+train": ("ncbi-disease", "dev", None, ("medic/medic_06Jul2012.txt", "medic", "MEDIC"),
                          [("ncbi-disease", "train")]),
    "bc5cdr-kb+train": ("bc5cdr", "dev", ["Disease"], ("ctd-diseases/CTD_diseases_2017.tsv", "ctd", "CTD-diseases"),
                        [("bc5cdr", "train")]),
}


def _load(protocol: str):
    from genbel.data import filter_entity_types, load_dataset
    from genbel.kb import load_kb
    from genbel.kb.loaders import augment_kb

    dataset, split, types, (rel, fmt, name), extra = PROTOCOLS[protocol]
    kb = load_kb(DATA / rel, fmt, name=name)
    folder = DATA / ("ncbi-disease" if dataset == "ncbi-disease" else "bc5cdr")
    docs = load_dataset(dataset, split, folder)
    if types:
        docs = filter_entity_types(docs, types)
    added = 0
    for ds, sp in extra:
        more = load_dataset(ds, sp, folder)
        added += augment_kb(kb, filter_entity_types(more, types) if types else more)
    return kb, docs, added


def _row(name: str, protocol: str, res, extra: dict) -> dict:
    return {"linker": name, "protocol": protocol, "mentions": res.n_mentions,
            "R@1": round(res.recall_at_1, 1), "R@1 CI": [round(x, 1) for x in res.ci95["recall_at_1"]],
            "R@5": round(res.recall_at_5, 1), "mentions_per_s": round(res.mentions_per_second, 1),
            "load": round(os.getloadavg()[0], 1), **extra}


def run_protocol(protocol: str, reranker: str, no_gate: bool) -> list[dict]:
    from genbel.eval import evaluate
    from genbel.linkers.registry import create_linker
    from genbel.linkers.rerank import load_reranker

    kb, docs, added = _load(protocol)
    t0 = time.perf_counter()
    dense = create_linker("dense:default", kb, progress=True)
    built = time.perf_counter() - t0
    rows = []
    common = {"k": 5, "expand_abbreviations": True, "n_bootstrap": 1000, "seed": 0, "corpus_name": protocol}
    res = evaluate(docs, kb, dense, **common)
    rows.append(_row("dense:default", protocol, res, {"augmented_names": added, "index_build_s": round(built, 1)}))
    variants = [("", {})] + ([(" (no gate)", {"gate_score": None, "gate_margin": None})] if no_gate else [])
    for suffix, opts in variants:
        rr = load_reranker(reranker, kb, dense, **opts)
        res = evaluate(docs, kb, rr, **common)
        st = rr.stats
        rows.append(_row(f"dense:default+rerank{suffix}", protocol, res, {
            "gated_share": round(st["gated"] / max(1, st["queries"]), 3), "pairs_scored": st["pairs_scored"],
            "pairs_cached": st["pairs_cached"], "n_candidates": rr.n_candidates, "context_window": rr.context_window}))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def nil_check(reranker: str) -> dict:
    """"cystic fibrosis" against the bundled KB without its cystic fibrosis concepts, NIL on and off."""
    from genbel.kb import open_kb
    from genbel.linkers.registry import create_linker
    from genbel.linkers.rerank import load_reranker

    kb = open_kb("default")
    drop = {c.id for c in kb if any("cystic fibrosis" in n.lower() for n in c.names)}
    kb_out = kb.filter(ids=[c.id for c in kb if c.id not in drop])
    dense = create_linker("dense:default", kb_out, progress=True)
    before = dense.link(["cystic fibrosis"], k=1)[0]
    rr = load_reranker(reranker, kb_out, dense, nil=True, gate_score=None, gate_margin=None)
    after = rr.link(["cystic fibrosis"], k=1)[0]
    also = rr.link(["breast cancer", "colon cancer"], k=1)
    return {"removed_concepts": sorted(drop), "dense_top": [c.to_dict() for c in before],
            "rerank_nil": [c.to_dict() for c in after], "nil_threshold": rr.nil_threshold,
            "in_kb_controls": [[c.to_dict() for c in row] for row in also]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reranker", default="default", help="a reranker directory or 'default' (the shipped one)")
    ap.add_argument("--protocols", nargs="+", default=["ncbi-kb+train", "ncbi-kb", "bc5cdr-kb+train"],
                    choices=sorted(PROTOCOLS))
    ap.add_argument("--no-gate", action="store_true", help="also rerank every mention (no gate)")
    ap.add_argument("--nil", action="store_true", help="run the out-of-KB 'cystic fibrosis' check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"staged data not found: {DATA}")
    out: dict = {"date": time.strftime("%Y-%m-%d"), "reranker": args.reranker, "threads": args.threads, "rows": []}
    for p in args.protocols:
        out["rows"].extend(run_protocol(p, args.reranker, args.no_gate))
    if args.nil:
        out["nil_check"] = nil_check(args.reranker)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
