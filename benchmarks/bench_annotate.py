"""Throughput of raw text → linked concepts: ``genbel annotate`` (genbel.annotate.annotate_to_file: detect,
link with abbreviations written out, write a CSV) and the spaCy pipeline (``genbel_ner`` + ``genbel_linker``
on ``spacy.blank("en")``, ``nlp.pipe``) on the same texts, interleaved, with the same detector and linker.

Texts: the first ``--n-docs`` NCBI-disease test abstracts as plain text (title + " " + abstract, no
annotations). Setup (KB, detector, linker, index) is done once before the timed runs and reported apart;
each timed run covers detection, linking and (annotate) writing. Prints one JSON line per run and a summary
line with the median documents/s and characters/s of each, the 1-minute load average and the peak RSS.

    .venv/bin/python benchmarks/bench_annotate.py --detector default --linker default [--n-docs 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="default")
    ap.add_argument("--linker", default="default")
    ap.add_argument("--kb", default="default", help="KB spec (default: the bundled MEDIC)")
    ap.add_argument("--n-docs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-spacy", action="store_true")
    ap.add_argument("--quantize-tagger", action="store_true",
                    help="also time the detector with the tagger's linear layers in int8, interleaved")
    ap.add_argument("--onnx-tagger", action="store_true",
                    help="also time the detector with the tagger run by ONNX Runtime, interleaved")
    args = ap.parse_args()

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    from genbel.annotate import annotate_to_file, make_detector, make_linker
    from genbel.data import load_corpus
    from genbel.data.text import text_documents
    from genbel.kb import open_kb

    gold = load_corpus(DATA / "ncbi-disease" / "NCBItestset_corpus.txt")[: args.n_docs]
    texts = [d.text for d in gold]
    docs = [text_documents(t, d.document_id)[0] for t, d in zip(texts, gold)]
    chars = sum(len(t) for t in texts)
    t0 = time.perf_counter()
    kb = open_kb(args.kb)
    detector = make_detector(args.detector, kb)
    variants = {"annotate": detector}
    if args.quantize_tagger:
        from genbel.ner import create_detector

        variants["annotate-int8"] = create_detector(args.detector, kb, quantize=True)
    if args.onnx_tagger:
        from genbel.ner import create_detector

        variants["annotate-onnx"] = create_detector(args.detector, kb, runtime="onnx")
    linker = make_linker(args.linker, kb)
    linker.link(["breast cancer"], k=5)  # builds any index / loads the model
    setup = time.perf_counter() - t0
    nlp = None
    if not args.no_spacy:
        import spacy

        import genbel.integrations.spacy  # noqa: F401  (registers the components)

        nlp = spacy.blank("en")
        ner = nlp.add_pipe("genbel_ner", config={"detector": args.detector})
        lk = nlp.add_pipe("genbel_linker", config={"linker": args.linker, "k": 5})
        for component in (ner, lk):  # the KB, detector and linker built above (setup is not timed twice)
            component.set_kb(kb)
        ner.set_detector(detector)
        lk.set_linker(linker)
    print(json.dumps({"setup_s": round(setup, 1), "documents": len(docs), "characters": chars,
                      "detector": args.detector, "linker": args.linker, "load": os.getloadavg()}), flush=True)
    rates: dict[str, list[float]] = {**{v: [] for v in variants}, "spacy": []}
    mentions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for what, det in variants.items():
                t0 = time.perf_counter()
                run = annotate_to_file(docs, Path(tmp) / f"out{r}-{what}.csv", kb=kb, linker=linker, detector=det)
                dt = time.perf_counter() - t0
                rates[what].append(dt)
                mentions[what] = run.n_mentions
                print(json.dumps({"run": r, "what": what, "seconds": round(dt, 2), "mentions": run.n_mentions,
                                  "docs_per_s": round(len(docs) / dt, 2), "load": os.getloadavg()}), flush=True)
            if nlp is not None:
                t0 = time.perf_counter()
                out = list(nlp.pipe(texts, batch_size=32))
                dt = time.perf_counter() - t0
                rates["spacy"].append(dt)
                mentions["spacy"] = sum(len(d.ents) for d in out)
                print(json.dumps({"run": r, "what": "spacy", "seconds": round(dt, 2), "mentions": mentions["spacy"],
                                  "docs_per_s": round(len(docs) / dt, 2), "load": os.getloadavg()}), flush=True)
    summary = {}
    for what, secs in rates.items():
        if secs:
            med = statistics.median(secs)
            summary[what] = {"docs_per_s": round(len(docs) / med, 2), "chars_per_s": round(chars / med),
                             "mentions": mentions[what]}
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    summary["load"] = os.getloadavg()
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    main()
