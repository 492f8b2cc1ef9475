"""Retrieval linkers on NCBI-disease test (MEDIC) and BC5CDR dev disease mentions (CTD diseases).

Reports Recall@1/@5 with 95% bootstrap CIs (protocol in ``../shared/protocol.md``), index build
time, linking speed and peak memory. Each (linker, corpus) runs in its own process so that peak
memory is that linker's.

    nice -n 10 .venv/bin/python benchmarks/bench_retrieval.py --linkers sparse dense \\
        --corpora ncbi-test bc5cdr-dev [--augment] [--prior] [--abbreviations] [--cache runs/indexes] \\
        [--threads 1] [--set KEY=VALUE] [--json benchmarks/out/retrieval.json]

``--augment`` adds the corpus' train+dev (BC5CDR: train) mentions to the KB as synonyms, as
BioSyn/SapBERT do; ``--prior`` ranks with the gold-concept counts of those mentions as a prior
(it breaks ties between concepts sharing a name); ``--abbreviations`` links the long forms of
abbreviations defined in the document. Linker specs are registry specs (``sparse``, ``dense``, ``dense:PATH``,
``biosyn:PATH`` …). ``--cache`` keeps dense indexes between runs (the reported build time is then
the one measured when the index was built).

``--protocols kb kb+train`` measures both dictionary protocols in one run (``kb``: the KB as is, no
training prior; ``kb+train``: as ``--augment --prior``). ``--first-use`` runs every (linker, corpus,
protocol) twice in fresh processes on one new, empty ``GENBEL_CACHE`` (or a copy of ``--seed-cache``):
the first run's setup is the *first use* (cold cache: the KB names are embedded unless shipped name
vectors cover them), the second's is the *warm setup* (index and name vectors from the cache); accuracy,
speed and peak RSS are the warm run's. Without ``--cache``, a trained retriever directory
(``dense:PATH``) uses the ``GENBEL_CACHE`` index and name-vector caches as the shipped one does.
Each row records the load average before and after its run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

CORPORA = {
    "ncbi-test": {
        "dataset": "ncbi-disease", "split": "test", "folder": "ncbi-disease", "types": None,
        "kb": ("medic/medic_06Jul2012.txt", "medic", "MEDIC"), "augment": [("ncbi-disease", "train"), ("ncbi-disease", "dev")],
    },
    "ncbi-dev": {
        "dataset": "ncbi-disease", "split": "dev", "folder": "ncbi-disease", "types": None,
        "kb": ("medic/medic_06Jul2012.txt", "medic", "MEDIC"), "augment": [("ncbi-disease", "train")],
    },
    "bc5cdr-dev": {
        "dataset": "bc5cdr", "split": "dev", "folder": "bc5cdr", "types": ["Disease"],
        "kb": ("ctd-diseases/CTD_diseases_2017.tsv", "ctd", "CTD-diseases"), "augment": [("bc5cdr", "train")],
    },
}


def _training_docs(corpus: str):
    from genbel.data import filter_entity_types, load_dataset

    c = CORPORA[corpus]
    docs = []
    for ds, split in c["augment"]:
        extra = load_dataset(ds, split, DATA / c["folder"])
        docs.extend(filter_entity_types(extra, c["types"]) if c["types"] else extra)
    return docs


def _load(corpus: str, augment: bool):
    from genbel.data import filter_entity_types, load_dataset
    from genbel.kb import load_kb
    from genbel.kb.loaders import augment_kb

    c = CORPORA[corpus]
    rel, fmt, name = c["kb"]
    kb = load_kb(DATA / rel, fmt, name=name)
    docs = load_dataset(c["dataset"], c["split"], DATA / c["folder"])
    if c["types"]:
        docs = filter_entity_types(docs, c["types"])
    added = augment_kb(kb, _training_docs(corpus)) if augment else 0
    return kb, docs, added


def _make_linker(spec: str, kb, cache: Path | None, options: dict | None = None):
    from genbel.linkers.registry import create_linker

    options = options or {}

    name, _, path = spec.partition(":")
    if cache is None and name in ("dense", "biosyn") and Path(path).is_dir():
        options.setdefault("cache_dir", True)  # a trained retriever: the GENBEL_CACHE caches, as dense:default
    if cache is None or name not in ("dense", "biosyn"):
        t0 = time.perf_counter()
        linker = create_linker(spec, kb, **options)
        return linker, time.perf_counter() - t0, False
    key = hashlib.sha256(spec.encode()).hexdigest()[:10]
    d = cache / f"{name}-{kb.fingerprint()}-{key}"
    from genbel.linkers.dense import DenseLinker

    if (d / "meta.json").is_file():
        linker = create_linker(f"{name}:{d}", kb, **options)
        built = json.loads((d / "build.json").read_text())["seconds"] if (d / "build.json").is_file() else float("nan")
        return linker, built, True
    t0 = time.perf_counter()
    linker = create_linker(spec, kb, **options)
    seconds = time.perf_counter() - t0
    assert isinstance(linker, DenseLinker)
    linker.save(d)
    (d / "build.json").write_text(json.dumps({"seconds": seconds, "spec": spec}))
    return linker, seconds, False


def run_one(spec: str, corpus: str, augment: bool, cache: Path | None, options: dict | None = None,
            prior: bool = False, abbreviations: bool = False) -> dict:
    from genbel.eval import evaluate
    from genbel.linkers.nametable import concept_prior

    kb, docs, added = _load(corpus, augment)
    options = dict(options or {})
    if prior:
        options["prior"] = concept_prior(_training_docs(corpus), kb)
    linker, build_s, cached = _make_linker(spec, kb, cache, options)
    if prior:
        options["prior"] = "train"
    options.pop("cache_dir", None)
    load0 = os.getloadavg()[0]
    res = evaluate(docs, kb, linker, k=5, corpus_name=corpus, setup_seconds=build_s, n_bootstrap=1000, seed=0,
                   expand_abbreviations=abbreviations)
    stats = getattr(linker, "embedding_stats", None)
    return {
        "linker": spec + "".join(f" {k}={v}" for k, v in options.items()) + (" +abbr" if abbreviations else ""),
        "protocol": "kb+train" if augment else "kb",
        "names_embedded": getattr(stats, "embedded", None), "embedding_s": getattr(stats, "seconds", None),
        "load": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "corpus": corpus,
        "augmented_names": added, "n_mentions": res.n_mentions,
        "n_nil_dropped": res.n_nil_dropped, "n_gold_not_in_kb": res.n_gold_not_in_kb,
        "R@1": res.recall_at_1, "R@1 CI": res.ci95["recall_at_1"], "R@5": res.recall_at_5,
        "R@5 CI": res.ci95["recall_at_5"], "build_s": round(build_s, 2), "index_cached": cached,
        "mentions_per_s": round(res.mentions_per_second, 1), "ms_per_mention": round(1000 / res.mentions_per_second, 3),
        "peak_rss_mb": round(res.peak_rss_mb, 1), "kb_names": kb.n_names(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--linkers", nargs="+", default=["sparse"])
    ap.add_argument("--corpora", nargs="+", default=["ncbi-test", "bc5cdr-dev"], choices=sorted(CORPORA))
    ap.add_argument("--augment", action="store_true", help="add train(+dev) mentions to the KB (BioSyn protocol)")
    ap.add_argument("--protocols", nargs="+", choices=["kb", "kb+train"], default=None,
                    help="dictionary protocols to run (kb+train = --augment --prior); overrides --augment/--prior")
    ap.add_argument("--first-use", action="store_true",
                    help="run each row cold (fresh GENBEL_CACHE) then warm; report both setups")
    ap.add_argument("--seed-cache", type=Path, default=None,
                    help="with --first-use: copy this GENBEL_CACHE folder instead of starting empty")
    ap.add_argument("--prior", action="store_true",
                    help="rank with the gold-concept counts of the train(+dev) mentions as a prior (ties)")
    ap.add_argument("--abbreviations", action="store_true", help="link abbreviations' long forms (Schwartz-Hearst)")
    ap.add_argument("--cache", type=Path, default=None, help="directory that keeps dense indexes between runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="linker option for every linker, e.g. sparse_weight=0.5 (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for dense encoders (default: torch's)")
    ap.add_argument("--_child", nargs=2, metavar=("SPEC", "CORPUS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        from genbel.linkers.registry import parse_options

        options = parse_options(args.set)
        row = run_one(args._child[0], args._child[1], args.augment, args.cache, options, args.prior, args.abbreviations)
        print("RESULT " + json.dumps(row), flush=True)
        return

    protocols = args.protocols or (["kb+train"] if args.augment else ["kb"])
    rows = []
    for corpus in args.corpora:
        for protocol in protocols:
            for spec in args.linkers:
                cmd = [sys.executable, __file__, "--_child", spec, corpus]
                flags = {"abbreviations": args.abbreviations}
                if args.protocols:
                    flags.update(augment=protocol == "kb+train", prior=protocol == "kb+train")
                else:
                    flags.update(augment=args.augment, prior=args.prior)
                cmd += [f"--{flag}" for flag, on in flags.items() if on]
                if args.cache:
                    cmd += ["--cache", str(args.cache)]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                for kv in args.set:
                    cmd += ["--set", kv]
                if args.first_use:
                    rows.append(_first_use(cmd, spec, corpus, args.seed_cache))
                else:
                    rows.append(_run(cmd, spec, corpus, os.environ))
                r = rows[-1]
                sys.stderr.write(f"done {spec} {corpus} {protocol}: R@1 {r['R@1']}\n")

    head = ["corpus", "protocol", "linker", "n", "R@1 [95% CI]", "R@5 [95% CI]", "first use s", "warm setup s",
            "mentions/s", "peak MB", "load"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        ci, ci5 = r["R@1 CI"], r["R@5 CI"]
        first = f"{r['first_use_s']:.1f}" if r.get("first_use_s") is not None else "–"
        print(
            f"| {r['corpus']} | {r['protocol']} ({r['augmented_names']} names added) | {r['linker']} | {r['n_mentions']} | "
            f"{r['R@1']:.1f} [{ci[0]:.1f}, {ci[1]:.1f}] | {r['R@5']:.1f} [{ci5[0]:.1f}, {ci5[1]:.1f}] | {first} | "
            f"{r['build_s']:.1f}{' (cached)' if r['index_cached'] else ''} | {r['mentions_per_s']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['load'][0]}–{r['load'][1]} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


def _run(cmd: list[str], spec: str, corpus: str, env) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{spec} on {corpus} failed")
    return json.loads(line[7:])


def _first_use(cmd: list[str], spec: str, corpus: str, seed_cache: Path | None) -> dict:
    """Cold then warm run of one row on one fresh cache folder (removed afterwards)."""
    tmp = Path(tempfile.mkdtemp(prefix="genbel-cold-"))
    try:
        cache = tmp / "cache"
        if seed_cache is not None:
            shutil.copytree(seed_cache, cache)
        env = {**os.environ, "GENBEL_CACHE": str(cache)}
        cold = _run(cmd, spec, corpus, env)
        warm = _run(cmd, spec, corpus, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**warm, "first_use_s": cold["build_s"], "first_use_names_embedded": cold["names_embedded"],
            "first_use_embedding_s": cold.get("embedding_s"),
            "first_use_load": cold["load"], "cold_R@1": cold["R@1"]}


if __name__ == "__main__":
    main()
