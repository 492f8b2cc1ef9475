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
    ap.add_argument("--compare-matchers", action="store_true",
                    help="pyahocorasick vs genbel's TokenTrie (over word ids) instead: build and match time")
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

    if args.compare_matchers:
        compare_matchers(kb, texts)
        return
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

    from genbel.ner.dictionary import entity_group

    groups = {entity_group(t) for t in types} if types else None

    def keep_group(t: str) -> bool:  # --entity-types: spans of other groups are not scored
        return groups is None or entity_group(t) in groups

    runs: dict[str, list] = {}
    seconds: dict[str, float] = {}

    def run(name: str, det) -> None:  # noqa: ANN001
        t0 = time.perf_counter()
        out = []
        for b in range(0, len(texts), 16):
            out.extend(det.detect_batch(texts[b:b + 16]))
        seconds[name] = time.perf_counter() - t0
        runs[name] = [[sp for sp in spans if keep_group(sp.type)] for spans in out]

    run("dictionary", create_detector("dictionary", kb))
    if train:
        run("dictionary+train", create_detector("dictionary", kb, training_docs=train))
    if args.tagger:
        run("tagger", create_detector(f"tagger:{args.tagger}"))
        dict_name = "dictionary+train" if train else "dictionary"
        for mode in ("primary-first", "dictionary-first", "union", "intersection"):
            for abbr in (False, True):
                name = f"tagger {mode} {dict_name}" + (" +abbr" if abbr else "")
                m, order = (("primary-first", 1) if mode == "dictionary-first" else (mode, 0))
                pairs = [(b, a) if order else (a, b) for a, b in zip(runs["tagger"], runs[dict_name])]
                runs[name] = [tag_short_forms(t, combine_spans(list(p), m)) if abbr else combine_spans(list(p), m)
                              for t, p in zip(texts, pairs)]
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
        wanted = [n for n in runs if n in args.e2e or (n.startswith("tagger ") and "combined" in args.e2e)]
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
    import resource

    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB · "
          f"load average at the end: {os.getloadavg()}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


def compare_matchers(kb, texts: list[str]) -> None:  # noqa: ANN001
    """The same folded KB names matched in the same folded texts (all word-boundary matches) by
    pyahocorasick over characters and by genbel's CSR TokenTrie over word ids (a walk from every
    word); both give the same matches, the time is what differs."""
    import ahocorasick

    from genbel.ner.dictionary import fold, fold_with_offsets
    from genbel.trie.token_trie import TokenTrie

    names = sorted({fold(n) for c in kb for n in c.names} - {""})
    folded = [fold_with_offsets(t)[0] for t in texts]
    t0 = time.perf_counter()
    ac = ahocorasick.Automaton()
    for i, n in enumerate(names):
        ac.add_word(n, (len(n), i))
    ac.make_automaton()
    t_ac = time.perf_counter() - t0
    t0 = time.perf_counter()
    vocab: dict[str, int] = {}
    seqs = [[vocab.setdefault(w, len(vocab)) for w in n.split()] for n in names]
    trie = TokenTrie.build(seqs)
    t_trie = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_ac = 0
    for f in folded:
        n = len(f)
        for end, (ln, _) in ac.iter(f):
            s = end - ln + 1
            if (s == 0 or f[s - 1] == " ") and (end + 1 == n or f[end + 1] == " "):
                n_ac += 1
    m_ac = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_trie = 0
    for f in folded:
        ids = [vocab.get(w, -1) for w in f.split()]
        for i in range(len(ids)):
            node = 0
            for j in range(i, len(ids)):
                node = trie.step(node, ids[j])
                if node < 0:
                    break
                n_trie += trie.is_terminal(node)
    m_trie = time.perf_counter() - t0
    chars = sum(map(len, texts))
    print(f"{len(names):,} folded names, {len(texts)} texts, {chars:,} chars; matches: ahocorasick {n_ac}, "
          f"trie {n_trie}")
    print("| matcher | build s | match s | chars/s |\n|---|---|---|---|")
    print(f"| pyahocorasick (characters) | {t_ac:.2f} | {m_ac:.3f} | {chars / m_ac:,.0f} |")
    print(f"| genbel TokenTrie (word ids) | {t_trie:.2f} | {m_trie:.3f} | {chars / m_trie:,.0f} |")


if __name__ == "__main__":
    main()
