"""Benchmark document-level linking (LongBEL-style memory + context) against mention-level linking.

Same model, same KB, same mentions, same beams (5), evaluated by :func:`genbel.eval.evaluate`
(R@1/R@5, 95% document-bootstrap CI, seen/unseen concepts w.r.t. the training corpus):

* ``mention``  — :class:`GenerativeLinker` with the prompt the model was trained with (mention-level);
* ``doc-nomem`` — :class:`DocumentLinker` without memory (document context only, token-trimmed);
* ``doc``      — :class:`DocumentLinker` with memory of the earlier top predictions + context;
* ``ensemble`` — ``doc`` + ``mention`` fused by summed normalised beam probabilities
  (:mod:`genbel.linkers.ensemble`). Its members' outputs are reused from their own runs, so its
  time is the sum of the members' link times plus the fusion time (that is what running it costs).

Extra subsets: ``repeat:first`` / ``repeat:later`` — mentions whose gold concept does / does not
occur earlier in the same document (memory can only help the later ones).

Run (NCBI-disease test vs MEDIC)::

    nice -n 10 .venv/bin/python benchmarks/bench_document.py --model runs/default/final \\
        --configs mention,doc-nomem,doc,ensemble --max-prompt-tokens 96

``--corpus``/``--kb``/``--train-corpus``/``--entity-types`` select another corpus, e.g. BC5CDR dev
Disease mentions vs CTD diseases. ``--max-docs N`` links the first N documents only (CPU budget).
Writes ``benchmarks/out/bench_document[_TAG].json`` and prints a markdown table. ``--timing-rounds 3``
links mention/doc-nomem/doc three times each, interleaved, and reports the median times (and each
round's cost ratio): identical runs on the shared 2-core machine differ by ~10% in wall time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

from genbel.linkers.base import Linker  # evaluate() links only Linker objects (E029)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"


class Replay(Linker):
    """Fuses per-mention candidates saved by earlier runs (``--save-predictions``) into an ensemble."""

    name = "ensemble"

    def __init__(self, files: list[str], seconds: float) -> None:
        self.files = files
        self.seconds = seconds
        self.result = None

    def link_documents(self, documents, k=5, expand_abbreviations=False, entity_types=None):
        from genbel.data.queries import Candidate, queries_from_documents
        from genbel.linkers.ensemble import fuse

        queries = queries_from_documents(documents, expand_abbreviations, entity_types)
        members = []
        for f in self.files:
            rows = [json.loads(line) for line in open(f, encoding="utf-8")]
            if [(r["doc_id"], r["entity_id"]) for r in rows] != [(q.doc_id, q.entity_id) for q in queries]:
                raise SystemExit(f"{f}: other mentions than this corpus selection")
            members.append([[Candidate(c["code"], c["name"], c["score"]) for c in r["candidates"]] for r in rows])
        self.result = [(q, fuse([m[i] for m in members], [1.0] * len(members), k)) for i, q in enumerate(queries)]
        return self.result

    def link(self, queries, k=5):
        raise SystemExit("config 'ensemble-files' replays saved document mentions: it links documents only")


class Cached(Linker):
    """Runs a linker's ``link_documents`` once and replays the result (for the ensemble's members); a
    :class:`~genbel.linkers.base.Linker`, as ``genbel.eval.evaluate`` requires."""

    def __init__(self, linker) -> None:
        self.linker = linker
        self.result = None
        self.seconds = 0.0
        self.name = getattr(linker, "name", "linker")

    def link_documents(self, documents, k=5, expand_abbreviations=False, entity_types=None):
        if self.result is None:
            t = time.perf_counter()
            self.result = self.linker.link_documents(documents, k=k, expand_abbreviations=expand_abbreviations,
                                                     entity_types=entity_types)
            self.seconds = time.perf_counter() - t
        return self.result

    def link(self, queries, k=5):
        return self.linker.link(queries, k=k)


def repeat_subsets(pairs, kb) -> tuple[dict[str, list[int | None]], list[int | None], list[str]]:
    """Rank of the first correct prediction per mention, split by whether its concept occurred earlier in the doc;
    also every rank and document id in order (for paired comparisons)."""
    from genbel.eval.metrics import first_correct_rank

    seen: dict[str, set[str]] = {}
    out: dict[str, list[int | None]] = {"repeat:first": [], "repeat:later": []}
    ranks: list[int | None] = []
    doc_ids: list[str] = []
    for q, cands in pairs:
        gold_main = {kb.resolve_id(g) for g in q.gold_ids} - {None}
        gold_all = set(q.gold_ids)
        for g in gold_main:
            gold_all |= kb.ids_of(g)
        r = first_correct_rank([kb.ids_of(c.concept_id) or {c.concept_id} for c in cands[:5]], gold_all)
        before = seen.setdefault(q.doc_id or "", set())
        out["repeat:later" if gold_main and gold_main <= before else "repeat:first"].append(r)
        before |= gold_main
        ranks.append(r)
        doc_ids.append(q.doc_id or "")
    return out, ranks, doc_ids


def paired_ci(ranks_a, ranks_b, doc_ids) -> list[float]:
    """95% CI (points of R@1) of R@1(a) - R@1(b) on the same mentions: document bootstrap of the per-mention difference."""
    import numpy as np

    from genbel.eval.metrics import bootstrap_ci

    hit = lambda r: 1.0 if r is not None and r < 1 else 0.0  # noqa: E731
    diff = np.array([hit(a) - hit(b) for a, b in zip(ranks_a, ranks_b)])
    number = {d: i for i, d in enumerate(dict.fromkeys(doc_ids))}
    return list(bootstrap_ci(diff, np.array([number[d] for d in doc_ids], dtype=np.int64), 1000, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "src" / "genbel" / "resources" / "models" / "default"))
    ap.add_argument("--kb", default=str(DATA / "medic" / "medic_06Jul2012.txt"))
    ap.add_argument("--corpus", default=str(DATA / "ncbi-disease" / "NCBItestset_corpus.txt"))
    ap.add_argument("--train-corpus", default=str(DATA / "ncbi-disease" / "NCBItrainset_corpus.txt"))
    ap.add_argument("--entity-types", default=None, help="comma-separated entity types to link (e.g. Disease)")
    ap.add_argument("--configs", default="mention,doc-nomem,doc,ensemble")
    ap.add_argument("--ensemble-members", default="doc,mention")
    ap.add_argument("--max-prompt-tokens", type=int, default=96)
    ap.add_argument("--context-chars", default="doc", help="'doc' (whole document, token-trimmed) or characters")
    ap.add_argument("--memory-size", type=int, default=10)
    ap.add_argument("--max-docs", type=int, default=None)
    ap.add_argument("--num-beams", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--abbreviations", action="store_true", help="expand abbreviations (Schwartz-Hearst)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quantize", default="auto",
                    help="GenerativeLinker.load(quantize=...): auto (bf16 where native), bf16, int8 or none")
    ap.add_argument("--tag", default="")
    ap.add_argument("--ensemble-files", default="", help="config 'ensemble-files': fuse these saved predictions")
    ap.add_argument("--ensemble-seconds", type=float, default=0.0, help="the members' link time (for mentions/s)")
    ap.add_argument("--save-predictions", action="store_true", help="write per-mention candidates (JSONL)")
    ap.add_argument("--timing-rounds", type=int, default=1,
                    help="link each of mention/doc-nomem/doc this many times in all, interleaved (the first "
                         "round is the evaluation), and report the median time and cost: wall time on a "
                         "shared 2-core machine varies by ~10%% between identical runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from genbel.data import load_corpus, load_documents
    from genbel.eval import evaluate
    from genbel.eval.metrics import recall_at
    from genbel.generation.quantize import quantization_of
    from genbel.kb import load_kb
    from genbel.linkers.document import DocumentLinker
    from genbel.linkers.ensemble import EnsembleLinker
    from genbel.linkers.generative import GenerativeLinker

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    kb = load_kb(args.kb)
    docs = load_corpus(args.corpus)
    if args.max_docs:
        docs = docs[: args.max_docs]
    types = args.entity_types.split(",") if args.entity_types else None
    if types:
        from genbel.data import filter_entity_types

        docs = filter_entity_types(docs, types)
    # what evaluate() links: the documents without their NIL mentions (members see the same objects' content)
    from genbel.data.model import Document

    eval_docs = [Document(d.id, d.document_id, d.passages, [e for e in d.entities if not e.is_nil]) for d in docs]
    train = load_documents(args.train_corpus) if args.train_corpus else None
    configs = args.configs.split(",")
    if configs == ["ensemble-files"]:
        gen = None
    elif (Path(args.model) / "genbel_linker.json").is_file():
        gen = GenerativeLinker.load(args.model, kb, num_beams=args.num_beams, batch_size=args.batch_size,
                                    quantize=args.quantize)
    else:  # an untrained model (timing only): the default model's mention-level prompt
        from genbel.generation.prompts import PromptFormat

        gen = GenerativeLinker.load(args.model, kb, num_beams=args.num_beams, batch_size=args.batch_size,
                                    quantize=args.quantize, prompt_format=PromptFormat(context_chars=0, include_group=False))
    setup = time.perf_counter() - t0
    ctx = None if args.context_chars == "doc" else int(args.context_chars)
    doc_kw = dict(context_chars=ctx, max_prompt_tokens=args.max_prompt_tokens, memory_size=args.memory_size,
                  batch_size=args.batch_size)
    linkers = {} if gen is None else {
        "mention": Cached(gen),
        "doc-nomem": Cached(DocumentLinker(gen, use_memory=False, **doc_kw)),
        "doc": Cached(DocumentLinker(gen, use_memory=True, **doc_kw)),
    }
    # positions the model computes (prompt prefill + one per beam per decoding step, padding included):
    # a cost measure that, unlike wall time, does not move with the machine's load
    computed = {"positions": 0, "prompt": 0}

    def count_positions(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            computed["positions"] += ids.numel()
            if ids.shape[-1] > 1:  # a prompt prefill (beam-search steps compute one position per row)
                computed["prompt"] += ids.numel()

    if gen is not None:
        gen.model.register_forward_pre_hook(count_positions, with_kwargs=True)
    rows = []
    all_ranks: dict[str, list] = {}
    doc_ids: list[str] = []
    load = os.getloadavg()
    for name in configs:
        positions_before, prompt_before = computed["positions"], computed["prompt"]
        if name == "ensemble-files":
            lk = Replay(args.ensemble_files.split(","), args.ensemble_seconds)
            res = evaluate(docs, kb, lk, k=5, train_documents=train, expand_abbreviations=args.abbreviations)
            seconds, pairs, describe = lk.seconds + res.link_seconds, lk.result, "fused " + args.ensemble_files
        elif name == "ensemble":
            members_names = args.ensemble_members.split(",")
            members = [linkers[m] for m in members_names]
            for m in members:  # run (or reuse) the members first; their time is part of the ensemble's
                m.link_documents(eval_docs, k=5, expand_abbreviations=args.abbreviations)
            ens = EnsembleLinker(members)
            res = evaluate(docs, kb, ens, k=5, train_documents=train, expand_abbreviations=args.abbreviations)
            seconds = sum(m.seconds for m in members) + res.link_seconds
            fusion_seconds = res.link_seconds
            pairs = ens.link_documents(eval_docs, k=5, expand_abbreviations=args.abbreviations)
            describe = " + ".join(args.ensemble_members.split(","))
        else:
            lk = linkers[name]
            res = evaluate(docs, kb, lk, k=5, train_documents=train, expand_abbreviations=args.abbreviations)
            seconds = lk.seconds
            pairs = lk.result
            describe = lk.linker.describe() if hasattr(lk.linker, "describe") else "as trained"
        rep, ranks, doc_ids = repeat_subsets(pairs, kb)
        all_ranks[name] = ranks
        if args.save_predictions:  # per-mention candidates: for paired comparisons / ensembles across runs
            OUT.mkdir(parents=True, exist_ok=True)
            pred_path = OUT / f"bench_document_{args.tag or 'run'}_{name}.jsonl"
            with open(pred_path, "w", encoding="utf-8") as fh:
                for (q, cands), r in zip(pairs, ranks):
                    fh.write(json.dumps({"doc_id": q.doc_id, "entity_id": q.entity_id, "rank": r,
                                         "candidates": [c.to_dict() for c in cands]}) + "\n")
        row = {
            "config": name,
            "describe": describe,
            "recall_at_1": res.recall_at_1,
            "ci95_r1": res.ci95["recall_at_1"],
            "recall_at_5": res.recall_at_5,
            "n_mentions": res.n_mentions,
            "n_documents": res.n_documents,
            "link_seconds": round(seconds, 1),
            "mentions_per_second": round(res.n_mentions / seconds, 3) if seconds else None,
            "subsets": {k: v.model_dump() for k, v in res.subsets.items() if k.startswith("concept:")},
            "repeat": {k: {"n": len(v), "recall_at_1": round(100 * recall_at(v, 1), 2)} for k, v in rep.items()},
        }
        if name == "ensemble":
            row["fusion_seconds"] = round(fusion_seconds, 1)
            row["model_positions"] = sum(r["model_positions"] for r in rows if r["config"] in members_names)
        elif gen is not None:
            row["model_positions"] = computed["positions"] - positions_before
            row["prompt_positions"] = computed["prompt"] - prompt_before
        rows.append(row)
        print(json.dumps(row), flush=True)
    timed = [r for r in rows if r["config"] in ("mention", "doc-nomem", "doc")]
    for _ in range(args.timing_rounds - 1):
        for r in timed:
            t = time.perf_counter()
            linkers[r["config"]].linker.link_documents(eval_docs, k=5, expand_abbreviations=args.abbreviations)
            r.setdefault("round_seconds", [r["link_seconds"]]).append(round(time.perf_counter() - t, 1))
    for r in timed:
        if "round_seconds" in r:  # the median round stands for the config
            r["link_seconds"] = statistics.median(r["round_seconds"])
            r["mentions_per_second"] = round(r["n_mentions"] / r["link_seconds"], 3)
            print(json.dumps({"config": r["config"], "round_seconds": r["round_seconds"]}), flush=True)
    by_name = {r["config"]: r for r in timed}
    for r in rows:  # an ensemble costs its members' (median) times plus the fusion
        member_rows = [by_name.get(m) for m in args.ensemble_members.split(",")]
        if r["config"] == "ensemble" and args.timing_rounds > 1 and all(member_rows):
            r["link_seconds"] = round(sum(m["link_seconds"] for m in member_rows) + r["fusion_seconds"], 1)
            r["mentions_per_second"] = round(r["n_mentions"] / r["link_seconds"], 3)
    base = next((r for r in rows if r["config"] == "mention"), None)
    if base and "round_seconds" in base:
        for r in timed:
            if r is not base:  # the cost of each round against the mention-level run of the same round
                r["round_costs"] = [round(a / b, 2) for a, b in zip(r["round_seconds"], base["round_seconds"])]
    for r in rows:
        for ref in ("mention", "doc-nomem"):
            if ref in all_ranks and r["config"] != ref:
                r[f"delta_r1_vs_{ref}_ci95"] = paired_ci(all_ranks[r["config"]], all_ranks[ref], doc_ids)
        if base:
            r["delta_r1_vs_mention"] = round(r["recall_at_1"] - base["recall_at_1"], 2)
            r["cost_vs_mention"] = round(r["link_seconds"] / base["link_seconds"], 2) if base["link_seconds"] else None
            if base.get("model_positions") and "model_positions" in r:
                r["positions_vs_mention"] = round(r["model_positions"] / base["model_positions"], 2)
    result = {
        "model": args.model, "kb": args.kb, "corpus": args.corpus, "entity_types": types,
        "max_docs": args.max_docs, "num_beams": args.num_beams, "batch_size": args.batch_size,
        "max_prompt_tokens": args.max_prompt_tokens, "context_chars": args.context_chars,
        "memory_size": args.memory_size, "abbreviations": args.abbreviations, "setup_s": round(setup, 1),
        "quantize": args.quantize, "linear_layers": quantization_of(gen.model) if gen is not None else None,
        "torch_threads": torch.get_num_threads(), "load_before": load, "load_after": os.getloadavg(), "rows": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bench_document{('_' + args.tag) if args.tag else ''}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    print(f"\n{args.corpus} vs {Path(args.kb).name}: {rows[0]['n_mentions'] if rows else 0} mentions, "
          f"model {args.model}, beams {args.num_beams}, prompt <= {args.max_prompt_tokens} tokens, load {load}")
    print("| config | R@1 [95% CI] | Δ vs mention [paired 95% CI] | R@5 | seen R@1 | unseen R@1 | repeat:later R@1 "
          "| mentions/s | cost vs mention | model positions (vs mention) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["subsets"]
        seen = s.get("concept:seen", {}).get("recall_at_1", float("nan"))
        unseen = s.get("concept:unseen", {}).get("recall_at_1", float("nan"))
        lo, hi = r["ci95_r1"]
        d = r.get("delta_r1_vs_mention")
        dci = r.get("delta_r1_vs_mention_ci95")
        delta = f"{d:+.1f} [{dci[0]:+.1f}, {dci[1]:+.1f}]" if d is not None and dci else "–"
        print(f"| {r['config']} ({r['describe']}) | {r['recall_at_1']:.1f} [{lo:.1f}, {hi:.1f}] | {delta} | "
              f"{r['recall_at_5']:.1f} | "
              f"{seen:.1f} | {unseen:.1f} | {r['repeat']['repeat:later']['recall_at_1']:.1f} "
              f"(n={r['repeat']['repeat:later']['n']}) | {r['mentions_per_second']} | {r.get('cost_vs_mention')} | "
              f"{r.get('model_positions')} ({r.get('positions_vs_mention', 1.0)}) |")


if __name__ == "__main__":
    main()
