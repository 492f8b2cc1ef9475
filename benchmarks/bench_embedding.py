"""First use of the shipped retriever (``dense:default``): embedding speed and shipped name vectors.

Three jobs, one per subcommand (each measures on genbel's bundled KB, MEDIC 2012, normalised names):

``speed``  names/s of CPU inference paths for the shipped encoder, interleaved in rounds (the machine
           is shared: compare rows of one run, not runs): torch fp32 (batch sizes, threads), torch
           dynamic int8, ONNX Runtime fp32 (plain and with ORT's BERT fusions) and int8
           (``quantize_dynamic``), all with length-sorted batches; with the cosine of each path's
           vectors to torch fp32's. The ONNX models are exported locally from the shipped weights
           (``torch.onnx.export``) into ``--work``.

``codecs`` Recall@1/@5 on NCBI-disease dev (to choose) and test (to report), under both protocols
           (bundled KB with the shipped prior; KB + training mentions with their prior — dev: train,
           test: train + dev), abbreviation expansion on, for ways of storing the KB name vectors small:
           int8, PCA to fewer dimensions (+ int8 / int4), faiss product quantisation, sign bits. The
           queries and the names not in the pack (training mentions) get the float vector of the same
           space (projected when the codec projects), as ``dense:default`` does.

``pack``   write the chosen projection and pack for the shipped retriever (``--dim``, ``--out``).

Float vectors of the bundled KB's names come from a name-vector store (``--store``, filled on first use:
about 3–10 min on 2 cores). Examples::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_embedding.py speed --n 1000 --rounds 2
    PYTHONPATH=src .venv/bin/python benchmarks/bench_embedding.py codecs --dims 64,96,128
    PYTHONPATH=src .venv/bin/python benchmarks/bench_embedding.py pack --codec pq --subvectors 96 --out src/genbel/resources/models/retriever
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ncbi-disease"
Fn = Callable[[np.ndarray], np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def _shipped():
    from genbel.encoders import TextEncoder
    from genbel.linkers.dense import shipped_retriever_dir

    d = shipped_retriever_dir()
    return d, TextEncoder.load(d / "encoder")  # the encoder as trained (no projection)


def _kb_names() -> list[str]:
    from genbel.kb import open_kb
    from genbel.linkers.nametable import NameTable

    return sorted(set(NameTable.from_kb(open_kb("default"), normalize=True).keys))


def _store(enc, path: Path):
    from genbel.encoders import encoder_fingerprint
    from genbel.encoders.vector_store import NameVectorStore

    return NameVectorStore(path, encoder_fingerprint(enc), enc.dim)


# ------------------------------------------------------------------------------------------------ speed
def export_onnx(enc, path: Path) -> Path:
    """The encoder's transformer as ONNX (last hidden states), exported from the loaded weights."""
    import torch

    if path.is_file():
        return path
    enc.model.set_attn_implementation("eager")  # sdpa does not trace to a shape-generic graph

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    b = enc.tokenize(["alpha beta gamma delta", "x"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Hidden(enc.model), (b["input_ids"], b["attention_mask"]), str(path),
                      input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                      dynamic_axes={k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask", "hidden")},
                      opset_version=17, dynamo=False)
    enc.model.set_attn_implementation("sdpa")
    return path


def _ort_encode(session, enc, texts: list[str], batch: int) -> np.ndarray:
    out = np.zeros((len(texts), enc.model.config.hidden_size), np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        b = enc.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=enc.max_length,
                          return_tensors="np")
        h = session.run(None, {"input_ids": b["input_ids"].astype(np.int64),
                               "attention_mask": b["attention_mask"].astype(np.int64)})[0]
        m = b["attention_mask"][..., None].astype(np.float32)
        out[idx] = _unit((h * m).sum(1) / np.maximum(m.sum(1), 1.0))
    return out


def speed(args: argparse.Namespace) -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from genbel.encoders import TextEncoder

    names = _kb_names()
    random.Random(0).shuffle(names)
    texts = names[: args.n]
    _, enc = _shipped()
    work = args.work
    fp32 = export_onnx(enc, work / "model.onnx")
    int8 = work / "model.int8.onnx"
    if not int8.is_file():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    fused = work / "model.fused.onnx"
    if not fused.is_file():
        cfg = enc.model.config
        optimize_model(str(fp32), model_type="bert", num_heads=cfg.num_attention_heads,
                       hidden_size=cfg.hidden_size, opt_level=1).save_model_to_file(str(fused))
    fused8 = work / "model.fused.int8.onnx"
    if not fused8.is_file():
        quantize_dynamic(str(fused), str(fused8), weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    qmodel = torch.ao.quantization.quantize_dynamic(enc.model, {torch.nn.Linear}, dtype=torch.qint8)
    enc_q = TextEncoder(qmodel, enc.tokenizer, pooling=enc.pooling, max_length=enc.max_length)

    def session(path: Path, threads: int):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def torch_path(e, threads: int, batch: int) -> Callable[[list[str]], np.ndarray]:
        def run(t: list[str]) -> np.ndarray:
            torch.set_num_threads(threads)
            e.batch_size = batch
            return e.encode(t, progress=False)
        return run

    def ort_path(path: Path, threads: int, batch: int = 128) -> Callable[[list[str]], np.ndarray]:
        s = session(path, threads)
        return lambda t: _ort_encode(s, enc, t, batch)

    paths = {
        "torch fp32, batch 128, 2 threads (today)": torch_path(enc, 2, 128),
        "torch fp32, batch 32, 2 threads": torch_path(enc, 2, 32),
        "torch fp32, batch 512, 2 threads": torch_path(enc, 2, 512),
        "torch fp32, batch 128, 1 thread": torch_path(enc, 1, 128),
        "torch dynamic int8, batch 128, 2 threads": torch_path(enc_q, 2, 128),
        "ONNX Runtime fp32, batch 128, 2 threads": ort_path(fp32, 2),
        "ONNX Runtime fp32 + BERT fusions, batch 128, 2 threads": ort_path(fused, 2),
        "ONNX Runtime int8, batch 128, 2 threads": ort_path(int8, 2),
        "ONNX Runtime int8 + BERT fusions, batch 128, 2 threads": ort_path(fused8, 2),
    }
    ref = paths["torch fp32, batch 128, 2 threads (today)"](texts)
    times: dict[str, list[float]] = {k: [] for k in paths}
    cos: dict[str, np.ndarray] = {}
    loads = []
    for r in range(args.rounds):
        for k, run in paths.items():
            loads.append(os.getloadavg()[0])
            t0 = time.perf_counter()
            v = run(texts)
            times[k].append(time.perf_counter() - t0)
            cos[k] = (v * ref).sum(1)
            print(f"round {r}: {k}: {len(texts) / times[k][-1]:.0f} names/s", flush=True)
    rows = [{"path": k, "names_per_s": round(len(texts) / float(np.median(t)), 1),
             "names_per_s_best": round(len(texts) / min(t), 1), "vs_today": 0.0,
             "cos_min": round(float(cos[k].min()), 6), "cos_mean": round(float(cos[k].mean()), 7)}
            for k, t in times.items()]
    base = rows[0]["names_per_s"]
    for row in rows:
        row["vs_today"] = round(row["names_per_s"] / base, 2)
    print(f"\n{len(texts)} MEDIC names, {args.rounds} interleaved rounds, load avg {min(loads):.1f}–{max(loads):.1f}")
    print("| path | names/s (median) | × today | cosine to fp32: min / mean |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['names_per_s']:.0f} | {row['vs_today']:.2f} | "
              f"{row['cos_min']:.4f} / {row['cos_mean']:.5f} |")
    _dump(args, {"n": len(texts), "rounds": args.rounds, "load": [min(loads), max(loads)], "rows": rows})


# ----------------------------------------------------------------------------------------------- codecs
def _q8(x: np.ndarray) -> np.ndarray:
    from genbel.encoders.vector_pack import dequantize_rows, quantize_rows

    return dequantize_rows(*quantize_rows(x))


def _q4(x: np.ndarray) -> np.ndarray:
    s = (np.abs(x).max(1, keepdims=True) / 7.0).astype(np.float16).astype(np.float32)
    return _unit(np.clip(np.rint(x / np.maximum(s, 1e-12)), -7, 7) * s)


def _then(first: Fn, second: Fn) -> Fn:
    return lambda x: second(first(x))


def _pq_codec(pq) -> Fn:
    return lambda x: _unit(pq.decode(pq.compute_codes(np.ascontiguousarray(x, dtype=np.float32))))


def codec_variants(kb_vectors: np.ndarray, dims: list[int]) -> Iterator[tuple[str, Fn, Fn, int, int]]:
    """``(name, pack codec, float projection, dim, bytes per name)``: the pack codec maps float
    vectors of the KB names to what the pack gives back; the projection maps every other vector
    (queries, names not in the pack) into the same space."""
    import faiss

    from genbel.encoders.projection import fit_pca

    d = kb_vectors.shape[1]
    same: Fn = lambda x: x
    yield "float32 (today)", same, same, d, 4 * d
    yield f"int8, {d} dims", _q8, same, d, d + 2
    for k in dims:
        proj = fit_pca(kb_vectors, k).apply
        yield f"PCA {k} (float32)", proj, proj, k, 4 * k
        if k <= 128:
            yield f"PCA {k} + int8", _then(proj, _q8), proj, k, k + 2
        if k >= 128:
            yield f"PCA {k} + int4", _then(proj, _q4), proj, k, k // 2 + 2
    for m in (48, 96):
        pq = faiss.ProductQuantizer(d, m, 8)
        pq.train(np.ascontiguousarray(kb_vectors))
        yield f"faiss PQ {m}×8 bits", _pq_codec(pq), same, d, m
    yield f"sign bits, {d} dims", lambda x: _unit(np.where(x > 0, 1.0, -1.0)), same, d, d // 8


def _protocols():
    from genbel.data import load_dataset
    from genbel.kb import open_kb
    from genbel.kb.loaders import augment_kb
    from genbel.linkers.nametable import concept_prior, read_prior

    shipped, _ = _shipped()
    for split in ("dev", "test"):
        docs = load_dataset("ncbi-disease", split, DATA)
        yield f"{split}, KB only", open_kb("default"), docs, read_prior(shipped / "concept_prior.json")
        extra = [d for s in (["train"] if split == "dev" else ["train", "dev"])
                 for d in load_dataset("ncbi-disease", s, DATA)]
        kb = open_kb("default")
        augment_kb(kb, extra)
        yield f"{split}, KB + train{'' if split == 'dev' else '/dev'} mentions", kb, docs, concept_prior(extra, kb)


def _fixed_encoder(enc, cache: dict, project: Fn, dim: int):
    """The shipped encoder whose vectors come from a cache of its float vectors, mapped by a codec's
    projection (queries are embedded once for all codecs)."""
    from genbel.encoders import TextEncoder

    class FixedEncoder(TextEncoder):
        @property
        def dim(self) -> int:
            return dim

        def encode(self, texts, progress=None, desc="embedding"):
            key = tuple(texts)
            if key not in cache:
                cache[key] = enc.encode(list(texts), progress=False)
            return project(cache[key])

    return FixedEncoder(enc.model, enc.tokenizer, pooling=enc.pooling, max_length=enc.max_length)


def codecs(args: argparse.Namespace) -> None:
    from genbel.encoders.vector_store import embed_with_store
    from genbel.eval import evaluate
    from genbel.linkers.dense import DenseLinker
    from genbel.linkers.dense_index import build_faiss_index
    from genbel.linkers.nametable import NameTable

    _, enc = _shipped()
    store = _store(enc, args.store)
    names = _kb_names()
    kb_vectors, _ = embed_with_store(enc, names, store, progress=True)
    in_pack = set(names)
    protocols = []
    for label, kb, docs, prior in _protocols():
        table = NameTable.from_kb(kb, normalize=True)
        distinct: dict[str, int] = {}
        inverse = np.array([distinct.setdefault(k, len(distinct)) for k in table.keys])
        texts = list(distinct)
        vectors, _ = embed_with_store(enc, texts, store)
        packed = np.array([t in in_pack for t in texts])
        protocols.append((label, kb, docs, prior, inverse, vectors, packed))
    query_cache: dict = {}
    rows = []
    for name, code, project, dim, nbytes in codec_variants(kb_vectors, args.dims):
        row = {"codec": name, "pack_MB": round(len(names) * (nbytes + 8) / 1e6, 2)}
        for label, kb, docs, prior, inverse, vectors, packed in protocols:
            out = np.zeros((len(vectors), dim), np.float32)
            out[packed] = code(vectors[packed])
            if (~packed).any():
                out[~packed] = project(vectors[~packed])
            linker = DenseLinker(kb, _fixed_encoder(enc, query_cache, project, dim),
                                 _faiss=build_faiss_index(out[inverse]), prior=prior)
            res = evaluate(docs, kb, linker, k=5, n_bootstrap=args.bootstrap, seed=0, expand_abbreviations=True)
            row[label] = [round(res.recall_at_1, 2), round(res.recall_at_5, 2), res.ci95["recall_at_1"]]
        rows.append(row)
        print(json.dumps(row), flush=True)
    labels = [p[0] for p in protocols]
    print("| codec | pack size | " + " | ".join(f"R@1 {lb}" for lb in labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for row in rows:
        print(f"| {row['codec']} | {row['pack_MB']:.1f} MB | " + " | ".join(f"{row[lb][0]:.2f}" for lb in labels) + " |")
    _dump(args, rows)


# ------------------------------------------------------------------------------------------------- pack
def pack(args: argparse.Namespace) -> None:
    """Write the pack of the bundled KB's names for the shipped encoder (``--codec``: ``pq`` with
    ``--subvectors`` bytes per name, the vector space unchanged; or ``int8``/``int4`` after a PCA to
    ``--dim``, written as ``projection.safetensors``). ``retriever.json`` must then name the pack
    (``name_vectors``) and, for a projection, ``projection``."""
    from genbel.encoders import TextEncoder, encoder_fingerprint
    from genbel.encoders.projection import PROJECTION_FILE, fit_pca
    from genbel.encoders.vector_pack import write_name_pack
    from genbel.encoders.vector_store import embed_with_store
    from genbel.kb import open_kb

    _, enc = _shipped()
    names = _kb_names()
    vectors, _ = embed_with_store(enc, names, _store(enc, args.store), progress=True)
    args.out.mkdir(parents=True, exist_ok=True)
    kb = open_kb("default")
    info = {"kb": kb.name, "kb_fingerprint": kb.fingerprint(), "names": "normalised (normalize_name), distinct",
            "vectors": "the fp32 shipped encoder's"}
    if args.codec == "pq":
        info["codec"] = f"faiss-style product quantiser, {args.subvectors} sub-vectors x 8 bits, trained on these names"
        fingerprint = encoder_fingerprint(enc)
    else:
        proj = fit_pca(vectors, args.dim)
        proj.save(args.out / PROJECTION_FILE)
        vectors = proj.apply(vectors)
        info["codec"] = f"PCA {args.dim} (centred, fitted on these names), {args.codec} per vector"
        fingerprint = encoder_fingerprint(TextEncoder(enc.model, enc.tokenizer, pooling=enc.pooling,
                                                      max_length=enc.max_length, projection=proj))
    path = write_name_pack(args.out / "name_vectors.safetensors", names, vectors, fingerprint, info,
                           codec=args.codec, pq_subvectors=args.subvectors)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(names):,} names, {args.codec})")


def _dump(args: argparse.Namespace, obj) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(obj, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="job", required=True)
    sp = sub.add_parser("speed", help="names/s of CPU inference paths")
    sp.add_argument("--n", type=int, default=1000, help="MEDIC names (random sample, seed 0)")
    sp.add_argument("--rounds", type=int, default=2)
    sp.add_argument("--work", type=Path, default=ROOT / "runs" / "onnx", help="where the ONNX exports go")
    cp = sub.add_parser("codecs", help="R@1 of ways to store the KB name vectors small")
    cp.add_argument("--dims", type=lambda s: [int(x) for x in s.split(",")], default=[64, 96, 128, 192])
    cp.add_argument("--bootstrap", type=int, default=1000)
    pp = sub.add_parser("pack", help="write the projection and the pack for the shipped retriever")
    pp.add_argument("--codec", default="pq", choices=["pq", "int8", "int4"])
    pp.add_argument("--subvectors", type=int, default=96, help="pq: bytes per name")
    pp.add_argument("--dim", type=int, default=192, help="int8/int4: PCA dimensions")
    pp.add_argument("--out", type=Path, required=True)
    for p in (cp, pp):
        p.add_argument("--store", type=Path, default=ROOT / "runs" / "cache" / "vectors",
                       help="name-vector store of the float vectors (filled when empty)")
    for p in (sp, cp, pp):
        p.add_argument("--json", type=Path, default=None)
        p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    {"speed": speed, "codecs": codecs, "pack": pack}[args.job](args)


if __name__ == "__main__":
    main()
