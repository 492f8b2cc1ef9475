"""Robust memory training wired into the trainer: ``TrainConfig.memory*``, ``build_training_data``,
the document-level prompt encoder, the saved linker used as ``document:RUN/final``, and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.data import write_corpus
from genbel.errors import ConfigError
from genbel.generation.encoding import DocumentPromptEncoder, PromptEncoder, with_memory
from genbel.generation.prompts import PromptFormat
from genbel.linkers.document import DocumentLinker
from genbel.linkers.generative import GenerativeLinker
from genbel.linkers.registry import create_linker
from genbel.training.config import TrainConfig
from genbel.training.data import build_training_data
from genbel.training.encode import IGNORE
from genbel.training.examples import TrainingExample
from genbel.training.memory import MemoryExample, add_memory
from genbel.training.trainer import Trainer
from tests.helpers import raises_code
from tests.training.conftest import doc, tiny_llama

runner = CliRunner()

# document "2" of the ``docs`` fixture: composite mention (2 examples), "diabetes mellitus", "DM", "DM"
DM_PROMPT = (
    "breast and ovarian cancer is Breast Neoplasms\n"
    "diabetes mellitus is Diabetes Mellitus\n"
    "---\n"
    "[DM]\nDM is"
)


def _cfg(tmp_path, **kw) -> TrainConfig:
    base: dict = {
        "base_model": "unused-with-a-model-object",
        "out": str(tmp_path / "run"),
        "lora": False,
        "batch_size": 4,
        "lr": 1e-2,
        "warmup_ratio": 0.0,
        "max_steps": 2,
        "save_every": 100,
        "log_every": 1,
        "seed": 0,
        "context_chars": 0,
        "include_group": False,
        "target": "preferred",
        "composite": "each",
    }
    base.update(kw)
    return TrainConfig(**base)


def _trainer(tmp_path, tokenizer, kb, docs, **kw) -> Trainer:
    cfg = _cfg(tmp_path, **kw)
    return Trainer(cfg, model=tiny_llama(tokenizer), tokenizer=tokenizer, kb=kb, documents={"human": docs})


def _prompt(tr: Trainer, i: int) -> str:
    """The decoded prompt (label -100 part) of the i-th encoded example."""
    e = tr.encoded[i]
    n = sum(1 for x in e.labels if x == IGNORE)
    return tr.tokenizer.decode(e.input_ids[:n], skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------- prompts
def test_memory_on_puts_the_earlier_gold_names_in_the_prompt(tmp_path, tokenizer, kb, docs):
    tr = _trainer(tmp_path, tokenizer, kb, docs, memory=True, memory_corruption=0.0, memory_fraction=1.0)
    assert type(tr.encoder) is DocumentPromptEncoder
    assert tr.encoder.max_source_length == tr.cfg.max_length - 32
    exs = tr.data.sources["human"]
    assert all(isinstance(e, MemoryExample) for e in exs)
    texts = [(e.query.doc_id, e.query.text) for e in exs]
    i = texts.index(("2", "DM"))  # the first "DM": two earlier distinct mentions
    assert _prompt(tr, i) == DM_PROMPT
    # the second "DM" also remembers the first one
    assert _prompt(tr, i + 1) == DM_PROMPT.replace("---", "DM is Diabetes Mellitus\n---")
    # the first mention of every document has an empty memory: a mention-level prompt
    assert _prompt(tr, texts.index(("1", "breast cancers"))) == "[breast cancers]\nbreast cancers is"
    assert _prompt(tr, texts.index(("1", "ovarian cancer"))) == (
        "breast cancers is Breast Neoplasms\n---\n[ovarian cancer]\novarian cancer is"
    )
    mem = tr.data.report["human"]["memory"]
    # 8 examples (doc 3's unknown id is skipped); with memory: all; entries: doc 1: 0+1, doc 2: 0+0+1+2+3
    assert mem == {"examples": 8, "with_memory": 8, "entries": 7, "dropped": 0, "replaced": 0}
    assert tr.data.report["human"]["kept"] == len(exs) == 8


def test_memory_size_limits_the_entries_in_the_prompt(tmp_path, tokenizer, kb, docs):
    tr = _trainer(
        tmp_path, tokenizer, kb, docs, memory=True, memory_corruption=0.0, memory_fraction=1.0, memory_size=1
    )
    texts = [(e.query.doc_id, e.query.text) for e in tr.data.sources["human"]]
    assert _prompt(tr, texts.index(("2", "DM"))) == "diabetes mellitus is Diabetes Mellitus\n---\n[DM]\nDM is"
    assert tr.format.memory_size == 1


def test_full_corruption_with_dropping_leaves_no_entry(tmp_path, tokenizer, kb, docs):
    tr = _trainer(tmp_path, tokenizer, kb, docs, memory=True, memory_corruption=0.0, memory_fraction=1.0)
    plain = [TrainingExample(e.query, e.target, e.concept_id, e.origin) for e in tr.data.sources["human"]]
    dropped = add_memory(plain, kb, corruption=1.0, fraction=1.0, drop_share=1.0, seed=0)
    assert all(m.memory == [] for m in dropped)
    prompts = [tr.tokenizer.decode(tr.encoder.encode(m.query).input_ids, skip_special_tokens=True)
               for m in dropped]
    assert all("---" not in p and " is " not in p for p in prompts)
    assert prompts[plain.index(next(e for e in plain if e.query.text == "DM"))] == "[DM]\nDM is"


def test_full_corruption_in_the_trainer_changes_every_entry(tmp_path, tokenizer, kb, docs):
    tr = _trainer(tmp_path, tokenizer, kb, docs, memory=True, memory_corruption=1.0, memory_fraction=1.0)
    rep = tr.data.report["human"]["memory"]
    assert rep["entries"] == 7 and rep["dropped"] + rep["replaced"] == 7 and rep["replaced"] > 0
    first: dict[str, str] = {}  # a mention's memory entry comes from its first example (composite: D001943)
    for e in tr.data.sources["human"]:
        first.setdefault(e.query.text, e.concept_id)
    assert first["breast and ovarian cancer"] == "D001943"
    n = 0
    for e in tr.data.sources["human"]:
        for mention, name in e.memory:
            assert name not in kb[first[mention]].names  # replaced by another concept's name
            assert kb.lookup(name)
            n += 1
    assert n == rep["replaced"]


def test_memory_off_leaves_prompts_unchanged(tmp_path, tokenizer, kb, docs):
    off = _trainer(tmp_path / "off", tokenizer, kb, docs)
    assert type(off.encoder) is PromptEncoder
    assert all(type(e) is TrainingExample for e in off.data.sources["human"])
    assert "memory" not in off.data.report["human"]
    fmt = PromptFormat(style="syncabel", context_chars=0, include_group=False)
    plain = PromptEncoder(tokenizer, fmt, "causal", max_source_length=96)
    for ex, enc in zip(off.data.sources["human"], off.encoded):
        n = sum(1 for x in enc.labels if x == IGNORE)
        assert enc.input_ids[:n] == plain.encode(ex.query).input_ids
    assert all("---" not in _prompt(off, i) for i in range(len(off.encoded)))
    # memory on, but no example carries one: the document encoder gives the very same ids
    none = _trainer(tmp_path / "none", tokenizer, kb, docs, memory=True, memory_fraction=0.0)
    assert [e.input_ids for e in none.encoded] == [e.input_ids for e in off.encoded]
    assert none.data.report["human"]["memory"]["with_memory"] == 0


def test_dedupe_keeps_examples_whose_memory_differs(kb):
    d = doc("9", "DM and DM and DM.", [("DM", "D003920", "Disease")] * 3)
    fmt = PromptFormat(style="syncabel", context_chars=0, include_group=False)
    off = build_training_data(TrainConfig(target="preferred"), kb, fmt, {"human": [d]})
    assert len(off.sources["human"]) == 1 and off.report["human"]["duplicates_removed"] == 2
    on = build_training_data(
        TrainConfig(target="preferred", memory=True, memory_corruption=0.0, memory_fraction=1.0),
        kb, fmt, {"human": [d]},
    )
    # memories [], [DM], [DM, DM]: the last two render the same block (one distinct mention)
    assert [e.memory for e in on.sources["human"]] == [[], [("DM", "Diabetes Mellitus")]]
    assert on.report["human"]["duplicates_removed"] == 1
    assert on.report["human"]["memory"]["entries"] == 3


def test_dev_examples_carry_memory_too(tmp_path, kb, docs):
    fmt = PromptFormat(style="syncabel", context_chars=0, include_group=False)
    cfg = TrainConfig(target="preferred", memory=True, memory_corruption=0.0, memory_fraction=1.0)
    data = build_training_data(cfg, kb, fmt, {"human": docs, "dev": docs[:1]})
    assert [e.memory for e in data.dev] == [[], [("breast cancers", "Breast Neoplasms")]]
    assert data.report["dev"]["memory"]["with_memory"] == 2


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("style", ["block", "lines"])
def test_memory_run_saves_a_document_linker_with_the_training_prompts(tmp_path, tokenizer, kb, docs, style):
    tr = _trainer(tmp_path, tokenizer, kb, docs, memory=True, memory_corruption=0.0, memory_fraction=1.0,
                  memory_style=style)
    final = tr.train()
    assert final == tmp_path / "run" / "final"
    meta = json.loads((final / "genbel_linker.json").read_text())
    assert meta["memory_training"] == {
        "memory_size": 10, "memory_style": style, "memory_corruption": 0.0, "memory_fraction": 1.0,
        "context_chars": 0, "max_prompt_tokens": 96,
    }
    assert meta["max_source_length"] == 96 and meta["prompt_format"]["memory_size"] == 10
    assert meta["prompt_format"]["memory_style"] == style
    training = json.loads((final / "training.json").read_text())
    assert training["config"]["memory"] is True and training["data"]["human"]["memory"]["entries"] == 7
    assert json.loads((tmp_path / "run" / "data_report.json").read_text())["human"]["memory"]["examples"] == 8

    linker = create_linker(f"document:{final}", kb, num_beams=2)
    assert isinstance(linker, DocumentLinker) and linker.use_memory
    assert linker.generator.memory_training == meta["memory_training"]
    # trained with context_chars=0: used with the same window and budget, not the whole document
    assert linker.format.context_chars == 0 and linker.max_prompt_tokens == 96
    assert linker.format.memory_style == style
    # the prompts the linker builds are the training prompts (same memory → same ids)
    for ex, enc in zip(tr.data.sources["human"], tr.encoded):
        n = sum(1 for x in enc.labels if x == IGNORE)
        assert linker.encoder.encode(with_memory(ex.query, ex.memory)).input_ids == enc.input_ids[:n]
    linked = linker.link_documents(docs[:2], k=2)
    assert [q.text for q, _ in linked] == [
        "breast cancers", "ovarian cancer", "breast and ovarian cancer", "diabetes mellitus", "DM", "DM"
    ]
    assert all(1 <= len(c) <= 2 and all(x.concept_id in kb for x in c) for _, c in linked)
    # the second mention of document 2 remembers the prediction for the first one
    assert [m for m, _ in linked[3][0].memory] == ["breast and ovarian cancer"]
    # an explicit option still wins; a re-saved linker keeps the record
    assert create_linker(f"document:{final}", kb, context_chars="doc").format.context_chars is None
    resaved = GenerativeLinker.load(final, kb, quantize="none").save(tmp_path / "resaved")  # full weights
    assert GenerativeLinker.load(resaved, kb).memory_training == meta["memory_training"]


def test_a_run_without_memory_keeps_the_whole_document_default(tmp_path, tokenizer, kb, docs):
    final = _trainer(tmp_path, tokenizer, kb, docs, max_steps=1).train()
    meta = json.loads((final / "genbel_linker.json").read_text())
    assert "memory_training" not in meta and meta["max_source_length"] == 512
    linker = create_linker(f"document:{final}", kb)
    assert linker.generator.memory_training is None
    assert linker.format.context_chars is None and linker.max_prompt_tokens == 512


# ---------------------------------------------------------------------------------------------- config
def test_config_roundtrip_defaults_and_validation(tmp_path):
    cfg = TrainConfig(memory=True, memory_corruption=0.25, memory_fraction=0.75, memory_size=3)
    for name in ("c.json", "c.yaml"):
        cfg.write(tmp_path / name)
        assert TrainConfig.read(tmp_path / name) == cfg
    # a config.json written before these settings existed loads with the defaults
    old = {k: v for k, v in TrainConfig().model_dump().items() if not k.startswith("memory")}
    (tmp_path / "old.json").write_text(json.dumps(old))
    got = TrainConfig.read(tmp_path / "old.json")
    assert (got.memory, got.memory_corruption, got.memory_fraction, got.memory_size) == (False, 0.1, 0.5, 10)
    assert got.differences(TrainConfig()) == []
    assert cfg.differences(TrainConfig()) == ["memory", "memory_corruption", "memory_fraction", "memory_size"]
    assert got.memory_style == "block"
    for field, value in (("memory_corruption", 1.5), ("memory_fraction", -0.1), ("memory_size", 0),
                         ("memory_style", "stack")):
        with raises_code("E357", ConfigError, match=rf"invalid training setting {field} \(x.json\)"):
            TrainConfig.parse({field: value}, where="x.json")


# ---------------------------------------------------------------------------------------------- CLI
def _kb_file(tmp_path, kb):
    p = tmp_path / "kb.jsonl"
    p.write_text("\n".join(json.dumps(c.to_dict()) for c in kb) + "\n")
    return p


def test_cli_memory_options_reach_the_run(tmp_path, kb, docs, llama_dir):
    corpus = tmp_path / "train.jsonl"
    write_corpus(docs, corpus)
    out = tmp_path / "run"
    r = runner.invoke(app, [
        "train", "-t", str(corpus), "--kb", str(_kb_file(tmp_path, kb)), "--base-model", str(llama_dir),
        "--max-steps", "1", "--batch-size", "4", "--context-chars", "0", "--out", str(out),
        "--memory", "--memory-corruption", "0.25", "--memory-fraction", "1", "--memory-size", "3",
        "--memory-style", "lines",
    ])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["memory"], cfg["memory_corruption"], cfg["memory_fraction"], cfg["memory_size"]) == (
        True, 0.25, 1.0, 3
    )
    assert json.loads((out / "data_report.json").read_text())["human"]["memory"]["with_memory"] > 0
    meta = json.loads((out / "final" / "genbel_linker.json").read_text())
    assert meta["memory_training"]["memory_corruption"] == 0.25 and meta["prompt_format"]["memory_size"] == 3
    assert cfg["memory_style"] == "lines" and meta["prompt_format"]["memory_style"] == "lines"


def test_cli_memory_flags_override_the_config_file(tmp_path, monkeypatch):
    import genbel.training.trainer as trainer_mod

    seen: list[TrainConfig] = []

    class FakeTrainer:
        def __init__(self, cfg: TrainConfig) -> None:
            seen.append(cfg)

        def train(self, resume: bool = False):
            return tmp_path / "final"

    monkeypatch.setattr(trainer_mod, "Trainer", FakeTrainer)
    TrainConfig(memory=True, memory_corruption=0.3, memory_size=4).write(tmp_path / "c.json")
    r = runner.invoke(app, ["train", "--config", str(tmp_path / "c.json"), "--no-memory"])
    assert r.exit_code == 0, r.output
    assert (seen[-1].memory, seen[-1].memory_corruption, seen[-1].memory_size) == (False, 0.3, 4)
    r = runner.invoke(app, ["train", "--config", str(tmp_path / "c.json"), "--memory-fraction", "0.9"])
    assert r.exit_code == 0, r.output
    assert (seen[-1].memory, seen[-1].memory_fraction) == (True, 0.9)
    r = runner.invoke(app, ["train", "--memory", "--memory-corruption", "2"])
    assert r.exit_code != 0 and len(seen) == 2
    assert isinstance(r.exception, ConfigError) and "memory_corruption (genbel train)" in str(r.exception)
