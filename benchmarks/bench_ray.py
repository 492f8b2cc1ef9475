"""Throughput of ``genbel annotate --engine ray`` with 1 and 2 workers against the single-process
``genbel annotate`` on the same corpus, and what that means for 36M PubMed abstracts.

Corpus: the first ``--n-docs`` NCBI-disease test abstracts (title + " " + abstract) as plain ``{id, text}``
JSON records, cut into ``--shards`` shards for Ray, and the same documents whole as one BigBio JSONL file
for the single process. Variants (``--variants``): ``tfidf`` = ``--detector dictionary --linker tfidf``; ``default`` =
genbel's default detector (disease tagger ∪ dictionary) + ``dense:default``. KB: the bundled MEDIC;
abbreviations expanded (the annotate default). Every run is the real command in a fresh process
(``python -m genbel.cli.main annotate …``), so each wall time includes start-up, model loading and, for
Ray, starting a local Ray instance: that difference is the overhead. The runs are interleaved
(local, ray×1, ray×2, local, …) ``--repeat`` times; medians are reported with the 1-minute load average
read before each run. Each Ray output (the shards concatenated) is compared with the single-process output.

From the run record of each Ray run (``OUT/_genbel_run.json``) comes the steady rate after the first
shard (Ray start and model loading excluded); the 36M-abstract estimate uses the 1-worker steady rate
(one worker = one CPU core and one torch thread).

    .venv/bin/python benchmarks/bench_ray.py                       # both variants, 100 abstracts, 10 shards
    .venv/bin/python benchmarks/bench_ray.py --variants tfidf --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VARIANTS = {
    "tfidf": ["--detector", "dictionary", "--linker", "tfidf"],
    "default": ["--detector", "default", "--linker", "dense:default"],
}
PUBMED = 36_000_000


def _load() -> float:
    return os.getloadavg()[0]


def _genbel(*argv: str) -> float:
    """Wall seconds of one ``genbel`` command in a fresh process (fails loudly on an error)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "genbel.cli.main", *argv], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"genbel {' '.join(argv)} failed:\n{r.stderr[-3000:]}")
    print("   ", r.stderr.strip().splitlines()[-1], file=sys.stderr)
    return dt


def _entities(text: str) -> list[tuple]:
    return [(d["document_id"], e["offsets"], e["candidates"][0]["code"] if e["candidates"] else None)
            for d in map(json.loads, text.splitlines()) for e in d["entities"]]


def make_corpus(corpus: str, n_docs: int, n_shards: int, work: Path) -> tuple[list, list[str]]:
    """The first ``n_docs`` abstracts of an NCBI-disease split as plain ``{id, text}`` records in
    ``n_shards`` JSONL shards (``work/shards/part-NNN.jsonl``) and whole as one BigBio JSONL file
    (``work/all.jsonl``, for the single process); returns the documents and the shard names."""
    from genbel.data import load_documents, write_corpus
    from genbel.data.text import text_documents

    split = {"test": "NCBItestset_corpus.txt", "train": "NCBItrainset_corpus.txt"}[corpus]
    gold = load_documents(DATA / "ncbi-disease" / split)[:n_docs]  # lenient: train has quirks
    shards = work / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    records = [json.dumps({"id": d.document_id, "text": d.text}) + "\n" for d in gold]
    # the single process reads the same documents as BigBio JSONL (it does not read plain records)
    write_corpus([text_documents(d.text, d.document_id)[0] for d in gold], work / "all.jsonl", "bigbio-jsonl")
    per = -(-len(records) // n_shards)
    names = []
    for i in range(0, len(records), per):
        name = f"part-{i // per:03d}.jsonl"
        (shards / name).write_text("".join(records[i:i + per]), encoding="utf-8")
        names.append(name)
    return gold, names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["tfidf", "default"], choices=sorted(VARIANTS))
    ap.add_argument("--n-docs", type=int, default=100)
    ap.add_argument("--corpus", choices=["test", "train"], default="test",
                    help="NCBI-disease split to read the abstracts from (train: 593, enough to see the steady rate)")
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cores-per-node", type=int, default=64, help="for the cluster estimate")
    ap.add_argument("--work", type=Path, default=None, help="folder for the corpus and outputs (default: a temp dir)")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-ray-"))
    gold, names = make_corpus(args.corpus, args.n_docs, args.shards, work)
    shards = work / "shards"
    print(f"# {len(gold)} abstracts, {sum(len(d.text) for d in gold):,} characters, {len(names)} shards; "
          f"{os.cpu_count()} CPUs; {work}", file=sys.stderr)

    results = []
    for variant in args.variants:
        opts = VARIANTS[variant]
        runs: dict[str, list[dict]] = {}
        for rep in range(args.repeat):
            plan = [("local", 0)] + [(f"ray x{w}", w) for w in args.workers]
            for label, w in plan:
                load = _load()
                out = work / f"{variant}-{label.replace(' ', '')}-{rep}"
                if w == 0:
                    wall = _genbel("annotate", str(work / "all.jsonl"), "-o", f"{out}.jsonl", *opts, "-q")
                    row = {"wall": wall, "load": load}
                else:
                    wall = _genbel("annotate", str(shards), "-o", str(out), *opts, "-q", "--engine", "ray",
                                   "--workers", str(w))
                    rec = json.loads((out / "_genbel_run.json").read_text())["genbel_distributed_run"]
                    steady_n = rec["documents"] - rec["first_shard_documents"]
                    steady_s = rec["seconds"] - rec["first_shard_seconds"]
                    got = "".join((out / n).read_text(encoding="utf-8") for n in names)
                    single = (work / f"{variant}-local-{rep}.jsonl").read_text(encoding="utf-8")
                    row = {"wall": wall, "load": load, "steady": steady_n / steady_s if steady_s > 0 else None,
                           "first_shard_s": rec["first_shard_seconds"], "byte_equal": got == single,
                           "entity_equal": _entities(got) == _entities(single)}
                print(json.dumps({"variant": variant, "engine": label, "repeat": rep, **row}))
                runs.setdefault(label, []).append(row)
        local = statistics.median(r["wall"] for r in runs["local"])
        summary = {"variant": variant, "n_docs": len(gold), "local_wall_s": round(local, 1),
                   "local_docs_per_s": round(len(gold) / local, 2)}
        for w in args.workers:
            rs = runs[f"ray x{w}"]
            wall = statistics.median(r["wall"] for r in rs)
            steady = statistics.median(r["steady"] for r in rs if r["steady"])
            summary[f"ray{w}_wall_s"] = round(wall, 1)
            summary[f"ray{w}_docs_per_s"] = round(len(gold) / wall, 2)
            summary[f"ray{w}_steady_docs_per_s"] = round(steady, 2)
            summary[f"ray{w}_overhead_s"] = round(wall - local, 1)
            summary[f"ray{w}_byte_equal"] = all(r["byte_equal"] for r in rs)
            summary[f"ray{w}_entity_equal"] = all(r["entity_equal"] for r in rs)
        if len(args.workers) >= 2:
            a, b = args.workers[0], args.workers[1]
            summary[f"speedup_{b}_vs_{a}_steady"] = round(summary[f"ray{b}_steady_docs_per_s"] / summary[f"ray{a}_steady_docs_per_s"], 2)
        one = summary[f"ray{args.workers[0]}_steady_docs_per_s"] / args.workers[0]  # per worker = per core
        core_hours = PUBMED / one / 3600
        summary["core_hours_36M"] = round(core_hours)
        summary[f"hours_36M_on_{args.cores_per_node}core_nodes"] = {
            n: round(core_hours / (n * args.cores_per_node), 1) for n in (1, 10, 50, 100)
        }
        summary["load_min_max"] = [round(min(r["load"] for rs in runs.values() for r in rs), 1),
                                   round(max(r["load"] for rs in runs.values() for r in rs), 1)]
        print(json.dumps({"summary": summary}))
        results.append(summary)
    print(f"# uptime load at the end: {_load():.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
