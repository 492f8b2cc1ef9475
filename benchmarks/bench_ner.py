"""Mention detection and end-to-end linking on an annotated corpus: the dictionary matcher, the
tagger and their combinations, NER P/R/F1 (exact and overlapping spans, document-bootstrap 95% CI),
detection speed, and strict end-to-end F1 with a linker. ::

    # NCBI-disease dev (choices) and test, MEDIC, dictionary + NCBI train mentions, tagger from runs/
    .venv/bin/python benchmarks/bench_ner.py --corpus ../shared/data/ncbi-disease/NCBItestset_corpus.txt \\
        --kb default --train ../shared/data/ncbi-disease/NCBItrainset_corpus.txt \\
        --tagger src/genbel/resources/models/ner-disease --linker dense:default --json-out ncbi_test.json
    # dictionary settings grid (stop-list threshold, min_length) on dev
    .venv/bin/python benchmarks/bench_ner.py --corpus …/NCBIdevelopset_corpus.txt --train … --grid

Detectors are each run once over the corpus (timed); the combinations are computed from their
spans (a combination's detection time is the sum of its parts'). Types are semantic groups; gold
types are mapped the same way (``SpecificDisease`` → ``Disorders``); ``--entity-types`` keeps some.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--kb", default="default")
    ap.add_argument("--train", nargs="*", default=[], help="training corpora (dictionary mentions + stop-list)")
    ap.add_argument("--entity-types", default=None)
    ap.add_argument("--tagger", default=None, help="tagger directory (omit: dictionary only)")
    ap.add_argument("--linker", default=None, help="linker spec for end-to-end F1 (e.g. dense:default)")
    ap.add_argument("--augment-kb", nargs="*", default=[], help="corpora whose mentions the linker's KB gets")
    ap.add_argument("--e2e", nargs="*", default=["dictionary+train", "tagger", "combined"],
                    help="which detectors to link end to end")
    ap.add_argument("--grid", action="store_true", help="dictionary settings grid instead")
    ap.add_argument("--docs", type=int, default=None, help="first N documents only")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from genbel.data import LENIENT, filter_entity_types, load_corpus, parse_entity_types
    from genbel.eval.spans import end_to_end_scores, link_spans, ner_scores
    from genbel.kb import open_kb
    from genbel.ner import create_detector
    from genbel.ner.combine import combine_spans, tag_short_forms

    types = parse_entity_types(args.entity_types)

    def load(p: str) -> list:
        d = load_corpus(p, **LENIENT)
        return filter_entity_types(d, types) if types else d

    docs = load(args.corpus)[: args.docs]
    train = [d for p in args.train for d in load(p)]
    kb = open_kb(args.kb)
    texts = [d.text for d in docs]
    chars = sum(map(len, texts))
    print(f"corpus {args.corpus}: {len(docs)} docs, {sum(len(d.entities) for d in docs)} mentions, "
          f"{chars:,} chars; KB {kb!r}; load {os.getloadavg()[0]:.1f}")

    if args.grid:
        for min_len in (3, 5):
            det = create_detector("dictionary", kb, training_docs=train or None, min_length=min_len,
                                  fit_stop_list=False)
            base_stop = set(det.stop)
            for thr in (0.0, 0.2, 0.3, 0.4, 0.5):
                det.stop = set(base_stop)
                if thr > 0:
                    det.fit_stop_list(train, max_precision=thr)
                else:
                    det._build()
                s = ner_scores(docs, [det.detect(t) for t in texts], n_bootstrap=0).scores
                print(f"min_length {min_len} · stop-list precision < {thr}: exact {s['exact'].line()} · "
                      f"overlap F1 {s['overlap'].f1:.1f}")
        return

    runs: dict[str, list] = {}
    seconds: dict[str, float] = {}

    def run(name: str, det) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        out = []
        for b in range(0, len(texts), 16):
            out.extend(det.detect_batch(texts[b:b + 16]))
        seconds[name] = time.perf_counter() - t0
        runs[name] = out

    run("dictionary", create_detector("dictionary", kb))
    if train:
        run("dictionary+train", create_detector("dictionary", kb, training_docs=train))
    if args.tagger:
        run("tagger", create_detector(f"tagger:{args.tagger}"))
        dict_name = "dictionary+train" if train else "dictionary"
        for mode in ("primary-first", "union", "intersection"):
            for abbr in (False, True):
                name = f"tagger {mode} {dict_name}" + (" +abbr" if abbr else "")
                runs[name] = [tag_short_forms(t, combine_spans([a, b], mode)) if abbr else combine_spans([a, b], mode)
                              for t, a, b in zip(texts, runs["tagger"], runs[dict_name])]
                seconds[name] = seconds["tagger"] + seconds[dict_name]
        runs["tagger +abbr"] = [tag_short_forms(t, a) for t, a in zip(texts, runs["tagger"])]
        seconds["tagger +abbr"] = seconds["tagger"]
    results: dict[str, dict] = {}
    print("\n| detector | exact P | exact R | exact F1 [95% CI] | overlap F1 | docs/s | chars/s |\n|---|---|---|---|---|---|---|")
    for name, preds in runs.items():
        r = ner_scores(docs, preds, n_bootstrap=args.bootstrap)
        ex, ov = r.scores["exact"], r.scores["overlap"]
        sec = max(seconds[name], 1e-9)
        print(f"| {name} | {ex.precision:.1f} | {ex.recall:.1f} | {ex.f1:.1f} [{ex.f1_ci[0]:.1f}, {ex.f1_ci[1]:.1f}] "
              f"| {ov.f1:.1f} | {len(docs) / sec:.1f} | {chars / sec:,.0f} |")
        results[name] = {"ner": r.to_dict(), "seconds": seconds[name]}
    if args.linker:
        from genbel.linkers import create_linker
        from genbel.pipeline import load_augmented_kb

        kb_link, _ = load_augmented_kb(args.kb, None, args.augment_kb) if args.augment_kb else (kb, [])
        lk = create_linker(args.linker, kb_link)
        wanted = [n for n in runs if n in args.e2e or (n.startswith("tagger primary-first") and "combined" in args.e2e)]
        print(f"\n| detector + {args.linker} | strict P | strict R | strict F1 [95% CI] | link s |\n|---|---|---|---|---|")
        for name in wanted:
            t0 = time.perf_counter()
            linked = link_spans(docs, runs[name], lk, expand_abbreviations=True)
            sec = time.perf_counter() - t0
            e = end_to_end_scores(docs, runs[name], linked, kb_link, n_bootstrap=args.bootstrap)
            s = e.scores["strict"]
            print(f"| {name} | {s.precision:.1f} | {s.recall:.1f} | {s.f1:.1f} [{s.f1_ci[0]:.1f}, {s.f1_ci[1]:.1f}] "
                  f"| {sec:.1f} |")
            results[name]["end_to_end"] = e.to_dict()
            results[name]["link_seconds"] = sec
    print(f"\nload average at the end: {os.getloadavg()}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
