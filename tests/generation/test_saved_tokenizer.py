"""Linkers that share their base model's tokenizer (genbel.generation.saved, the tokenizer part)."""

from __future__ import annotations

import json

import pytest

from genbel.errors import ConfigError
from genbel.generation import saved
from genbel.generation.prompts import PromptFormat
from tests.helpers import raises_code
from tests.linkers.generative_tiny import tiny_kb, tiny_model, tiny_tokenizer
from tests.tiny_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(tiny_kb())


def test_fingerprint_follows_the_token_ids_not_the_files(tok, tmp_path):
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path / "t")
    again = AutoTokenizer.from_pretrained(tmp_path / "t")
    assert saved.tokenizer_fingerprint(again) == saved.tokenizer_fingerprint(tok)
    again.add_tokens(["<extra>"])
    assert saved.tokenizer_fingerprint(again) != saved.tokenizer_fingerprint(tok)


def test_a_linker_without_tokenizer_files_reads_its_bases_and_checks_it(tok, tmp_path):
    base = tmp_path / "base"
    tiny_model("llama", len(tok)).save_pretrained(base)
    tok.save_pretrained(base)
    d = tmp_path / "lk"
    d.mkdir()
    saved.save_linker_config(d, architecture="causal", prompt_format=PromptFormat(), base_model=str(base),
                             tokenizer_fingerprint=saved.tokenizer_fingerprint(tok))
    cfg = saved.read_linker_config(d)
    assert cfg["tokenizer"] == {"from_base": True, "fingerprint": saved.tokenizer_fingerprint(tok)}
    got = saved.read_tokenizer(d, cfg)
    assert got("breast cancer")["input_ids"] == tok("breast cancer")["input_ids"]
    # the base's tokenizer changed since: a clear error, not silently different token ids
    other = tiny_tokenizer(tiny_kb())
    other.add_tokens(["<new>"])
    other.save_pretrained(base)
    with raises_code("E562", ConfigError, match="differs from the one it was trained with"):
        saved.read_tokenizer(d, cfg)


def test_only_adapters_over_packaged_bases_share(tok, tmp_path):
    # a full checkpoint, or a base that is a local path or hub id: the tokenizer files are kept
    assert saved.shares_base_tokenizer(tok, "smollm2-135m", is_adapter=False) is None
    assert saved.shares_base_tokenizer(tok, str(tmp_path), is_adapter=True) is None
    assert saved.shares_base_tokenizer(tok, None, is_adapter=True) is None
    model = tiny_model("llama", len(tok))
    kb = tiny_kb()
    trie = saved.build_trie(kb, tok, tok.eos_token_id)
    d = tmp_path / "full"
    d.mkdir()
    saved.write_linker(d, model=model, tokenizer=tok, kb=kb, trie=trie, architecture="causal",
                       prompt_format=PromptFormat(), base_model="smollm2-135m", max_source_length=64,
                       max_target_length=saved.longest_target(trie), include_trie=False, include_kb=False)
    assert (d / "tokenizer.json").is_file() and "tokenizer" not in json.loads((d / saved.CONFIG_FILE).read_text())


@pytest.mark.slow
def test_shipped_default_uses_the_smollm2_tokenizer():
    from genbel.linkers.default import default_model_dir

    d = default_model_dir()
    if d is None:
        pytest.skip("no default model shipped")
    cfg = saved.read_linker_config(d)
    if not cfg.get("tokenizer"):
        pytest.skip("the shipped default carries its own tokenizer")
    assert not (d / "tokenizer.json").exists() and not (d / "tokenizer_config.json").exists()
    base = saved.base_tokenizer("smollm2-135m")
    assert cfg["tokenizer"]["fingerprint"] == saved.tokenizer_fingerprint(base)
    assert saved.shares_base_tokenizer(base, "smollm2-135m", is_adapter=True) == cfg["tokenizer"]["fingerprint"]
    tok = saved.read_tokenizer(d, cfg)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
