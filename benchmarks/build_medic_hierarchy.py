"""Build the bundled KB's hierarchy: ``src/genbel/resources/kb/medic_06Jul2012.parents.tsv.gz``.

The bundled MEDIC (BioSyn's 2012 pre-processing) has no parent links; CTD's disease vocabulary
(``CTD_diseases.tsv``, columns ``ParentIDs``) has them. For every MEDIC concept found in CTD (by any
of its ids) this writes its CTD parents mapped to MEDIC main ids; a CTD parent that is not a MEDIC
concept is replaced by its own parents, up the tree, so that chains of ancestors stay connected.

    python benchmarks/build_medic_hierarchy.py /work/shared/data/ctd-diseases/CTD_diseases_2017.tsv
"""

from __future__ import annotations

import argparse
import gzip
import logging
from pathlib import Path

from genbel.kb import load_kb
from genbel.kb.loaders import DEFAULT_KB_RESOURCE, load_medic

logger = logging.getLogger("build_medic_hierarchy")
OUT = Path(__file__).resolve().parents[1] / "src" / "genbel" / "resources" / "kb" / "medic_06Jul2012.parents.tsv.gz"


def medic_parents(medic, ctd) -> dict[str, list[str]]:
    def in_medic(cid: str, seen: set[str]) -> list[str]:
        """MEDIC main ids standing for the CTD concept ``cid``: itself, else its nearest MEDIC ancestors."""
        m = medic.resolve_id(cid)
        if m is None:
            c = ctd.get(cid)
            if c is not None:
                m = next((medic.resolve_id(a) for a in c.all_ids if medic.resolve_id(a)), None)
        if m is not None:
            return [m]
        c = ctd.get(cid)
        if c is None or c.id in seen:
            return []
        seen.add(c.id)
        return [x for p in c.parents for x in in_medic(p, seen)]

    out: dict[str, list[str]] = {}
    for m in medic:
        c = next((ctd.get(i) for i in m.all_ids if ctd.get(i) is not None), None)
        if c is None:
            continue
        ps = [x for p in c.parents for x in in_medic(p, {c.id})]
        ps = [x for x in dict.fromkeys(ps) if x != m.id]
        if ps:
            out[m.id] = ps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ctd", type=Path, help="CTD_diseases.tsv (ParentIDs column)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    from importlib.resources import as_file, files

    with as_file(files("genbel") / "resources" / "kb" / DEFAULT_KB_RESOURCE) as p:
        medic = load_medic(p)
    ctd = load_kb(args.ctd, "ctd")
    parents = medic_parents(medic, ctd)
    header = (f"# Parent links of the bundled MEDIC (06 Jul 2012) from CTD's ParentIDs ({args.ctd.name}):\n"
              "# concept id<TAB>parent ids ('|'); built by benchmarks/build_medic_hierarchy.py\n")
    body = "".join(f"{cid}\t{'|'.join(ps)}\n" for cid, ps in sorted(parents.items()))
    with gzip.GzipFile(args.out, "wb", mtime=0) as fh:  # mtime 0: the same input gives the same bytes
        fh.write((header + body).encode("utf-8"))
    logger.info("%d of %d MEDIC concepts got parents → %s (%d bytes)", len(parents), len(medic), args.out,
                 args.out.stat().st_size)


if __name__ == "__main__":
    main()
