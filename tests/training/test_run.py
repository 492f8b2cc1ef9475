"""The run framework shared by the trainers: settings check, checkpoints, pruning, resume, safe loading."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from genbel.errors import ConfigError
from genbel.training import run as run_mod
from genbel.training.retriever import SapbertConfig, train_sapbert
from genbel.training.run import RunDirectory, load_tensors, rng_state, seed_all, settings_differences
from tests.helpers import raises_code
from tests.linkers.retrieval_fixtures import make_tiny_encoder
from tests.training.retriever_fixtures import make_docs, make_kb


class Payload:
    """Unpickling this creates ``marker``: what a replaced checkpoint file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_checkpoints_are_numbered_atomic_and_restore_state_tensors_and_rng(tmp_path):
    run = RunDirectory(tmp_path / "run", unit="step", digits=7)
    run.start({"lr": 0.1}, resume=False)
    seed_all(3)
    _draws()
    opt_state = {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    path = run.write_checkpoint(12, {"step": 12, "epoch": 0}, {"optimizer": opt_state, "w": {"a": torch.arange(4)}})
    expected = _draws()
    assert path.name == "step-0000012" and run.checkpoints() == [path]
    assert sorted(p.name for p in path.iterdir()) == ["optimizer.pt", "rng.json", "state.json", "w.pt"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left

    _draws()  # move the generators on, as a new process would start elsewhere
    ckpt = run.last_checkpoint()
    assert (ckpt.number, ckpt.state) == (12, {"step": 12, "epoch": 0})
    assert torch.equal(ckpt.tensors("w")["a"], torch.arange(4))
    assert torch.equal(ckpt.tensors("optimizer")["state"][0]["exp_avg"], torch.ones(3))
    ckpt.restore_rng()
    assert _draws() == expected  # Python, NumPy and torch continue as in an uninterrupted run
    json.dumps(rng_state())  # the random states are plain JSON
    (path / "rng.json").unlink()  # e.g. a checkpoint of an older genbel (RNG states in a pickle)
    with raises_code("E351", ConfigError, match=r"^\[E351\] .*rng\.json is missing"):
        run.last_checkpoint().restore_rng()


def test_a_failed_checkpoint_write_leaves_nothing(tmp_path):
    run = RunDirectory(tmp_path / "run", unit="epoch")

    def boom(d):
        (d / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        run.write_checkpoint(1, {"step": 1}, write=boom)
    assert run.checkpoints() == [] and list(run.checkpoint_dir.iterdir()) == []


def test_prune_keeps_the_newest_and_the_protected(tmp_path):
    run = RunDirectory(tmp_path, unit="step", digits=7)
    for step in (2, 4, 6, 8, 10):
        run.write_checkpoint(step, {"step": step})
    (run.checkpoint_dir / "step-0000012").mkdir()  # no state.json: not a checkpoint, never listed
    run.prune(2, protect=["step-0000004", None])
    assert [p.name for p in run.checkpoints()] == ["step-0000004", "step-0000008", "step-0000010"]
    run.prune(0)
    assert run.checkpoints() == []


def test_settings_must_match_to_resume(tmp_path):
    assert settings_differences({"lr": 1, "epochs": 2, "x": 0}, {"lr": 2, "epochs": 3, "y": 0}, free={"epochs"}) \
        == ["lr", "x", "y"]
    run = RunDirectory(tmp_path / "run", unit="step")
    with raises_code("E350", ConfigError, match=r"^\[E350\] .*no checkpoint to resume from"):
        run.start({"lr": 1}, resume=True)
    run.start({"lr": 1, "log_every": 5}, resume=False)
    assert json.loads((run.path / "config.json").read_text()) == {"lr": 1, "log_every": 5}
    run.write_checkpoint(1, {"step": 1})
    with raises_code("E352", ConfigError, match=r"^\[E352\] .*pass --resume"):
        run.start({"lr": 1, "log_every": 5}, resume=False)
    with raises_code("E352", ConfigError, match=r"^\[E352\] .*different settings \(lr\)"):
        run.start({"lr": 2, "log_every": 5}, resume=True, free={"log_every"})
    run.start({"lr": 1, "log_every": 9}, resume=True, free={"log_every"})  # a free setting may change
    assert json.loads((run.path / "config.json").read_text())["log_every"] == 9
    # a restartable run (retriever training) starts over instead of refusing
    run.log(step=1, loss=0.5)
    run.start({"lr": 3}, resume=False, restart=True)
    assert run.checkpoints() == [] and not (run.path / "log.jsonl").exists()
    run.start({"lr": 3}, resume=True, restart=True, resume_needs_checkpoint=False)  # nothing to resume: fresh


def test_a_checkpoint_file_with_a_pickle_payload_is_refused_and_does_not_run(tmp_path):
    live = tmp_path / "live.pt"
    torch.save({"state": Payload(tmp_path / "ran-unsafely")}, live)
    torch.load(live, weights_only=False)  # the payload is real: an unsafe load runs it
    assert (tmp_path / "ran-unsafely").exists()

    marker = tmp_path / "pwned"
    bad = tmp_path / "optimizer.pt"
    torch.save({"state": Payload(marker)}, bad)
    with raises_code("E370", ConfigError, match=r"^\[E370\] .*optimizer\.pt: refusing to load"):
        load_tensors(bad)
    assert not marker.exists()


def test_resume_refuses_a_replaced_checkpoint_file(tmp_path):
    """``train-retriever --resume`` on a checkpoint whose optimizer file was replaced: E370, no code runs."""
    enc = make_tiny_encoder(tmp_path / "enc")
    kb, docs = make_kb(), make_docs()
    cfg = SapbertConfig(epochs=1, batch_size=4, lr=1e-3, warmup_steps=1)
    out = train_sapbert(kb, str(enc), tmp_path / "run", documents=docs, config=cfg, progress=False)
    ckpt = out / "checkpoints" / "epoch-1"
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "encoder", "optimizer.pt", "rng.json", "scheduler.pt", "state.json"]
    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": [], "x": Payload(marker)}, ckpt / "optimizer.pt")
    more = SapbertConfig(epochs=2, batch_size=4, lr=1e-3, warmup_steps=1)  # epochs may grow on resume
    with raises_code("E370", ConfigError, match=r"^\[E370\]"):
        train_sapbert(kb, str(enc), tmp_path / "run", documents=docs, config=more, resume=True, progress=False)
    assert not marker.exists()


def test_the_trainers_use_this_framework():
    from genbel.training import retriever, trainer

    assert trainer.RunDirectory is run_mod.RunDirectory and retriever.RunDirectory is run_mod.RunDirectory


def test_generative_resume_refuses_a_replaced_checkpoint_file(tmp_path, llama_dir, kb, docs, monkeypatch):
    """``genbel train --resume`` reads its checkpoint files the same safe way (formerly ``rng.pt``)."""
    from genbel.training.config import TrainConfig
    from genbel.training.trainer import Trainer

    cfg = TrainConfig(base_model=str(llama_dir), out=str(tmp_path / "run"), batch_size=4, max_steps=4,
                      save_every=2, lora_r=4, lora_alpha=8, mix={"human": 1.0})
    written = []
    real = RunDirectory.write_checkpoint

    def counting(self, number, *args, **kw):
        written.append(number)
        return real(self, number, *args, **kw)

    monkeypatch.setattr(RunDirectory, "write_checkpoint", counting)
    Trainer(cfg, kb=kb, documents={"human": docs}).train(save_final=False, stop_after=2)
    assert written == [2]  # a scheduled save at the interruption step is written once
    (ckpt,) = (tmp_path / "run" / "checkpoints").iterdir()
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "optimizer.pt", "rng.json", "scheduler.pt", "state.json", "trainable.pt"]
    marker = tmp_path / "pwned"
    torch.save({"x": Payload(marker)}, ckpt / "scheduler.pt")
    with raises_code("E370", ConfigError, match=r"^\[E370\] .*scheduler\.pt"):
        Trainer(cfg, kb=kb, documents={"human": docs}).train(save_final=False, resume=True)
    assert not marker.exists()
