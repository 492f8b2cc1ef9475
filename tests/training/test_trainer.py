from __future__ import annotations

import json

import pytest
import torch

from genbel.errors import ConfigError, InputError
from genbel.training.config import TrainConfig
from genbel.training.encode import collate
from genbel.training.model import compute_loss
from genbel.training.trainer import Trainer
from tests.helpers import raises_code


def _cfg(tmp_path, base, **kw) -> TrainConfig:
    base_kw = dict(
        base_model=str(base),
        out=str(tmp_path / "run"),
        batch_size=4,
        lr=1e-2,
        warmup_ratio=0.0,
        max_steps=4,
        save_every=2,
        log_every=1,
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.1,
        seed=0,
        context_chars=0,
        include_group=True,
    )
    base_kw.update(kw)
    return TrainConfig(**base_kw)


def _full_loss(tr: Trainer) -> float:
    tr.model.eval()
    with torch.no_grad():
        b = collate(tr.encoded, tr.encoder.pad_token_id, tr.architecture)
        loss = float(compute_loss(tr.model, b, tr.architecture))
    tr.model.train()
    return loss


@pytest.mark.parametrize("lora", [True, False])
def test_causal_training_overfits(tmp_path, llama_dir, kb, docs, lora):
    cfg = _cfg(
        tmp_path,
        llama_dir,
        lora=lora,
        max_steps=25,
        lr=2e-2 if lora else 5e-3,
        lora_dropout=0.0,
        save_every=100,
    )
    tr = Trainer(cfg, kb=kb, documents={"human": docs})
    before = _full_loss(tr)
    final = tr.train()
    after = _full_loss(tr)
    assert after < before * 0.6, (before, after)
    n_trainable = sum(p.numel() for p in tr.model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in tr.model.parameters())
    assert (n_trainable < n_total / 2) if lora else (n_trainable == n_total)
    meta = json.loads((final / "genbel_linker.json").read_text())
    assert meta["architecture"] == "causal" and meta["base_model"] == str(llama_dir)
    assert (final / "adapter_config.json").exists() == lora
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 26))
    saved = TrainConfig.read(tmp_path / "run" / "config.json")
    assert saved == cfg


def test_lora_adapter_is_fp16_and_loads_in_the_linker(tmp_path, llama_dir, kb, docs):
    from safetensors.torch import load_file

    from genbel.data.queries import MentionQuery
    from genbel.linkers.generative import GenerativeLinker

    tr = Trainer(_cfg(tmp_path, llama_dir, max_steps=2), kb=kb, documents={"human": docs})
    final = tr.train()
    weights = load_file(final / "adapter_model.safetensors")
    assert weights and all(v.dtype == torch.float16 for v in weights.values())
    linker = GenerativeLinker.load(final, kb, num_beams=2)
    # the merged model scores like the trained one (fp16 rounding only)
    q = MentionQuery(text="breast cancers", type="Disease")
    res = linker.link([q], k=2)[0]
    assert 1 <= len(res) <= 2 and all(c.concept_id in kb for c in res)
    assert linker.format.include_group is True and linker.format.context_chars == 0
    # the shippable copy: no trie/KB/text_to_code, portable base model reference; the trie is rebuilt
    from genbel.training.save import copy_linker

    ship = copy_linker(final, tmp_path / "ship")
    assert (
        sorted(p.name for p in ship.iterdir() if p.name in ("trie", "kb", "text_to_code.json", "README.md"))
        == []
    )
    assert json.loads((ship / "adapter_config.json").read_text())["base_model_name_or_path"] == str(llama_dir)
    shipped = GenerativeLinker.load(ship, kb, num_beams=2)
    assert [c.concept_id for c in shipped.link([q], k=2)[0]] == [c.concept_id for c in res]


def test_seq2seq_training_runs_and_loss_decreases(tmp_path, bart_dir, kb, docs):
    cfg = _cfg(tmp_path, bart_dir, lora=False, max_steps=20, lr=5e-3, save_every=100)
    tr = Trainer(cfg, kb=kb, documents={"human": docs})
    assert tr.architecture == "seq2seq" and tr.format.style == "genbioel"
    before = _full_loss(tr)
    tr.train(save_final=False)
    assert _full_loss(tr) < before * 0.7


def test_resume_continues_with_identical_state(tmp_path, llama_dir, kb, docs):
    a = Trainer(_cfg(tmp_path / "a", llama_dir), kb=kb, documents={"human": docs})
    a.train(save_final=False)
    b = Trainer(_cfg(tmp_path / "b", llama_dir), kb=kb, documents={"human": docs})
    b.train(save_final=False, stop_after=2)
    assert [p.name for p in b.checkpoints()] == ["step-0000002"]
    state = json.loads((b.checkpoints()[-1] / "state.json").read_text())
    assert state["step"] == 2 and state["batch_in_epoch"] == 2
    c = Trainer(_cfg(tmp_path / "b", llama_dir), kb=kb, documents={"human": docs})
    c.train(save_final=False, resume=True)
    sa, sc = a.trainable_state(), c.trainable_state()
    assert sa.keys() == sc.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sc[k], rtol=0, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert [p.name for p in c.checkpoints()] == ["step-0000002", "step-0000004"]


def test_resume_guards(tmp_path, llama_dir, kb, docs):
    cfg = _cfg(tmp_path, llama_dir, max_steps=2)
    with raises_code("E350", ConfigError, match="no checkpoint to resume from"):
        Trainer(cfg, kb=kb, documents={"human": docs}).train(resume=True, save_final=False)
    Trainer(cfg, kb=kb, documents={"human": docs}).train(save_final=False)
    with raises_code("E352", ConfigError, match="pass --resume"):
        Trainer(cfg, kb=kb, documents={"human": docs}).train(save_final=False)
    changed = _cfg(tmp_path, llama_dir, max_steps=2, lr=0.5)
    with raises_code("E352", ConfigError, match=r"different settings \(lr\)"):
        Trainer(changed, kb=kb, documents={"human": docs}).train(resume=True, save_final=False)


def test_empty_training_set_is_a_clear_error(tmp_path, llama_dir, kb, docs):
    with raises_code("E017", InputError, match="the training set is empty: no corpus"):
        Trainer(_cfg(tmp_path, llama_dir), kb=kb, documents={})
    for d in docs:
        for e in d.entities:
            for n in e.normalized:
                n.db_id = "-1"
    with raises_code("E017", InputError, match="the training set is empty: the corpora gave no linkable mention"):
        Trainer(_cfg(tmp_path, llama_dir), kb=kb, documents={"human": docs})


def test_mixed_sources_and_dev_loss(tmp_path, llama_dir, kb, docs):
    cfg = _cfg(
        tmp_path,
        llama_dir,
        pretrain_per_concept=2,
        mix={"human": 0.5, "kb": 0.5},
        max_steps=3,
        eval_every=3,
        batch_size=4,
    )
    tr = Trainer(cfg, kb=kb, documents={"human": docs, "dev": docs[:1]})
    assert tr.order == ["human", "kb"] and tr.sampler.counts == [2, 2]
    assert tr.data.report["kb"]["concepts"] == len(kb)
    tr.train(save_final=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert "dev_loss" in log[-1] and log[-1]["dev_loss"] > 0


def test_config_roundtrip_and_errors(tmp_path):
    cfg = TrainConfig(train_corpora=["a.txt"], lr=1e-3)
    cfg.write(tmp_path / "c.yaml")
    assert TrainConfig.read(tmp_path / "c.yaml") == cfg
    cfg.write(tmp_path / "c.json")
    assert TrainConfig.read(tmp_path / "c.json") == cfg
    with raises_code("E357", ConfigError, match="batch_size"):
        TrainConfig.parse({"batch_size": 0})
    with raises_code("E357", ConfigError, match="mix"):
        TrainConfig.parse({"mix": {"people": 1.0}})
    with raises_code("E357", ConfigError, match="nonsense"):
        TrainConfig.parse({"nonsense": 1})


def test_type_filter_applies_to_human_data_only(tmp_path, kb, docs):
    from genbel.generation.prompts import PromptFormat
    from genbel.training.data import build_training_data
    from genbel.training.generators import TemplateGenerator
    from genbel.training.synth import synthesize

    synth = synthesize(kb, TemplateGenerator(), tmp_path / "s.jsonl", n=3, show_progress=False).documents
    cfg = TrainConfig(entity_types=["Disease"])
    data = build_training_data(cfg, kb, PromptFormat(context_chars=0), {"human": docs, "synthetic": synth})
    assert {e.query.type for e in data.sources["human"]} == {"Disease"}  # CompositeMention filtered out
    assert len(data.sources["synthetic"]) == 3 and {e.origin for e in data.sources["synthetic"]} == {
        "synthetic"
    }
    assert data.report["synthetic"]["documents"] == 3


def test_init_from_a_previous_run_continues_its_adapter(tmp_path, llama_dir, kb, docs):
    pre = Trainer(_cfg(tmp_path / "pre", llama_dir, max_steps=3, pretrain_per_concept=1), kb=kb, documents={})
    pre.train()
    trained = pre.trainable_state()
    ft = Trainer(_cfg(tmp_path / "ft", llama_dir, init=str(tmp_path / "pre" / "run")), kb=kb,
                 documents={"human": docs})
    start = ft.trainable_state()
    assert start.keys() == trained.keys()
    for k in trained:  # the adapter was stored in fp16
        torch.testing.assert_close(start[k], trained[k].half().float(), rtol=0, atol=0)
    assert ft.base_model_ref == str(llama_dir)


def test_examples_longer_than_max_length_are_dropped_and_counted(tmp_path, llama_dir, kb, docs):
    full = Trainer(_cfg(tmp_path / "a", llama_dir), kb=kb, documents={"human": docs})
    # with max_length=18 prompts are clipped to 16 tokens (room for targets), so a target of 3+ tokens
    # behind a clipped prompt no longer fits
    limit = 18
    expected = sum(
        1
        for e in full.encoded
        if min(sum(1 for x in e.labels if x == -100), 16) + sum(1 for x in e.labels if x != -100) > limit
    )
    assert expected > 0
    tr = Trainer(_cfg(tmp_path / "b", llama_dir, max_length=limit), kb=kb, documents={"human": docs})
    assert tr.data.report["human"]["too_long"] == expected
    assert len(tr.encoded) == len(tr.data.sources["human"]) == len(full.encoded) - expected
    assert max(len(e.input_ids) for e in tr.encoded) <= limit
    with raises_code("E017", InputError, match="every example is longer than max_length=2 tokens"):
        Trainer(_cfg(tmp_path / "c", llama_dir, max_length=2), kb=kb, documents={"human": docs})


def test_init_from_an_adapter_saved_without_its_tokenizer_reads_the_base_tokenizer(tmp_path, llama_dir, kb, docs):
    # the shipped default is such an adapter: its tokenizer is its base model's (genbel_linker.json)
    pre = Trainer(_cfg(tmp_path / "pre", llama_dir, max_steps=2, pretrain_per_concept=1), kb=kb, documents={})
    pre.train()
    final = tmp_path / "pre" / "run" / "final"
    removed = [p for p in final.iterdir() if p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges"))]
    assert removed
    for p in removed:
        p.unlink()
    ft = Trainer(_cfg(tmp_path / "ft", llama_dir, init=str(final)), kb=kb, documents={"human": docs})
    assert ft.tokenizer.get_vocab() == pre.tokenizer.get_vocab()
