"""Where document-level linking spends its time, and how many mentions each mode must decode.

Decode counts (no model needed): mention-level decodes each distinct mention once for the whole
corpus; document-level decodes each distinct mention once *per document* (a repeat inside a document
copies its earlier beams; other prompts differ by their memory; types count only with
``--type-in-key``, for prompts that show them). Their ratio is the part of the document-level cost
that no batching can remove. Batch counts: how many decoding batches each needs (document-level
mentions wait for the earlier ones of their document, so its batches can run less than full).

Profile (``--profile-docs N``): cProfile of ``DocumentLinker.run`` on the first N documents, printing
the share of beam search, prompt prefill and the trie. Usage::

    .venv/bin/python benchmarks/profile_document.py                       # NCBI-disease test counts
    .venv/bin/python benchmarks/profile_document.py --corpus bc5cdr:dev --entity-types Disease --max-docs 100
    .venv/bin/python benchmarks/profile_document.py --profile-docs 25 \
        --model src/genbel/resources/models/default                      # + the profile
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDERS = {"ncbi-disease": "ncbi-disease", "bc5cdr": "bc5cdr"}
# (label, file suffix, function) of the profile rows reported as shares of the total (cumulative time)
PARTS = [
    ("beam search", "", "_beam_search"),
    ("prompt prefill", "", "prompt_cache_with_prefixes"),
    ("linear layers", "torch/nn/modules/linear.py", "forward"),
    ("trie constraint", "genbel/trie/constraint.py", "__call__"),
]

def decode_flags(documents, type_in_key: bool = False) -> tuple[list[list[bool]], set]:
    """Per document, per non-NIL mention: whether it needs a decode (its text — and, with
    ``type_in_key``, its type: prompts that show the type — did not occur earlier in the document,
    :class:`DocumentLinker`'s repeat key for one-group corpora); and the corpus's distinct keys (what
    mention-level linking decodes)."""
    flags: list[list[bool]] = []
    corpus: set[tuple[str, str | None]] = set()
    for d in documents:
        seen: set[tuple[str, str | None]] = set()
        row = []
        for e in d.entities:
            if not e.is_nil:
                key = (e.mention, e.type if type_in_key else None)
                row.append(key not in seen)
                seen.add(key)
        flags.append(row)
        corpus |= seen
    return flags, corpus


def decode_counts(flags: list[list[bool]], corpus: set) -> tuple[int, int, int]:
    """(mentions, document-level decodes, mention-level decodes)."""
    return sum(map(len, flags)), sum(map(sum, flags)), len(corpus)


def batch_counts(flags: list[list[bool]], corpus: set, batch_size: int) -> tuple[int, int, int]:
    """(mention-level batches, document-level batches with rounds by mention index, with rounds by
    decode). Rounds by mention index (the schedule up to commit 3a4d90d) decoded the i-th mentions of
    all documents together, a repeat taking its round without a decode; :meth:`DocumentLinker.run`
    now decodes the next mention *that needs a decode* of every document per round."""

    def batches(per_round: list[int]) -> int:
        return sum(math.ceil(n / batch_size) for n in per_round)

    by_index = [sum(1 for f in flags if len(f) > r and f[r]) for r in range(max(map(len, flags), default=0))]
    chains = [sum(f) for f in flags]
    by_decode = [sum(1 for c in chains if c > r) for r in range(max(chains, default=0))]
    return math.ceil(len(corpus) / batch_size), batches(by_index), batches(by_decode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="ncbi-disease:test", help="registry NAME:SPLIT")
    ap.add_argument("--entity-types", default=None, help="comma-separated entity types to keep")
    ap.add_argument("--max-docs", type=int, default=None)
    ap.add_argument("--profile-docs", type=int, default=0, help="profile document-level on N documents")
    ap.add_argument("--model", default="src/genbel/resources/models/default")
    ap.add_argument("--kb", default=str(DATA / "medic" / "medic_06Jul2012.txt"))
    ap.add_argument("--memory-size", type=int, default=10)
    ap.add_argument("--max-prompt-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--type-in-key", action="store_true",
                    help="count repeats by (text, type), as for prompts that show the type")
    args = ap.parse_args()

    from genbel.data import filter_entity_types, load_dataset

    name, _, split = args.corpus.partition(":")
    docs = load_dataset(name, split, DATA / FOLDERS.get(name, name))
    if args.entity_types:
        docs = filter_entity_types(docs, args.entity_types.split(","))
    docs = docs[: args.max_docs] if args.max_docs else docs
    flags, keys = decode_flags(docs, args.type_in_key)
    n, per_doc, corpus = decode_counts(flags, keys)
    print(f"{args.corpus}: {len(docs)} documents, {n} mentions; document-level decodes {per_doc}, "
          f"mention-level decodes {corpus}: ratio {per_doc / max(corpus, 1):.2f}")
    flat, by_index, by_decode = batch_counts(flags, keys, args.batch_size)
    print(f"batches of {args.batch_size}: mention-level {flat}; document-level {by_decode} "
          f"(rounds by mention index: {by_index}): ratio {by_decode / max(flat, 1):.2f}")
    if not args.profile_docs:
        return

    import torch

    from genbel.data.queries import queries_from_documents
    from genbel.kb import load_kb
    from genbel.linkers.document import DocumentLinker
    from genbel.linkers.generative import GenerativeLinker

    torch.set_num_threads(args.threads)
    kb = load_kb(args.kb)
    gen = GenerativeLinker.load(args.model, kb, batch_size=args.batch_size)
    linker = DocumentLinker(gen, context_chars=0, max_prompt_tokens=args.max_prompt_tokens,
                            memory_size=args.memory_size, batch_size=args.batch_size)
    queries = queries_from_documents(docs[: args.profile_docs])
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    linker.run(queries, num_beams=5)
    profiler.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(profiler).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    print(f"document-level, {len(queries)} mentions of {args.profile_docs} documents: {total:.1f} s")
    for label, suffix, function in PARTS:
        seconds = sum(
            ct for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items()
            if func == function and file.endswith(suffix)
        )
        print(f"  {label:16s} {seconds:7.1f} s  {100 * seconds / total:5.1f} %")

if __name__ == "__main__":
    main()
