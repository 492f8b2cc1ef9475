"""Benchmark of KB build, save and load for MEDIC and CTD (the staged files in ../shared/data).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_kb.py [--repeat 3] [--json benchmarks/out/bench_kb.json]

Each KB is measured in a fresh subprocess so that its peak RSS is its own:

* build  = ``genbel.kb.load_kb(source)`` (parse the vocabulary file, default options);
* save   = ``KnowledgeBase.save`` to a temporary directory (SQLite + meta.json, atomic rename);
* load   = ``KnowledgeBase.load`` of that directory, fingerprint verified (best of ``--repeat``);
* peak RSS of the subprocess, and the RSS it had before anything was loaded.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SOURCES = {
    "MEDIC": DATA / "medic" / "medic_06Jul2012.txt",
    "CTD": DATA / "ctd-diseases" / "CTD_diseases_2017.tsv",
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure(name: str, repeat: int) -> dict:
    import psutil

    base_rss = psutil.Process().memory_info().rss / 2**20
    from genbel.kb import KnowledgeBase, load_kb

    t0 = time.perf_counter()
    kb = load_kb(SOURCES[name])
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench_kb_") as tmp:
        target = Path(tmp) / "kb"
        t0 = time.perf_counter()
        kb.save(target)
        save = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in target.iterdir())
        loads = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            back = KnowledgeBase.load(target)
            loads.append(time.perf_counter() - t0)
        assert back.fingerprint() == kb.fingerprint()
    return {
        "kb": name,
        "concepts": len(kb),
        "names": kb.n_names(),
        "build_s": round(build, 3),
        "save_s": round(save, 3),
        "load_s": round(min(loads), 3),
        "load_all_s": [round(x, 3) for x in loads],
        "disk_mb": round(size / 2**20, 2),
        "rss_before_mb": round(base_rss, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="load repetitions (best is reported)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument("--one", choices=sorted(SOURCES), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure(args.one, args.repeat)))
        return

    missing = [str(p) for p in SOURCES.values() if not p.exists()]
    if missing:
        sys.exit(f"staged data not found: {', '.join(missing)}")
    results = []
    for name in SOURCES:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--repeat", str(args.repeat)],
            check=True, capture_output=True, text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    header = f"{'KB':<6} {'concepts':>9} {'names':>7} {'build s':>8} {'save s':>7} {'load s':>7} " \
             f"{'disk MB':>8} {'RSS start MB':>13} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['kb']:<6} {r['concepts']:>9,} {r['names']:>7,} {r['build_s']:>8.3f} {r['save_s']:>7.3f} "
              f"{r['load_s']:>7.3f} {r['disk_mb']:>8.2f} {r['rss_before_mb']:>13.1f} "
              f"{r['peak_rss_mb']:>12.1f}")
    print(f"\nload = best of {args.repeat}; peak RSS of a fresh Python process that built, saved and "
          "loaded the KB.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "repeat": args.repeat}, indent=2) + "\n")


if __name__ == "__main__":
    main()
