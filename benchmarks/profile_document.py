"""Where document-level linking spends its time, and how many mentions each mode must decode.

Decode counts (no model needed): mention-level decodes each distinct mention once for the whole
corpus; document-level decodes each distinct mention once *per document* (a repeat inside a document
copies its earlier beams; other prompts differ by their memory; types count only with
``--type-in-key``, for prompts that show them). Their ratio is the part of the document-level cost
that no batching can remove. Batch counts: how many decoding batches each needs (document-level
mentions wait for the earlier ones of their document, so its batches can run less than full).

Profile (``--profile-docs N``): cProfile of ``DocumentLinker.run`` on the first N documents, printing
the share of beam search, prompt prefill and the trie.

Positions (``--positions``): link the corpus at mention level and document level with ``--model`` and
split the positions the model computes (tokens of its forward passes) into prompt prefill (real tokens
and the padding of the batched prefill) and beam search. Prompt tokens (``--prompt-tokens STYLE``, no
model run): the prompt tokens each document-level decode must compute when each document's previous
prompt is reused, for a memory layout (``block`` or ``lines``), every memory name set to
``--memory-name``. Usage::

    .venv/bin/python benchmarks/profile_document.py                       # NCBI-disease test counts
    .venv/bin/python benchmarks/profile_document.py --corpus bc5cdr:dev --entity-types Disease --max-docs 100
    .venv/bin/python benchmarks/profile_document.py --profile-docs 25 \
        --model src/genbel/resources/models/default                      # + the profile
    .venv/bin/python benchmarks/profile_document.py --positions --max-prompt-tokens 96 --model MODEL
    .venv/bin/python benchmarks/profile_document.py --corpus ncbi-disease:dev --max-docs 40 \
        --max-prompt-tokens 96 --model MODEL --prompt-tokens lines
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
# (label, [(file suffix, function), ...]) of the profile rows reported as shares of the total (cumulative
# time): genbel's beam-search loop (Hugging Face generate with search="hf"), the prompt prefill, the linear
# layers (float32 torch ones, or the bfloat16 ones of quantize="auto"), the trie's allowed tokens
PARTS = [
    ("beam search", [("genbel/generation/beam_loop.py", "run"), ("", "_beam_search")]),
    ("prompt prefill", [("", "prompt_cache_with_prefixes")]),
    ("linear layers", [("torch/nn/modules/linear.py", "forward"), ("genbel/generation/quantize.py", "forward")]),
    ("trie constraint", [("genbel/trie/constraint.py", "__call__"), ("genbel/trie/constraint.py", "allowed_array")]),
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
    ap.add_argument("--positions", action="store_true",
                    help="split the positions of a mention-level and a document-level run of --model")
    ap.add_argument("--prompt-tokens", choices=["block", "lines"], default=None,
                    help="count the new prompt tokens of each document-level decode for this memory layout")
    ap.add_argument("--memory-name", default="malignant neoplasm of breast",
                    help="--prompt-tokens: the name every memory entry shows")
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
    if not (args.prompt_tokens or args.positions or args.profile_docs):
        return
    gen = _linker(args)  # loaded once for the options below
    if args.prompt_tokens:
        prompt_tokens(docs, args, gen)
    if args.profile_docs:
        profile(docs, args, gen)
    if args.positions:
        positions(docs, args, gen)


def profile(docs, args, gen) -> None:
    """cProfile of document-level linking on the first ``--profile-docs`` documents."""
    from genbel.data.queries import queries_from_documents
    from genbel.linkers.document import DocumentLinker

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
    for label, places in PARTS:
        seconds = sum(
            ct for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items()
            if any(func == function and file.endswith(suffix) for suffix, function in places)
        )
        print(f"  {label:16s} {seconds:7.1f} s  {100 * seconds / total:5.1f} %")


def _linker(args):
    import torch

    from genbel.kb import load_kb
    from genbel.linkers.generative import GenerativeLinker

    torch.set_num_threads(args.threads)
    return GenerativeLinker.load(args.model, load_kb(args.kb), batch_size=args.batch_size)


def _new_tokens(previous: list[int], ids: list[int]) -> int:
    p = 0
    while p < min(len(previous), len(ids)) and previous[p] == ids[p]:
        p += 1
    return len(ids) - p


def prompt_tokens(docs, args, gen) -> None:
    """Tokens each document-level decode computes after reusing its document's previous prompt."""
    from dataclasses import replace

    from genbel.data.queries import queries_from_documents
    from genbel.generation.encoding import DocumentPromptEncoder, with_memory

    fmt = replace(gen.format, context_chars=0, memory_size=args.memory_size, memory_style=args.prompt_tokens)
    enc = DocumentPromptEncoder(gen.encoder.tokenizer, fmt, "causal", max_source_length=args.max_prompt_tokens)
    by_doc: dict = {}
    for q in queries_from_documents(docs):
        by_doc.setdefault(q.doc_id, []).append(q)
    decodes = extending = new = full = 0
    for queries in by_doc.values():
        memory: list[tuple[str, str]] = []
        seen: set[str] = set()
        previous: list[int] = []
        for q in queries:
            if q.text in seen:  # a repeat copies its earlier beams (reuse_repeats)
                continue
            seen.add(q.text)
            ids = enc.encode(with_memory(q, memory)).input_ids
            n = _new_tokens(previous, ids)
            extending += bool(previous) and n == len(ids) - len(previous)
            decodes, new, full = decodes + 1, new + n, full + len(ids)
            previous = ids
            memory.append((q.text, args.memory_name))
    print(f"prompt tokens, {args.prompt_tokens} layout, <= {args.max_prompt_tokens} tokens: {decodes} decodes, "
          f"{new} new ({new / max(decodes, 1):.1f} a decode) of {full}; {extending} of "
          f"{decodes - len(by_doc)} later prompts extend the previous one")


def positions(docs, args, gen) -> None:
    """Positions of a mention-level and a document-level run, split into prefill and beam search."""
    from genbel.data.queries import queries_from_documents
    from genbel.generation.cache import PromptPrefill
    from genbel.linkers.document import DocumentLinker

    count = {"all": 0, "real": 0, "padded": 0, "rows": 0}

    def forward(_module, fargs, kwargs):
        ids = kwargs.get("input_ids", fargs[0] if fargs else None)
        count["all"] += ids.numel()

    real_rows = PromptPrefill.prefill_rows

    def rows(self, bodies, reused):
        n = [len(b) - p for b, (p, _) in zip(bodies, reused)]
        count["real"] += sum(n)
        count["padded"] += max(n, default=0) * len(n)
        count["rows"] += len(n)
        return real_rows(self, bodies, reused)

    PromptPrefill.prefill_rows = rows
    gen.model.register_forward_pre_hook(forward, with_kwargs=True)
    queries = queries_from_documents(docs)
    prompts = {tuple(gen.encoder.encode(q).input_ids) for q in queries}
    gen.link(queries, k=5)
    mention = count["all"]
    prompt = sum(map(len, prompts))
    print(f"mention level: {len(prompts)} decodes, {mention} positions: prompts {prompt}, "
          f"beam search {mention - prompt} ({(mention - prompt) / len(prompts):.1f} a decode)")
    count.update(all=0, real=0, padded=0, rows=0)
    linker = DocumentLinker(gen, context_chars=0, max_prompt_tokens=args.max_prompt_tokens,
                            memory_size=args.memory_size, batch_size=args.batch_size)
    linker.run(queries, num_beams=5)
    beam = count["all"] - count["padded"]
    print(f"document level ({linker.describe()}): {count['rows']} decodes, {count['all']} positions "
          f"({count['all'] / mention:.2f}x): prefill {count['real']} real + {count['padded'] - count['real']} "
          f"padding, beam search {beam} ({beam / max(count['rows'], 1):.1f} a decode)")


if __name__ == "__main__":
    main()
