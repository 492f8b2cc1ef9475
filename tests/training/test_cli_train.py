from __future__ import annotations

import json

from typer.testing import CliRunner

from genbel.cli.main import app
from genbel.data import load_corpus, write_corpus
from genbel.errors import InputError

runner = CliRunner()


def _kb_file(tmp_path, kb):
    p = tmp_path / "kb.jsonl"
    p.write_text("\n".join(json.dumps(c.to_dict()) for c in kb) + "\n")
    return p


def test_synth_cli_template(tmp_path, kb, docs):
    kbf = _kb_file(tmp_path, kb)
    corpus = tmp_path / "train.jsonl"
    write_corpus(docs, corpus)
    out = tmp_path / "synth.jsonl"
    r = runner.invoke(
        app,
        [
            "synth",
            "--kb",
            str(kbf),
            "--generator",
            "template",
            "--n",
            "3",
            "--out",
            str(out),
            "--train-corpus",
            str(corpus),
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["documents"] == 3 and summary["accepted"] == 3
    got = [d.entities[0].gold_ids[0] for d in load_corpus(out)]
    assert got[0] == "D002318"  # the only concept absent from the training corpus comes first
    assert len(set(got)) == 3


def test_train_cli_runs_and_writes_config(tmp_path, kb, docs, llama_dir):
    kbf = _kb_file(tmp_path, kb)
    corpus = tmp_path / "train.jsonl"
    write_corpus(docs, corpus)
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "train",
            "--train-corpus",
            str(corpus),
            "--kb",
            str(kbf),
            "--base-model",
            str(llama_dir),
            "--max-steps",
            "2",
            "--batch-size",
            "4",
            "--context-chars",
            "0",
            "--composite",
            "first",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "final" / "genbel_linker.json").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["max_steps"] == 2 and cfg["composite"] == "first" and cfg["train_corpora"] == [str(corpus)]
    report = json.loads((out / "data_report.json").read_text())
    assert report["human"]["missing_gold_ids"] == 1 and report["human"]["composite_mentions"] == 1


def test_train_cli_empty_training_set(tmp_path, kb, llama_dir):
    r = runner.invoke(
        app,
        [
            "train",
            "--kb",
            str(_kb_file(tmp_path, kb)),
            "--base-model",
            str(llama_dir),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert r.exit_code != 0
    assert isinstance(r.exception, InputError)
    assert "the training set is empty" in str(r.exception)
