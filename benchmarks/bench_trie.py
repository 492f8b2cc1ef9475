"""Benchmark genbel's array trie against the nested-dict trie of GENRE / GenBioEL / SynCABEL.

Same names, same tokenizer (SmolLM2-135M's), one run each, every implementation in its own
subprocess so resident-memory deltas are clean:

* build time, resident memory (RSS) delta of the built trie, file size, load time;
* time per decoding-step lookup: the allowed next tokens of one beam, called as Hugging Face
  calls ``prefix_allowed_tokens_fn(batch_id, input_ids)`` (a tensor = 64 prompt tokens + the
  generated prefix), walking every step of randomly chosen names. The dict trie does what GENRE
  does (``trie.get(sent.tolist()[prompt_len:])``, a walk from the root each call); genbel's
  :class:`TrieConstraint` does one step from the cached parent state.

Scales: (a) all MEDIC + CTD disease names (read from ``../shared/data``); (b) synthetic
UMLS-shaped names built from the words of those names (fixed seed), 7 million by default. The
dict trie is only built up to ``--dict-max`` names (default 2M: beyond that it needs > 8 GB) and
extrapolated linearly from its two largest sizes — the table says so.

Optionally (``--model-step``) the share of constrained beam search spent in the trie is measured
with the real SmolLM2-135M: ``generate(num_beams=5)`` with ``prefix_allowed_tokens_fn`` and with
:class:`TrieLogitsProcessor`, against unconstrained generation.

Run:  nice -n 10 .venv/bin/python benchmarks/bench_trie.py [--synthetic 7000000] [--model-step]
Writes ``benchmarks/out/bench_trie.json`` and prints markdown tables. The synthetic names' token
ids are cached in ``benchmarks/out/cache/`` (tokenizing 7M names takes minutes); delete the cache
to regenerate them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"
PROMPT_LEN = 64
LOOKUP_REPEATS = 3
EOS = 2  # SmolLM2's <|im_end|>, also its pad token; set from the tokenizer in main()


# --------------------------------------------------------------------------- names
def medic_ctd_names() -> list[str]:
    """Distinct names (as written) of MEDIC 2012 and CTD diseases 2017."""
    names: dict[str, None] = {}
    with open(DATA / "medic" / "medic_06Jul2012.txt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "||" not in line:
                continue
            for n in line.split("||", 1)[1].split("|"):
                if n.strip():
                    names[n.strip()] = None
    with open(DATA / "ctd-diseases" / "CTD_diseases_2017.tsv", encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 8:
                continue
            for n in [cols[0], *cols[7].split("|")]:
                if n.strip():
                    names[n.strip()] = None
    return list(names)


SUFFIXES = [
    " (disorder)",
    ", NOS",
    " (finding)",
    " [Ambiguous]",
    ", unspecified",
    " (morphologic abnormality)",
    " (procedure)",
    ", initial encounter",
    " of left side",
    " of right side",
]


def synthetic_names(real: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` distinct UMLS-shaped names from the words of ``real`` (fixed seed).

    Word counts follow 1 + NegBin(2, mean 3.6) (UMLS English strings: median ~4 words, long tail);
    40% of names start with the first words of a real name (shared heads such as "Malignant
    neoplasm of ..."), words are drawn by their frequency in the real names, 15% get a UMLS-style
    suffix such as " (disorder)" or ", NOS".
    """
    rng = np.random.default_rng(seed)
    words_of = [r.split() for r in real]
    freq = Counter(w for ws in words_of for w in ws)
    vocab = list(freq)
    p = np.array([freq[w] for w in vocab], dtype=np.float64)
    p /= p.sum()
    out: dict[str, None] = {}
    batch = 200_000
    while len(out) < n:
        nw = 1 + rng.negative_binomial(2, 2 / (2 + 3.6), batch)
        nw = np.minimum(nw, 40)
        total = int(nw.sum())
        picks = rng.choice(len(vocab), size=total, p=p)
        heads = rng.random(batch) < 0.4
        head_src = rng.integers(0, len(real), batch)
        head_k = rng.integers(1, 4, batch)
        suffix = np.where(rng.random(batch) < 0.15, rng.integers(0, len(SUFFIXES), batch), -1)
        pos = 0
        for i in range(batch):
            k = int(nw[i])
            ws = [vocab[j] for j in picks[pos : pos + k]]
            pos += k
            if heads[i]:
                h = words_of[head_src[i]][: int(head_k[i])]
                ws = h + ws[len(h) :] if len(ws) > len(h) else h + ws[:1]
            name = " ".join(ws)
            if suffix[i] >= 0:
                name += SUFFIXES[suffix[i]]
            out[name] = None
            if len(out) >= n:
                break
    return list(out)


def tokenize(tokenizer, names: list[str], batch: int = 20_000) -> tuple[np.ndarray, np.ndarray, float]:
    """Flat token ids of ``" " + name`` + EOS for every name, offsets, seconds."""
    from genbel.generation.prompts import PromptFormat

    t0 = time.perf_counter()
    chunks, lens = [], []
    for i in range(0, len(names), batch):
        ids = tokenizer([PromptFormat.target(x) for x in names[i : i + batch]], add_special_tokens=False)[
            "input_ids"
        ]
        for x in ids:
            x.append(EOS)
        lens.append(np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids)))
        chunks.append(np.fromiter((t for x in ids for t in x), dtype=np.int32))
    tokens = np.concatenate(chunks)
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lens), out=offsets[1:])
    return tokens, offsets, time.perf_counter() - t0


# --------------------------------------------------------------------------- the dict trie (GENRE)
class DictTrie:
    """The nested-dict trie of GENRE (genre/trie.py), used by GenBioEL and SynCABEL (pickled)."""

    def __init__(self, sequences) -> None:
        self.trie_dict: dict = {}
        self.len = 0
        for s in sequences:
            DictTrie._add(s, self.trie_dict)
            self.len += 1

    @staticmethod
    def _add(sequence, d: dict) -> None:
        if sequence:
            if sequence[0] not in d:
                d[sequence[0]] = {}
            DictTrie._add(sequence[1:], d[sequence[0]])

    def get(self, prefix) -> list[int]:
        d = self.trie_dict
        for t in prefix:
            d = d.get(t)
            if d is None:
                return []
        return list(d.keys())


# --------------------------------------------------------------------------- worker
def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def sample_paths(offsets: np.ndarray, n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(len(offsets) - 1) for _ in range(n)]


def reset_peak() -> None:
    """Reset the process's peak RSS (Linux: VmHWM) so the next peak is the build's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss() -> int:
    """Peak RSS in bytes since the last :func:`reset_peak` (Linux VmHWM; getrusage elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_flat(data_dir: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.load(data_dir / "tokens.npy")
    offsets = np.load(data_dir / "offsets.npy")
    if limit and limit < len(offsets) - 1:
        offsets = offsets[: limit + 1]
        tokens = tokens[: offsets[-1]]
    return tokens, offsets


def worker_build(impl: str, data_dir: Path, limit: int, out_dir: Path) -> dict:
    """Build one trie from the token file, save it; time, peak memory of the build, file size."""
    tokens, offsets = load_flat(data_dir, limit)
    n = len(offsets) - 1
    res: dict = {"impl": impl, "names": n}
    if impl == "dict":
        seqs = [tokens[offsets[i] : offsets[i + 1]].tolist() for i in range(n)]
        gc.collect()
        reset_peak()
        r0 = rss()
        t0 = time.perf_counter()
        trie = DictTrie(seqs)
        res["build_s"] = time.perf_counter() - t0
        res["build_peak_mb"] = (peak_rss() - r0) / 1e6
        t0 = time.perf_counter()
        with open(out_dir / "trie.pkl", "wb") as f:
            pickle.dump(trie.trie_dict, f, protocol=pickle.HIGHEST_PROTOCOL)
        res["save_s"] = time.perf_counter() - t0
        res["file_mb"] = (out_dir / "trie.pkl").stat().st_size / 1e6
    else:
        from genbel.trie import TokenTrie

        gc.collect()
        reset_peak()
        r0 = rss()
        t0 = time.perf_counter()
        trie = TokenTrie.from_flat(tokens, offsets)
        res["build_s"] = time.perf_counter() - t0
        res["build_peak_mb"] = (peak_rss() - r0) / 1e6
        res["nbytes_mb"] = trie.nbytes / 1e6
        res["nodes"] = trie.num_nodes
        t0 = time.perf_counter()
        trie.save(out_dir / "trie")
        res["save_s"] = time.perf_counter() - t0
        res["file_mb"] = sum(p.stat().st_size for p in (out_dir / "trie").iterdir()) / 1e6
    return res


def worker_use(impl: str, data_dir: Path, limit: int, out_dir: Path, n_paths: int) -> dict:
    """Load a saved trie in a fresh process (RSS delta, load time) and time decoding-step lookups."""
    import torch

    tokens, offsets = load_flat(data_dir, limit)
    prompt = list(range(1000, 1000 + PROMPT_LEN))
    steps = []
    for i in sample_paths(offsets, n_paths):
        seq = tokens[offsets[i] : offsets[i + 1]].tolist()
        for t in range(len(seq)):  # prefix seq[:t] -> allowed tokens (includes seq[t])
            steps.append(torch.tensor(prompt + seq[:t], dtype=torch.long))
    res: dict = {}
    if impl == "dict":
        gc.collect()
        r0 = rss()
        t0 = time.perf_counter()
        with open(out_dir / "trie.pkl", "rb") as f:
            trie = DictTrie([])
            trie.trie_dict = pickle.load(f)
        res["load_s"] = time.perf_counter() - t0
        res["rss_mb"] = (rss() - r0) / 1e6

        def make_fn():
            def fn(batch_id: int, sent: torch.Tensor) -> list[int]:  # GENRE's prefix_allowed_tokens_fn
                return trie.get(sent.tolist()[PROMPT_LEN:])

            return fn
    else:
        from genbel.trie import TokenTrie, TrieConstraint

        t0 = time.perf_counter()
        TokenTrie.load(out_dir / "trie", mmap=True)
        res["load_s"] = time.perf_counter() - t0
        gc.collect()
        r0 = rss()
        t0 = time.perf_counter()
        trie = TokenTrie.load(out_dir / "trie", mmap=False)
        res["load_ram_s"] = time.perf_counter() - t0
        res["rss_mb"] = (rss() - r0) / 1e6

        def make_fn():  # a fresh constraint: no state cached from an earlier repeat
            return TrieConstraint(trie, PROMPT_LEN, num_beams=1, eos_token_id=EOS, pad_token_id=EOS)

    times = []
    for _ in range(LOOKUP_REPEATS):  # the machine is shared: keep the fastest of a few passes
        fn = make_fn()
        t0 = time.perf_counter()
        total = 0
        for s in steps:
            total += len(fn(0, s))
        times.append((time.perf_counter() - t0) / len(steps) * 1e6)
    res["lookup_us"] = min(times)
    res["lookup_us_all"] = times
    res["lookups"] = len(steps)
    res["allowed_total"] = total
    return res


def run_worker(impl: str, data_dir: Path, limit: int, n_paths: int) -> dict:
    """Build (one subprocess), then load and look up (a fresh subprocess); merged results."""
    import shutil

    out_dir = Path(tempfile.mkdtemp(prefix=f"{impl}_", dir=data_dir))
    res: dict = {}
    try:
        for phase in ("build", "use"):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                impl,
                "--phase",
                phase,
                "--data",
                str(data_dir),
                "--limit",
                str(limit),
                "--paths",
                str(n_paths),
                "--eos",
                str(EOS),
                "--out-dir",
                str(out_dir),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"worker {impl} {phase} failed:\n{out.stderr[-3000:]}")
            res.update(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- model step share
def model_step(names: list[str], n_prompts: int = 4, beams: int = 5, new_tokens: int = 12) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    from genbel.data.queries import MentionQuery
    from genbel.generation.prompts import PromptFormat
    from genbel.kb.base import KnowledgeBase
    from genbel.kb.concept import Concept
    from genbel.models import resolve_model
    from genbel.trie import CandidateTrie, TrieConstraint, TrieLogitsProcessor

    path = resolve_model("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    kb = KnowledgeBase([Concept(f"X{i}", n) for i, n in enumerate(names)])
    ct = CandidateTrie.from_kb(kb, tok, target=PromptFormat.target, show_progress=False)
    fmt = PromptFormat()
    mentions = [
        "breast cancer",
        "colorectal tumours",
        "APC",
        "Huntington disease",
        "diabetes",
        "ataxia",
        "myocardial infarction",
        "hereditary nonpolyposis colorectal cancer",
    ][:n_prompts]
    prompts = [
        fmt.prompt(
            MentionQuery(
                text=m,
                type="Disorders",
                context=f"Patients with {m} were studied.",
                start=14,
                end=14 + len(m),
            )
        )
        for m in mentions
    ]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    plen = enc["input_ids"].shape[1]
    depth = ct.trie.max_depth  # constrained beams end with their names
    kw = dict(num_beams=beams, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    res: dict = {"prompts": len(prompts), "beams": beams}

    def timed(**extra):
        with torch.no_grad():
            t0 = time.perf_counter()
            out = model.generate(**enc, **{**kw, **extra})
            return time.perf_counter() - t0, out

    timed(max_new_tokens=2)  # warm-up
    dt, out = timed(min_new_tokens=new_tokens)
    res["unconstrained_s"], res["unconstrained_steps"] = dt, out.shape[1] - plen

    import transformers.generation.logits_process as lp

    class TimedProcessor(lp.LogitsProcessor):
        def __init__(self, inner) -> None:
            self.inner, self.spent = inner, 0.0

        def __call__(self, input_ids, scores):
            t0 = time.perf_counter()
            r = self.inner(input_ids, scores)
            self.spent += time.perf_counter() - t0
            return r

    # prefix_allowed_tokens_fn: time HF's PrefixConstrainedLogitsProcessor (our function + its masking)
    c = TrieConstraint(
        ct, plen, num_beams=beams, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    spent = [0.0]
    orig_call = lp.PrefixConstrainedLogitsProcessor.__call__

    def timed_call(self, input_ids, scores):
        t0 = time.perf_counter()
        r = orig_call(self, input_ids, scores)
        spent[0] += time.perf_counter() - t0
        return r

    lp.PrefixConstrainedLogitsProcessor.__call__ = timed_call
    try:
        dt, out = timed(prefix_allowed_tokens_fn=c, max_new_tokens=depth)
    finally:
        lp.PrefixConstrainedLogitsProcessor.__call__ = orig_call
    res["fn_s"], res["fn_trie_s"], res["fn_steps"] = dt, spent[0], out.shape[1] - plen
    res["fn_ok"] = sum(ct.decode(r[plen:]) is not None for r in out)

    proc = TimedProcessor(
        TrieLogitsProcessor(
            ct, plen, num_beams=beams, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
    )
    dt, out2 = timed(logits_processor=LogitsProcessorList([proc]), max_new_tokens=depth)
    res["proc_s"], res["proc_trie_s"], res["proc_steps"] = dt, proc.spent, out2.shape[1] - plen
    res["same_output"] = bool(torch.equal(out, out2))
    return res


# --------------------------------------------------------------------------- main
def fmt_row(label: str, r: dict) -> str:
    load = "–" if r.get("load_s") is None else f"{r['load_s']:.2f}"
    return (
        f"| {label} | {r['impl']} | {r['names']:,} | {r['build_s']:.1f} | {r['build_peak_mb']:,.0f} "
        f"| {r['rss_mb']:,.1f} | {r['file_mb']:,.1f} | {load} | {r['lookup_us']:.1f} |"
    )


def main() -> None:
    global EOS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic", type=int, default=7_000_000, help="synthetic names (0 = skip)")
    ap.add_argument("--dict-max", type=int, default=2_000_000, help="largest dict trie to build")
    ap.add_argument("--paths", type=int, default=2000, help="random names whose steps are looked up")
    ap.add_argument(
        "--model-step", action="store_true", help="also measure the trie's share of SmolLM2 beam search"
    )
    ap.add_argument("--worker", choices=["dict", "genbel"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--phase", choices=["build", "use"])
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--eos", type=int, default=EOS)
    args = ap.parse_args()
    EOS = args.eos
    if args.worker:
        if args.phase == "build":
            res = worker_build(args.worker, args.data, args.limit, args.out_dir)
        else:
            res = worker_use(args.worker, args.data, args.limit, args.out_dir, args.paths)
        print(json.dumps(res))
        return

    from transformers import AutoTokenizer

    from genbel.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    EOS = tok.eos_token_id
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"scales": []}
    real = medic_ctd_names()
    work = Path(tempfile.mkdtemp(prefix="bench_trie_", dir=OUT))
    scales = [("MEDIC+CTD", real)]
    rows = []
    try:
        for label, names in scales + ([("synthetic UMLS-like", None)] if args.synthetic else []):
            tok_s = float("nan")
            if names is None:
                cache = OUT / "cache" / f"synthetic-{args.synthetic}-seed0"
                if Path(f"{cache}-tokens.npy").is_file() and Path(f"{cache}-offsets.npy").is_file():
                    tokens, offsets = np.load(f"{cache}-tokens.npy"), np.load(f"{cache}-offsets.npy")
                    print(f"synthetic names: token ids read from {cache}-*.npy", flush=True)
                else:
                    t0 = time.perf_counter()
                    names = synthetic_names(real, args.synthetic)
                    print(
                        f"generated {len(names):,} synthetic names in {time.perf_counter() - t0:.0f} s",
                        flush=True,
                    )
                    tokens, offsets, tok_s = tokenize(tok, names)
                    cache.parent.mkdir(parents=True, exist_ok=True)
                    np.save(f"{cache}-tokens.npy", tokens)
                    np.save(f"{cache}-offsets.npy", offsets)
                    del names
            else:
                tokens, offsets, tok_s = tokenize(tok, names)
            n = len(offsets) - 1
            lens = np.diff(offsets)
            print(
                f"{label}: {n:,} names, {len(tokens):,} tokens (mean {lens.mean():.1f}, max {lens.max()}), "
                f"tokenized in {tok_s:.1f} s",
                flush=True,
            )
            np.save(work / "tokens.npy", tokens)
            np.save(work / "offsets.npy", offsets)
            del tokens
            scale = {
                "label": label,
                "names": n,
                "tokenize_s": tok_s,
                "mean_tokens": float(lens.mean()),
                "runs": [],
            }
            g = run_worker("genbel", work, 0, args.paths)
            scale["runs"].append(g)
            rows.append(fmt_row(label, g))
            print(rows[-1], flush=True)
            if n <= args.dict_max:
                d = run_worker("dict", work, 0, args.paths)
                scale["runs"].append(d)
                rows.append(fmt_row(label, d))
                print(rows[-1], flush=True)
                scale["memory_ratio"] = d["rss_mb"] / g["rss_mb"]
            else:
                sub = []
                for lim in (args.dict_max // 2, args.dict_max):
                    sub.append(run_worker("genbel", work, lim, args.paths))
                    rows.append(fmt_row(f"{label} (first {lim:,})", sub[-1]))
                    print(rows[-1], flush=True)
                    sub.append(run_worker("dict", work, lim, args.paths))
                    rows.append(fmt_row(f"{label} (first {lim:,})", sub[-1]))
                    print(rows[-1], flush=True)
                scale["subsets"] = sub
                d1, d2 = sub[1], sub[3]
                slope = {
                    k: (d2[k] - d1[k]) / (d2["names"] - d1["names"])
                    for k in ("build_s", "build_peak_mb", "rss_mb", "file_mb")
                }
                ext = {
                    "impl": "dict (extrapolated)",
                    "names": n,
                    "load_s": None,
                    "lookup_us": d2["lookup_us"],
                }
                for k, s in slope.items():
                    ext[k] = d2[k] + s * (n - d2["names"])
                scale["dict_extrapolated"] = ext
                scale["memory_ratio"] = ext["rss_mb"] / g["rss_mb"]
                rows.append(fmt_row(label, ext))
                print(rows[-1], flush=True)
            results["scales"].append(scale)
        if args.model_step:
            results["model_step"] = model_step(real)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    (OUT / "bench_trie.json").write_text(json.dumps(results, indent=2))

    print(
        "\n| scale | trie | names | build s | build peak MB | RSS MB (loaded) | file MB | load s "
        "| µs / lookup |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    for s in results["scales"]:
        print(
            f"\n{s['label']}: dict/genbel resident-memory ratio {s['memory_ratio']:.1f}x; "
            f"{s['mean_tokens']:.1f} tokens per name; tokenization {s['tokenize_s']:.1f} s"
        )
    m = results.get("model_step")
    if m:
        print(f"\nSmolLM2-135M, {m['prompts']} prompts x {m['beams']} beams, CPU:")
        rows_per_step = m["prompts"] * m["beams"]
        print("| decoding | total s | steps | ms / step | trie ms / step | trie µs / beam | trie share |")
        print("|---|---|---|---|---|---|---|")
        u = m["unconstrained_s"] / m["unconstrained_steps"] * 1e3
        print(
            f"| unconstrained | {m['unconstrained_s']:.2f} | {m['unconstrained_steps']} | {u:.0f} "
            "| – | – | – |"
        )
        for label, k in (
            ("prefix_allowed_tokens_fn=TrieConstraint (+ HF masking)", "fn"),
            ("TrieLogitsProcessor", "proc"),
        ):
            total, trie_s, steps = m[f"{k}_s"], m[f"{k}_trie_s"], m[f"{k}_steps"]
            print(
                f"| {label} | {total:.2f} | {steps} | {total / steps * 1e3:.0f} | {trie_s / steps * 1e3:.1f} "
                f"| {trie_s / steps / rows_per_step * 1e6:.0f} | {100 * trie_s / total:.2f}% |"
            )
        print(f"same outputs: {m['same_output']}; decodable beams: {m['fn_ok']}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
