"""Render `genbel evaluate --json-out` files as the markdown rows of docs/benchmarks.md.

    python benchmarks/eval_table.py benchmarks/out/ncbi_*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    r = json.loads(path.read_text())
    ci1 = r["ci95"]["recall_at_1"]
    ci5 = r["ci95"]["recall_at_5"]
    subs = r.get("subsets", {})
    seen = subs.get("concept:seen", {}).get("recall_at_1")
    unseen = subs.get("concept:unseen", {}).get("recall_at_1")
    split = f"{seen:.1f} / {unseen:.1f}" if seen is not None and unseen is not None else "–"
    aug = "yes" if r.get("kb_augmented_with") else "no"
    abbr = "yes" if r.get("expand_abbreviations") else "no"
    return (
        f"| {r['linker']} | {abbr} | {aug} | {r['recall_at_1']:.1f} [{ci1[0]:.1f}, {ci1[1]:.1f}] | "
        f"{r['recall_at_5']:.1f} [{ci5[0]:.1f}, {ci5[1]:.1f}] | {split} | {r['n_mentions']} | "
        f"{r.get('setup_seconds', 0):.1f} s | {r['mentions_per_second']:,.0f} | {r['peak_rss_mb']:,.0f} MB |"
    )


if __name__ == "__main__":
    print("| linker | abbr. expansion | KB + train mentions | R@1 [95% CI] | R@5 [95% CI] | R@1 seen / unseen | "
          "mentions | setup | mentions/s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in sys.argv[1:]:
        print(row(Path(p)))
