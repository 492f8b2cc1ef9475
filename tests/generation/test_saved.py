"""The saved-linker directory (genbel.generation.saved): one writer and one reader for the linker, training
and the Hugging Face export; architecture detection and LoRA base resolution."""

from __future__ import annotations

import json

import pytest
import torch

from genbel.errors import ConfigError, FormatError
from genbel.generation import saved
from genbel.generation.prompts import PromptFormat
from genbel.linkers.generative import GenerativeLinker
from genbel.training.save import copy_linker, save_linker
from tests.helpers import raises_code
from tests.linkers.generative_tiny import tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def kb():
    return tiny_kb()


@pytest.fixture(scope="module")
def tok(kb):
    return tiny_tokenizer(kb)


def _files(d) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.mark.parametrize("arch, expected", [("llama", "causal"), ("bart", "seq2seq"), ("t5", "seq2seq")])
def test_architecture_is_detected_from_the_model_config(tok, arch, expected):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model = tiny_model(arch, len(tok))
    assert saved.architecture_of(model.config) == expected
    auto = AutoModelForSeq2SeqLM if expected == "seq2seq" else AutoModelForCausalLM
    assert saved.model_class(expected) is auto
    saved.check_generative(model.config, arch)  # generative checkpoints pass


def test_an_encoder_only_config_is_refused():
    from transformers import BertConfig

    cfg = BertConfig(
        vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    )
    cfg.architectures = ["BertForMaskedLM"]
    with raises_code("E253", ConfigError, match=r"\[E253\]"):
        saved.check_generative(cfg, "bert")


def test_write_then_read_round_trip(kb, tok, tmp_path):
    model = tiny_model("llama", len(tok))
    trie = saved.build_trie(kb, tok, tok.eos_token_id)
    fmt = PromptFormat(context_chars=0, include_group=False)
    d = tmp_path / "lk"
    d.mkdir()
    saved.write_linker(
        d, model=model, tokenizer=tok, kb=kb, trie=trie, architecture="causal", prompt_format=fmt,
        base_model="tiny", max_source_length=100, max_target_length=saved.longest_target(trie),
        memory_training={"p_drop": 0.1},
    )
    assert saved.is_linker_dir(d) and not saved.is_adapter_dir(d)
    assert json.loads((d / saved.TEXT_TO_CODE_FILE).read_text()) == trie.text_to_code
    files = saved.read_linker(d)  # KB from kb/, trie from trie/
    assert files.kb.fingerprint() == kb.fingerprint()
    assert files.trie is not None and files.trie.text_to_code == trie.text_to_code
    assert files.options == {
        "prompt_format": fmt, "base_model": "tiny", "max_source_length": 100,
        "max_target_length": saved.longest_target(trie),
    }
    assert files.memory_training == {"p_drop": 0.1}
    for a, b in zip(model.state_dict().values(), files.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_the_linker_and_training_write_the_same_layout(kb, tok, tmp_path):
    model = tiny_model("llama", len(tok))
    lk = GenerativeLinker(model, tok, kb)
    a = lk.save(tmp_path / "linker")
    b = save_linker(model, tok, kb, lk.format, "causal", None, tmp_path / "trained")
    assert _files(a) == [f for f in _files(b) if f != "training.json"]
    ca, cb = (json.loads((d / saved.CONFIG_FILE).read_text()) for d in (a, b))
    assert ca == cb
    shipped = copy_linker(b, tmp_path / "ship")
    assert not {saved.TRIE_DIR, saved.KB_DIR, saved.TEXT_TO_CODE_FILE} & {p.name for p in shipped.iterdir()}
    again = saved.read_linker(shipped, kb)
    assert again.trie is None and again.kb is kb  # the trie is rebuilt for the KB given


def test_lora_base_prefers_the_linker_config_then_the_default_then_the_adapter(tmp_path):
    (tmp_path / saved.ADAPTER_CONFIG).write_text(json.dumps({"base_model_name_or_path": "/cache/base"}))
    assert saved.is_adapter_dir(tmp_path)
    assert saved.lora_base(tmp_path, {"base_model": "smollm2-135m"}, default="x") == "smollm2-135m"
    assert saved.lora_base(tmp_path, {"base_model": None}, default="x") == "x"
    assert saved.lora_base(tmp_path, {}) == "/cache/base"
    saved.set_adapter_base(tmp_path, "portable")
    assert saved.lora_base(tmp_path, {}) == "portable"


def test_config_errors_name_the_directory(tmp_path):
    with raises_code("E251", ConfigError, match=r"\[E251\].*genbel_linker.json"):
        saved.read_linker_config(tmp_path)
    (tmp_path / saved.CONFIG_FILE).write_text("{not json")
    with raises_code("E013", FormatError):
        saved.read_linker_config(tmp_path)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    with raises_code("E256", ConfigError, match=r"\[E256\]"):
        saved.check_replaceable(foreign)
    saved.check_replaceable(tmp_path / "missing")  # a new path is fine
