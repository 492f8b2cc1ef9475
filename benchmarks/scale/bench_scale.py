"""UMLS-scale benchmark (issue #18): build time, disk size, peak RSS and query latency per component.

One command per component and size; every phase (build, query) runs in a fresh subprocess so its peak
RSS (Linux ``VmHWM``) is its own, and a watchdog stops a phase above ``--rss-limit`` (default 9 GB):

    nice -n 5 .venv/bin/python benchmarks/scale/bench_scale.py COMPONENT --names 1000000 \
        --kb runs/scale/umls7m.jsonl [--work runs/scale/work]

COMPONENT is one of ``kb`` (KB store: JSONL → SQLite store, load, lookups), ``trie`` (SmolLM2-tokenised
names: TailTrie and the previous TokenTrie layout, mmap load, allowed-token lookups; ``--marisa`` adds
the marisa-trie anchor), ``sparse`` (TF-IDF char n-gram index), ``dense`` (faiss, see below), ``ner``
(pyahocorasick dictionary matcher). The KB is the synthetic UMLS-shaped one of
``make_synthetic_kb.py``; ``--names N`` takes its first concepts up to N names.

Dense: MiniLM (``minilm``) embeds ``--real`` names (default 20,000) for real; its rate gives the full
embedding time by arithmetic. The other rows get vectors of the same dimension made from the real
ones: row ``i`` = normalise(real[i mod R] + 0.5 · N(0, I/d)) (seeded), so the index sees clustered,
MiniLM-like unit vectors. The index kind is genbel's choice by size (``choose_index_kind``); the
vectors are streamed in chunks (never all in RAM for IVF-PQ). Query latency: 200 real mention-like
names, 1-recall@10 against exact search over the same vectors.

Writes one JSON object per run to ``benchmarks/out/scale/COMPONENT_N.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "benchmarks" / "out" / "scale"
PROMPT_LEN = 64


# --------------------------------------------------------------------------- process memory
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss() -> int:
    return _status("VmRSS")


def peak() -> int:
    return _status("VmHWM")


def anon() -> int:
    """Private (anonymous) resident memory: what the process itself holds."""
    return _status("RssAnon")


def file_rss() -> int:
    """Resident pages of mapped files (memory-mapped indexes): page cache, shared and reclaimable."""
    return _status("RssFile")


#: the largest RssAnon / RssFile seen by the watchdog (sampled every 0.1 s) since the last reset_peak()
PEAKS = {"anon": 0, "file": 0}


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    PEAKS.update(anon=anon(), file=file_rss())


def watchdog(limit: float) -> None:
    def run() -> None:
        while True:
            if rss() > limit:
                print(json.dumps({"error": f"RSS above {limit / 1e9:.1f} GB: stopped"}), flush=True)
                os._exit(3)
            PEAKS["anon"] = max(PEAKS["anon"], anon())
            PEAKS["file"] = max(PEAKS["file"], file_rss())
            time.sleep(0.1)

    threading.Thread(target=run, daemon=True).start()


def peaks() -> dict:
    """Peak RssAnon and RssFile (sampled) and the current split, in MB."""
    PEAKS["anon"] = max(PEAKS["anon"], anon())
    PEAKS["file"] = max(PEAKS["file"], file_rss())
    return {"peak_anon_mb": mb(PEAKS["anon"]), "peak_file_mb": mb(PEAKS["file"]), "anon_mb": mb(anon()),
            "file_mb": mb(file_rss())}


def mb(x: float) -> float:
    return round(x / 1e6, 1)


def dir_mb(p: Path) -> float:
    if p.is_file():
        return mb(p.stat().st_size)
    return mb(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()))


# --------------------------------------------------------------------------- inputs
def kb_prefix(kb: Path, n_names: int, work: Path) -> Path:
    """The first concepts of the JSONL KB up to ``n_names`` names (a file, cached)."""
    out = work / f"kb_{n_names}.jsonl"
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    have = 0
    with open(kb, encoding="utf-8") as f, open(tmp, "w", encoding="utf-8") as g:
        for line in f:
            d = json.loads(line)
            g.write(line)
            have += 1 + len(d["synonyms"])
            if have >= n_names:
                break
    tmp.rename(out)
    return out


def load_kb(path: Path):
    from genbel.kb.loaders import load_jsonl

    return load_jsonl(path, name="synthetic-umls")


def queries(kb_path: Path, n: int = 200, seed: int = 3) -> list[str]:
    """Mention-like strings: KB names, half of them with a word dropped or lower-cased (seeded)."""
    rng = random.Random(seed)
    names: list[str] = []
    with open(kb_path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 97 == 0:
                d = json.loads(line)
                names.extend([d["name"], *d["synonyms"]])
            if len(names) >= 20 * n:
                break
    out = []
    for s in rng.sample(names, n):
        ws = s.split()
        if rng.random() < 0.5 and len(ws) > 2:
            del ws[rng.randrange(len(ws))]
        out.append(" ".join(ws).lower() if rng.random() < 0.5 else " ".join(ws))
    return out


def abstracts(n: int = 50) -> list[str]:
    """NCBI-disease test abstracts (benchmark input), or KB-free filler text when absent."""
    p = REPO.parent / "shared" / "data" / "ncbi-disease" / "NCBItestset_corpus.txt"
    texts = []
    if p.exists():
        for line in p.read_text(encoding="utf-8").splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1] == "a":
                texts.append(parts[2])
    return texts[:n] or ["Patients with breast cancer and type 2 diabetes were studied."] * n


def timed_ms(fn, items) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t0) / len(items) * 1e3


# --------------------------------------------------------------------------- components
def kb_build(a) -> dict:
    path = kb_prefix(a.kb, a.names, a.work)
    reset_peak()
    r0 = rss()
    t0 = time.perf_counter()
    kb = load_kb(path)
    parse_s = time.perf_counter() - t0
    res = {"concepts": len(kb), "names": kb.n_names(), "parse_s": round(parse_s, 1), "kb_rss_mb": mb(rss() - r0)}
    out = a.work / f"store_{a.names}"
    t0 = time.perf_counter()
    kb.save(out)
    res.update(build_s=round(time.perf_counter() - t0, 1), build_peak_mb=mb(peak()), disk_mb=dir_mb(out),
               jsonl_mb=dir_mb(path))
    return res


def kb_query(a) -> dict:
    from genbel.kb.base import KnowledgeBase

    out = a.work / f"store_{a.names}"
    r0 = rss()
    t0 = time.perf_counter()
    kb = KnowledgeBase.load(out)
    res = {"load_s": round(time.perf_counter() - t0, 1), "load_rss_mb": mb(rss() - r0)}
    ids = list(kb.concept_ids)
    rng = random.Random(0)
    pick = [ids[rng.randrange(len(ids))] for _ in range(2000)]
    names = [kb[c].name for c in pick[:500]]
    res["get_us"] = round(timed_ms(kb.get, pick) * 1e3, 2)
    t0 = time.perf_counter()
    kb.lookup(names[0])  # builds the normalised-name index once
    res["name_index_s"] = round(time.perf_counter() - t0, 1)
    res["lookup_name_us"] = round(timed_ms(kb.lookup, names) * 1e3, 2)
    res["query_peak_mb"] = mb(peak())
    return res


def kb_query_lazy(a) -> dict:
    """The same look-ups on ``KnowledgeBase.load(store, lazy=True)`` (read from SQLite when asked)."""
    from genbel.kb.base import KnowledgeBase

    out = a.work / f"store_{a.names}"
    reset_peak()
    r0 = rss()
    t0 = time.perf_counter()
    kb = KnowledgeBase.load(out, lazy=True, verify=False)
    res = {"open_s": round(time.perf_counter() - t0, 3), "open_rss_mb": mb(rss() - r0)}
    t0 = time.perf_counter()
    fp = KnowledgeBase.fingerprint_of(kb._reader.iter_concepts(by_id=True))
    res["verify_s"] = round(time.perf_counter() - t0, 1)
    res["verified"] = fp == kb.fingerprint()
    ids = kb.concept_ids
    rng = random.Random(0)
    pick = [ids[rng.randrange(len(ids))] for _ in range(2000)]
    del ids
    res["get_us"] = round(timed_ms(kb.get, pick) * 1e3, 2)  # mostly uncached (2,000 random of 0.5M)
    res["resolve_us"] = round(timed_ms(kb.resolve_id, pick) * 1e3, 2)
    res["query_peak_mb"] = mb(peak())
    res.update(peaks())
    return res


def open_kb_for_query(a):
    """The KB a query phase links against: the store read lazily (``--lazy-kb``), else the JSONL in memory."""
    if a.lazy_kb:
        from genbel.kb.base import KnowledgeBase

        return KnowledgeBase.load(a.work / f"store_{a.names}", lazy=True, verify=False)
    kb = load_kb(kb_prefix(a.kb, a.names, a.work))
    kb.fingerprint()  # computed once (the KB's, not the index's cost)
    return kb


def _tokens(a):
    """Distinct names → SmolLM2 token ids of ``target(name)`` + EOS (as CandidateTrie), cached."""
    cache = a.work / f"tokens_{a.names}"
    if (cache / "offsets.npy").exists():
        meta = json.loads((cache / "meta.json").read_text())
        return np.load(cache / "tokens.npy"), np.load(cache / "offsets.npy"), meta
    from transformers import AutoTokenizer

    from genbel.generation.prompts import PromptFormat
    from genbel.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    path = kb_prefix(a.kb, a.names, a.work)
    names: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            for n in [d["name"], *d["synonyms"]]:
                names[n.strip()] = None
    names_l = list(names)
    del names
    eos = int(tok.eos_token_id)
    t0 = time.perf_counter()
    # SmolLM2's byte-level BPE never merges across " word" pre-tokens, so the ids of target(name) =
    # " " + name are the concatenated ids of its " word" pieces: each distinct piece is tokenised once
    # (checked against whole-name tokenisation on 5,000 names below)
    pieces: dict[str, list[int]] = {}
    words = list({w for n in names_l for w in PromptFormat.target(n)[1:].split(" ")})
    for i in range(0, len(words), 20_000):
        batch = [" " + w for w in words[i : i + 20_000]]
        for w, ids in zip(batch, tok(batch, add_special_tokens=False)["input_ids"], strict=True):
            pieces[w] = ids
    del words

    def ids_of(name: str) -> list[int]:
        return [t for w in PromptFormat.target(name)[1:].split(" ") for t in pieces[" " + w]]

    sample = names_l[:: max(1, len(names_l) // 5000)]
    whole = tok([PromptFormat.target(x) for x in sample], add_special_tokens=False)["input_ids"]
    mismatch = sum(ids_of(n) != w for n, w in zip(sample, whole, strict=True))
    chunks, lens = [], []
    for i in range(0, len(names_l), 100_000):
        ids = [ids_of(x) for x in names_l[i : i + 100_000]]
        lens.append(np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids)))
        chunks.append(np.fromiter((t for x in ids for t in (*x, eos)), dtype=np.uint16))
    tokens = np.concatenate(chunks)
    offsets = np.zeros(len(names_l) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lens), out=offsets[1:])
    meta = {"distinct_names": len(names_l), "tokens": int(len(tokens)), "eos": eos,
            "tokenize_s": round(time.perf_counter() - t0, 1), "piece_check": f"{mismatch} of {len(sample)} differ"}
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / "tokens.npy", tokens)
    np.save(cache / "offsets.npy", offsets)
    (cache / "meta.json").write_text(json.dumps(meta))
    return tokens, offsets, meta


def trie_build(a) -> dict:
    from genbel.trie import build_trie

    tokens, offsets, meta = _tokens(a)
    reset_peak()
    r0 = rss()
    t0 = time.perf_counter()
    trie = build_trie(tokens, offsets, layout=a.layout)
    res = {**meta, "layout": a.layout, "build_s": round(time.perf_counter() - t0, 1),
           "build_peak_mb": mb(peak()), "build_peak_delta_mb": mb(peak() - r0), "nbytes_mb": mb(trie.nbytes),
           "nodes": trie.num_nodes, "real_nodes": getattr(trie, "num_real", trie.num_nodes)}
    out = a.work / f"trie_{a.layout}_{a.names}"
    t0 = time.perf_counter()
    trie.save(out)
    res.update(save_s=round(time.perf_counter() - t0, 1), disk_mb=dir_mb(out))
    return res


def trie_query(a) -> dict:
    """mmap load time, then the allowed-next-token lookups of constrained decoding (``TrieConstraint``
    called as HF calls ``prefix_allowed_tokens_fn``) along every step of 1,000 random names; both
    layouts interleaved in this one process, best of 3 passes each."""
    import torch

    from genbel.trie import TrieConstraint, load_trie

    tokens, offsets, meta = _tokens(a)
    eos = meta["eos"]
    rng = random.Random(1)
    prompt = list(range(1000, 1000 + PROMPT_LEN))
    steps = []
    for _ in range(1000):
        i = rng.randrange(len(offsets) - 1)
        seq = tokens[offsets[i] : offsets[i + 1]].tolist()
        steps.extend(torch.tensor(prompt + seq[:t], dtype=torch.long) for t in range(len(seq)))
    del tokens, offsets
    res: dict = {"lookups": len(steps)}
    tries = {}
    for layout in ("tail", "full"):
        p = a.work / f"trie_{layout}_{a.names}"
        if not p.exists():
            continue
        r0 = rss()
        t0 = time.perf_counter()
        tries[layout] = load_trie(p, mmap=True)
        res[f"{layout}_mmap_load_s"] = round(time.perf_counter() - t0, 4)
        res[f"{layout}_mmap_rss_mb"] = mb(rss() - r0)
    allowed = {}
    for rep in range(3):
        for layout, trie in tries.items():
            fn = TrieConstraint(trie, PROMPT_LEN, num_beams=1, eos_token_id=eos, pad_token_id=eos)
            t0 = time.perf_counter()
            got = [fn(0, s) for s in steps]
            us = (time.perf_counter() - t0) / len(steps) * 1e6
            res.setdefault(f"{layout}_lookup_us_all", []).append(round(us, 2))
            allowed[layout] = [list(x) for x in got]
    for layout in tries:
        res[f"{layout}_lookup_us"] = min(res[f"{layout}_lookup_us_all"])
    if len(allowed) == 2:
        res["same_allowed_tokens"] = allowed["tail"] == allowed["full"]
    res["query_rss_mb"] = mb(rss())
    return res


def trie_series(a) -> dict:
    """Size of both layouts on the first 1/8, 1/4, 1/2 and all of the distinct names (bytes per name
    as the set grows: the basis of the extrapolation to larger sets)."""
    from genbel.trie import build_trie

    tokens, offsets, _ = _tokens(a)
    n = len(offsets) - 1
    res: dict = {}
    for frac in (8, 4, 2, 1):
        m = n // frac
        off = offsets[: m + 1]
        row = {"names": m}
        for layout in ("tail", "full"):
            t = build_trie(tokens[: off[-1]], off, layout=layout)
            row[f"{layout}_mb"] = mb(t.nbytes)
            row[f"{layout}_bytes_per_name"] = round(t.nbytes / m, 1)
            if layout == "tail":
                row["real_node_share"] = round(t.num_real / t.num_nodes, 3)
            del t
        res[str(m)] = row
    return res


def trie_marisa(a) -> dict:
    """Anchor: marisa-trie (GENRE's lighter option) over the same token sequences as strings."""
    import marisa_trie

    tokens, offsets, _ = _tokens(a)
    keys = ["".join(chr(0x10000 + t) for t in tokens[offsets[i] : offsets[i + 1]].tolist())
            for i in range(len(offsets) - 1)]
    del tokens
    reset_peak()
    r0 = rss()
    t0 = time.perf_counter()
    trie = marisa_trie.Trie(keys)
    res = {"build_s": round(time.perf_counter() - t0, 1), "build_peak_delta_mb": mb(peak() - r0)}
    out = a.work / f"marisa_{a.names}.marisa"
    trie.save(str(out))
    res["disk_mb"] = dir_mb(out)
    return res


def sparse_build(a) -> dict:
    """``SparseLinker.build``: the streamed build straight into the index directory."""
    from genbel.linkers.sparse import SparseLinker

    t0 = time.perf_counter()
    # --lazy-kb: built from the KB store read lazily (run `kb` first), as `genbel build-index` does with a
    # saved KB; else from the JSONL loaded whole
    kb = open_kb_for_query(a) if a.lazy_kb else load_kb(kb_prefix(a.kb, a.names, a.work))
    parse_s = time.perf_counter() - t0
    kb.fingerprint()  # computed once (the KB's, not the index's cost)
    reset_peak()
    r0 = rss()
    out = a.work / f"sparse_{a.names}"
    t0 = time.perf_counter()
    SparseLinker.build(kb, out)
    meta = json.loads((out / "meta.json").read_text())
    res = {"names": kb.n_names(), "parse_s": round(parse_s, 1), "build_s": round(time.perf_counter() - t0, 1),
           "build_peak_mb": mb(peak()), "build_peak_delta_mb": mb(peak() - r0), "kb_rss_mb": mb(r0),
           **peaks(), "nnz": meta["nnz"], "features": meta["n_features"], "disk_mb": dir_mb(out)}
    return res


def sparse_query(a) -> dict:
    from genbel.linkers.sparse import SparseLinker

    path = kb_prefix(a.kb, a.names, a.work)
    kb = open_kb_for_query(a)
    reset_peak()
    r0, a0 = rss(), anon()
    t0 = time.perf_counter()
    lk = SparseLinker.load(a.work / f"sparse_{a.names}", kb)
    res = {"load_s": round(time.perf_counter() - t0, 2), "load_rss_mb": mb(rss() - r0), "kb_rss_mb": mb(r0)}
    qs = queries(path)
    lk.candidates(qs[:5], k=10)
    t0 = time.perf_counter()
    got = lk.candidates(qs, k=10)
    res["query_ms"] = round((time.perf_counter() - t0) / len(qs) * 1e3, 2)
    res["query_peak_mb"] = mb(peak())
    res["index_anon_mb"] = mb(anon() - a0)  # private memory the index added over the loaded KB
    res.update(peaks())
    # the ranked candidates, to compare with another build (e.g. the code before a change)
    (a.work / f"sparse_topk_{a.names}.json").write_text(
        json.dumps([[(c.concept_id, round(c.score, 6)) for c in r] for r in got]))
    return res


def _synthetic_vectors(real: np.ndarray, start: int, stop: int, seed: int = 0) -> np.ndarray:
    """Rows ``start:stop``: normalise(real[i mod R] + 0.5 · N(0, I/d)) (seeded per 100k block)."""
    r, d = real.shape
    out = np.empty((stop - start, d), dtype=np.float32)
    block = 100_000
    for b0 in range(start - start % block, stop, block):
        rng = np.random.default_rng([seed, b0 // block])
        noise = rng.standard_normal((block, d), dtype=np.float32) * (0.5 / np.sqrt(d))
        lo, hi = max(start, b0), min(stop, b0 + block)
        idx = np.arange(lo, hi)
        x = real[idx % r] + noise[lo - b0 : hi - b0]
        out[lo - start : hi - start] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def dense_build(a) -> dict:
    import faiss
    import torch

    from genbel.encoders import TextEncoder
    from genbel.linkers.dense_index import (
        build_faiss_index,
        build_ivfpq_index,
        choose_index_kind,
        ivfpq_settings,
    )

    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    names: list[str] = []
    with open(a.kb, encoding="utf-8") as f:  # the first names of the KB (any size: the same real vectors)
        for line in f:
            d = json.loads(line)
            names.extend([d["name"], *d["synonyms"]])
            if len(names) >= a.real:
                break
    cache = a.work / f"dense_real_{a.real}.npz"
    if cache.exists():
        z = np.load(cache)
        real, rate = z["real"], float(z["rate"])
    else:
        enc = TextEncoder.load("minilm")
        enc.encode(names[:64])
        t0 = time.perf_counter()
        real = enc.encode(names[: a.real]).astype(np.float32)
        rate = len(real) / (time.perf_counter() - t0)
        np.savez(cache, real=real, rate=rate)
    n, d = a.names, real.shape[1]
    kind = a.kind or choose_index_kind(n, d)
    res = {"names": n, "dim": d, "real_vectors": len(real), "embed_rate_names_s": round(rate, 1),
           "embed_all_h_2cores": round(n / rate / 3600, 2), "kind": kind, "load_avg": os.getloadavg()[0]}
    reset_peak()
    r0 = rss()
    t0 = time.perf_counter()
    chunk = 200_000
    if kind == "ivfpq":
        # uniform training sample: a strided pass over the rows first (rows are generated, not stored)
        res["ivfpq"] = ivfpq_settings(n, d)
        index = build_ivfpq_index(
            (_synthetic_vectors(real, i, min(n, i + chunk)) for i in range(0, n, chunk)), d, n)
    else:
        index = build_faiss_index(np.zeros((0, d), np.float32), kind)
        for i in range(0, n, chunk):
            index.add(_synthetic_vectors(real, i, min(n, i + chunk)))
    res.update(build_s=round(time.perf_counter() - t0, 1), build_peak_mb=mb(peak()),
               build_peak_delta_mb=mb(peak() - r0))
    out = a.work / f"dense_{kind}_{a.names}.faiss"
    faiss.write_index(index, str(out))
    res["disk_mb"] = dir_mb(out)
    return res


def dense_query(a) -> dict:
    import faiss
    import torch

    from genbel.encoders import TextEncoder
    from genbel.linkers.dense_index import choose_index_kind

    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    real = np.load(a.work / f"dense_real_{a.real}.npz")["real"]
    qs = queries(a.kb)
    enc = TextEncoder.load("minilm")
    qv = enc.encode(qs).astype(np.float32)
    r0 = rss()
    t0 = time.perf_counter()
    kind = a.kind or choose_index_kind(a.names, real.shape[1])
    index = faiss.read_index(str(a.work / f"dense_{kind}_{a.names}.faiss"), faiss.IO_FLAG_MMAP)
    res = {"load_s": round(time.perf_counter() - t0, 1), "load_rss_mb": mb(rss() - r0)}
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = 128
    faiss.omp_set_num_threads(1)
    index.search(qv[:5], 10)
    t0 = time.perf_counter()
    for q in qv:
        index.search(q[None], 10)
    res["query_ms_1thread"] = round((time.perf_counter() - t0) / len(qv) * 1e3, 3)
    _, got = index.search(qv, 10)
    res["query_peak_mb"] = mb(peak())
    # exact top-1 over the same vectors, streamed
    best = np.full(len(qv), -np.inf, dtype=np.float32)
    arg = np.zeros(len(qv), dtype=np.int64)
    chunk = 200_000
    for i in range(0, a.names, chunk):
        x = _synthetic_vectors(real, i, min(a.names, i + chunk))
        s = qv @ x.T
        j = s.argmax(1)
        better = s[np.arange(len(qv)), j] > best
        best[better] = s[np.arange(len(qv)), j][better]
        arg[better] = j[better] + i
    res["recall1_at10"] = round(float(np.mean([arg[i] in got[i] for i in range(len(qv))])), 3)
    # rows i and j with i = j (mod R) are noisy copies of one real vector (near-ties): also count a hit
    # when a copy of the exact top-1's source vector is in the top 10
    r = len(real)
    res["recall1_at10_source"] = round(float(np.mean([arg[i] % r in set((got[i] % r).tolist())
                                                      for i in range(len(qv))])), 3)
    return res


def dense_linker(a) -> dict:
    """``DenseLinker(kb, minilm, index="ivfpq")`` over the KB's names with MiniLM's ``encode`` replaced by
    a stand-in (a seeded unit vector per distinct text, clustered around ``--real`` real MiniLM vectors
    as in ``dense``): what the linker itself holds while it builds — the name table, the vectors it
    keeps, the codes — without 36 minutes of embedding 1M names. Run it with the code before and after
    a change (``PYTHONPATH``) to compare."""
    import zlib

    import faiss
    import torch

    from genbel.encoders import TextEncoder
    from genbel.linkers.dense import DenseLinker

    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    real = np.load(a.work / f"dense_real_{a.real}.npz")["real"]
    kb = open_kb_for_query(a)
    enc = TextEncoder.load("minilm")

    def encode(texts, **kw):
        out = np.empty((len(texts), real.shape[1]), dtype=np.float32)
        for i, t in enumerate(texts):
            h = zlib.crc32(t.encode("utf-8"))
            x = real[h % len(real)] + np.random.default_rng(h).standard_normal(real.shape[1]).astype(np.float32) * (
                0.5 / np.sqrt(real.shape[1]))
            out[i] = x / np.linalg.norm(x)
        return out

    enc.encode = encode
    if a.ivfpq_chunk:  # distinct names embedded per step of the streamed build (the linker's default: 100,000)
        DenseLinker.IVFPQ_CHUNK = a.ivfpq_chunk
    reset_peak()
    r0, a0 = rss(), anon()
    t0 = time.perf_counter()
    lk = DenseLinker(kb, enc, index="ivfpq")
    res = {"names": len(lk.table), "distinct_embedded": lk.embedding_stats.embedded if lk.embedding_stats else None,
           "build_s": round(time.perf_counter() - t0, 1), "build_peak_mb": mb(peak()),
           "build_peak_delta_mb": mb(peak() - r0), "before_build_anon_mb": mb(a0), **peaks(),
           "linker_anon_mb": mb(anon() - a0)}
    out = a.work / f"dense_linker_{a.names}"
    lk.save(out)
    res["disk_mb"] = dir_mb(out)
    qs = queries(kb_prefix(a.kb, a.names, a.work))
    lk.candidates(qs[:5], k=10)
    t0 = time.perf_counter()
    lk.candidates(qs, k=10)
    res["query_ms"] = round((time.perf_counter() - t0) / len(qs) * 1e3, 2)
    return res


def ner_build(a) -> dict:
    from genbel.ner.dictionary import DictionaryDetector

    kb = open_kb_for_query(a)
    reset_peak()
    r0 = rss()
    a0 = anon()
    t0 = time.perf_counter()
    det = DictionaryDetector.from_kb(kb)
    res = {"names": kb.n_names(), "patterns": det.n_patterns, "build_s": round(time.perf_counter() - t0, 1),
           "build_peak_mb": mb(peak()), "build_peak_delta_mb": mb(peak() - r0), "kb_rss_mb": mb(r0),
           "detector_rss_mb": mb(rss() - r0), "detector_anon_mb": mb(anon() - a0)}
    texts = abstracts()
    det.detect(texts[0])
    t0 = time.perf_counter()
    found = [det.detect(t) for t in texts]
    spans = sum(map(len, found))
    # the spans, to compare with another build (e.g. the code before a change)
    (a.work / f"ner_spans_{a.names}.json").write_text(json.dumps([[(x.start, x.end, x.type) for x in f] for f in found]))
    res["detect_ms_per_abstract"] = round((time.perf_counter() - t0) / len(texts) * 1e3, 2)
    res["spans_per_abstract"] = round(spans / len(texts), 1)
    del kb
    import gc

    gc.collect()
    res["detector_only_rss_mb"] = mb(rss())
    res["detector_only_anon_mb"] = mb(anon())
    return res


PHASES = {
    "kb": [("build", kb_build), ("query", kb_query), ("query-lazy", kb_query_lazy)],
    "trie": [("build-tail", trie_build), ("build-full", trie_build), ("query", trie_query)],
    "sparse": [("build", sparse_build), ("query", sparse_query)],
    "dense": [("build", dense_build), ("query", dense_query)],
    "ner": [("build", ner_build)],
    "dense-linker": [("build", dense_linker)],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("component", choices=sorted(PHASES))
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--kb", type=Path, default=REPO / "runs" / "scale" / "umls7m.jsonl")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "scale" / "work")
    ap.add_argument("--rss-limit", type=float, default=9e9)
    ap.add_argument("--real", type=int, default=20_000, help="names embedded with MiniLM for real (dense)")
    ap.add_argument("--marisa", action="store_true", help="trie: also build the marisa-trie anchor")
    ap.add_argument("--kind", help="dense: force an index kind (default: genbel's choice by size)")
    ap.add_argument("--series", action="store_true", help="trie: only the size series (1/8 .. all names)")
    ap.add_argument("--lazy-kb", action="store_true",
                    help="sparse, ner, dense-linker: build and link against the KB store read lazily (run `kb` first)")
    ap.add_argument("--ivfpq-chunk", type=int, help="dense-linker: DenseLinker.IVFPQ_CHUNK")
    ap.add_argument("--only", help="run only these phases (comma-separated, e.g. query-lazy)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--layout", default="tail", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    if a.phase:  # worker
        watchdog(a.rss_limit)
        fns = dict(PHASES[a.component])
        fns["marisa"] = trie_marisa
        fns["series"] = trie_series
        out = fns[a.phase](a)
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 1)  # the phase's CPU time (the machine is shared)
        print(json.dumps(out), flush=True)
        return
    if a.component == "trie":
        _tokens(a)  # tokenise once (cached) before the timed phases
    phases = [p for p, _ in PHASES[a.component]] + (["marisa"] if a.marisa and a.component == "trie" else [])
    if a.series:
        phases = ["series"]
    if a.only:
        phases = [p for p in phases if p in a.only.split(",")]
    res: dict = {"component": a.component, "names": a.names, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "load_avg_start": os.getloadavg()[0]}
    for phase in phases:
        cmd = [sys.executable, __file__, a.component, "--names", str(a.names), "--kb", str(a.kb), "--work",
               str(a.work), "--rss-limit", str(a.rss_limit), "--real", str(a.real), "--phase", phase]
        if a.kind:
            cmd += ["--kind", a.kind]
        if a.lazy_kb:
            cmd += ["--lazy-kb"]
        if a.ivfpq_chunk:
            cmd += ["--ivfpq-chunk", str(a.ivfpq_chunk)]
        if phase.startswith("build-"):
            cmd += ["--layout", phase.split("-", 1)[1]]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [x for x in out.stdout.strip().splitlines() if x.startswith("{")]
        got = json.loads(lines[-1]) if lines else {"error": f"exit {out.returncode}: {out.stderr[-1500:]}"}
        got["wall_s"] = round(time.perf_counter() - t0, 1)
        res[phase] = got
        print(phase, json.dumps(got), file=sys.stderr, flush=True)
    res["load_avg_end"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"{'_series' if a.series else ''}{'_' + a.kind if a.kind else ''}{'_lazykb' if a.lazy_kb else ''}"
    tag += f"_{a.only.replace(',', '+')}" if a.only else ""
    (OUT / f"{a.component}{tag}_{a.names}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
