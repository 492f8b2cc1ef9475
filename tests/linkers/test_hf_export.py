"""``export_linker``: a linker directory → a ``trust_remote_code`` folder whose model has ``.sample()``."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    BartForConditionalGeneration,
    LlamaForCausalLM,
)

from genbel.errors import ConfigError
from genbel.generation.prompts import PromptFormat
from genbel.generation.saved import save_linker_config
from genbel.linkers.hf_export import MODELING_FILE, GenbelSampleMixin, export_linker
from genbel.linkers.generative import GenerativeLinker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import (
    SENTENCES,
    tiny_kb,
    tiny_model,
    tiny_tokenizer,
)
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def kb():
    return tiny_kb()


@pytest.fixture(scope="module")
def tok(kb):
    return tiny_tokenizer(kb)


@pytest.mark.parametrize(
    "arch, auto, base",
    [
        ("llama", AutoModelForCausalLM, LlamaForCausalLM),
        ("bart", AutoModelForSeq2SeqLM, BartForConditionalGeneration),
    ],
)
def test_export_round_trip_with_trust_remote_code(kb, tok, tmp_path, arch, auto, base):
    lk = GenerativeLinker(tiny_model(arch, len(tok)), tok, kb)
    d = lk.save(tmp_path / "linker")
    out = export_linker(d, tmp_path / "hf")
    cfg = json.loads((out / "config.json").read_text())
    key = "AutoModelForCausalLM" if arch == "llama" else "AutoModelForSeq2SeqLM"
    assert cfg["auto_map"] == {key: f"modeling_genbel.Genbel{base.__name__}"}
    assert (out / MODELING_FILE).read_text().count(
        f"class Genbel{base.__name__}(GenbelSampleMixin, {base.__name__})"
    ) == 1

    model = auto.from_pretrained(out, trust_remote_code=True)
    assert isinstance(model, base) and isinstance(model, GenbelSampleMixin)
    expected = lk.sample(SENTENCES, constrained=True, num_beams=3)
    assert model.sample(sentences=SENTENCES, constrained=True, num_beams=3) == expected
    assert model.sample(SENTENCES[:2], constrained=False, num_beams=2) == lk.sample(
        SENTENCES[:2], constrained=False, num_beams=2
    )
    # without trust_remote_code the folder is still a plain checkpoint and a genbel linker directory
    assert type(auto.from_pretrained(out)) is base
    assert GenerativeLinker.load(out, quantize="none").sample(SENTENCES, num_beams=3) == expected


def test_export_merges_a_lora_adapter_into_full_weights(kb, tok, tmp_path):
    from peft import LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    tiny_model("llama", len(tok), seed=2).save_pretrained(base_dir)
    torch.manual_seed(5)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False),
    )
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    save_linker_config(adapter, architecture="causal", prompt_format=PromptFormat(), base_model=str(base_dir))
    out = export_linker(adapter, tmp_path / "hf", kb=kb)
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    reference = GenerativeLinker(peft_model.merge_and_unload(), tok, kb)
    assert model.sample(SENTENCES[:3], num_beams=2) == reference.sample(SENTENCES[:3], num_beams=2)


def test_export_refuses_to_overwrite_a_foreign_directory(kb, tok, tmp_path):
    d = GenerativeLinker(tiny_model("llama", len(tok)), tok, kb).save(tmp_path / "linker")
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data.csv").write_text("1,2\n")
    with raises_code("E256", ConfigError, match="refusing to replace"):
        export_linker(d, target)
    assert (target / "data.csv").read_text() == "1,2\n"
