"""Two training processes (gloo on the CPU, started as torchrun starts them) train like one process
with the same global batch: per-step losses, final weights, one writer, resume.

Tolerance: the two runs compute the same float32 sums in another order and pad each half of a
batch to its own longest text, so losses must agree to ``rtol=1e-4`` (``atol=1e-6``) and weights to
``atol=1e-5``; a real difference in batching or gradient scaling is orders of magnitude larger
(a loss over half the batch differs by ~10 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genbel.errors import ConfigError
from genbel.training.distributed import DistContext, setup, strip_option
from tests.helpers import raises_code
from tests.training.ddp_workers import generative_docs, spawn

RTOL, ATOL, WEIGHT_ATOL = 1e-4, 1e-6, 1e-5


def _losses(run: Path, key: str = "loss") -> list[tuple[int, float]]:
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r[key]) for r in rows if key in r]


def _same_curve(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert [s for s, _ in a] == [s for s, _ in b]
    np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=RTOL, atol=ATOL)


def _one_writer(ranks: list[dict], finals: int) -> None:
    assert ranks[0]["writes"]["final"] == finals and ranks[0]["writes"]["checkpoints"] > 0
    assert ranks[1]["writes"] == {"checkpoints": 0, "final": 0}


def _checkpoint_of_two(ckpt: Path) -> None:
    """A checkpoint of the two-process run: written once, with each rank's random state."""
    assert (ckpt / "rng.json").is_file() and (ckpt / "rng-rank1.json").is_file()
    assert json.loads((ckpt / "state.json").read_text())["world_size"] == 2
    assert not [p for p in ckpt.parent.iterdir() if not p.name.startswith(("step-", "epoch-"))]


# ---------------------------------------------------------------- the pieces, in one process
def test_batch_split_and_its_errors():
    two = DistContext(rank=1, world_size=2)
    assert two.per_rank(8) == 4
    with raises_code("E590", ConfigError, match="cannot be split over 2 processes"):
        two.per_rank(5)
    assert [DistContext(rank=r, world_size=3).shard_bounds(7) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert list(two.shard(list("abcde"))) == ["d", "e"]
    assert strip_option(["train", "--nproc", "2", "-o", "x", "--nproc=3"], "--nproc") == ["train", "-o", "x"]


def test_outside_torchrun_one_process_does_nothing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = setup()
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    m = torch.nn.Linear(2, 2)
    assert ctx.wrap(m) is m and ctx.on_main(lambda: 7) == 7 and ctx.all_sum(2.5) == 2.5
    ctx.check_same("settings", {"a": 1})


def test_bad_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with raises_code("E593", ConfigError, match="RANK=3"):
        setup()
    monkeypatch.setenv("RANK", "x")
    with raises_code("E593", ConfigError, match="not a whole number"):
        setup()


def test_nproc_option_under_torchrun_must_match(monkeypatch):
    from genbel.cli.nproc import relaunch

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    relaunch(2)  # already one of the 2 processes: run here
    with raises_code("E594", ConfigError, match="already runs under torchrun with 2"):
        relaunch(3)
    with raises_code("E594", ConfigError, match="must be >= 1"):
        relaunch(0)


def test_an_error_on_rank_0_is_raised_with_its_class_on_the_others():
    from genbel.errors import KBError
    from genbel.training.distributed import _rebuild

    e = _rebuild("ConfigError", "[E352] run: different settings")
    assert type(e) is ConfigError and str(e) == "[E352] run: different settings"
    assert type(_rebuild("KBError", "[E101] x")) is KBError
    assert isinstance(_rebuild("OSError", "disk full"), RuntimeError)


def test_checkpoint_keeps_every_ranks_random_state(tmp_path, caplog):
    from genbel.training.run import RunDirectory, rng_state

    run = RunDirectory(tmp_path, unit="step")
    torch.manual_seed(1)
    first = rng_state()
    torch.manual_seed(2)
    second = rng_state()
    path = run.write_checkpoint(3, {"step": 3, "world_size": 2}, rng_states=[first, second])
    assert sorted(p.name for p in path.iterdir()) == ["rng-rank1.json", "rng.json", "state.json"]
    ckpt = run.read_checkpoint(path)
    ckpt.restore_rng(rank=1, world_size=2)
    assert torch.equal(torch.get_rng_state(), torch.tensor(second["torch"], dtype=torch.uint8))
    ckpt.restore_rng(rank=0, world_size=2)
    assert torch.equal(torch.get_rng_state(), torch.tensor(first["torch"], dtype=torch.uint8))
    with caplog.at_level("WARNING"):  # a third process: no state of its own, rank 0's is used
        ckpt.restore_rng(rank=2, world_size=3)
    assert "[E595]" in caplog.text
    assert torch.equal(torch.get_rng_state(), torch.tensor(first["torch"], dtype=torch.uint8))


# ---------------------------------------------------------------- the two-process runs, started once
GENERATIVE = {
    "batch_size": 4, "lr": 1e-2, "warmup_ratio": 0.0, "max_steps": 4, "save_every": 2, "log_every": 1,
    "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "seed": 0, "context_chars": 0, "include_group": True,
    "keep_checkpoints": 5,
}
# 17 SapBERT pairs in batches of 4: the last batch of an epoch has one pair, so one rank has none
RETRIEVER = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "log_every": 1}
RETRIEVERS = {
    "sapbert-infonce": ("sapbert", {"loss": "infonce", "warmup_steps": 1}),
    "sapbert-multi-similarity": ("sapbert", {"loss": "multi-similarity", "warmup_steps": 1}),
    "biosyn": ("biosyn", {"topk": 4}),
}


@pytest.fixture(scope="module")
def still_encoder(tmp_path_factory) -> Path:
    """The tiny BERT encoder without dropout (dropout masks cannot match across process counts)."""
    from transformers import BertConfig

    from tests.linkers.retrieval_fixtures import make_tiny_encoder

    d = make_tiny_encoder(tmp_path_factory.mktemp("still-encoder"))
    cfg = BertConfig.from_pretrained(d)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    cfg.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def two(tmp_path_factory, llama_dir, still_encoder) -> tuple[Path, dict[str, list[dict]]]:
    """Every two-process run of this module, in one pair of processes: ``(folder, results per job)``."""
    out = tmp_path_factory.mktemp("two-processes")
    jobs: dict[str, tuple[str, dict]] = {
        f"generative-accum{n}": ("generative", {"cfg": {**GENERATIVE, "base_model": str(llama_dir), "grad_accum": n}})
        for n in (1, 2)
    }
    for name, (method, cfg) in RETRIEVERS.items():
        jobs[name] = ("retriever", {"encoder": str(still_encoder), "method": method, "cfg": {**RETRIEVER, **cfg}})
    return out, spawn(jobs, out)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_generative_two_processes_train_like_one(tmp_path, llama_dir, two, grad_accum):
    from genbel.training.config import TrainConfig
    from genbel.training.trainer import Trainer
    from tests.training.conftest import make_kb

    cfg = {**GENERATIVE, "base_model": str(llama_dir), "grad_accum": grad_accum}
    one = Trainer(TrainConfig(**cfg, out=str(tmp_path / "one")), kb=make_kb(),
                  documents={"human": generative_docs()})
    one.train()
    folder, results = two
    two = folder / f"generative-accum{grad_accum}"
    ranks = results[f"generative-accum{grad_accum}"]
    _same_curve(_losses(two / "full"), _losses(tmp_path / "one"))
    ref = one.trainable_state()
    for r in ranks:  # every rank ends with the one-process weights
        for name, w in r["weights"].items():
            np.testing.assert_allclose(np.array(w), ref[name].numpy(), atol=WEIGHT_ATOL, rtol=0)
    # interrupted after step 2 and resumed: the same continuation as the uninterrupted run
    _same_curve(_losses(two / "cut"), _losses(two / "full"))
    assert (two / "cut" / "final" / "genbel_linker.json").is_file()
    _one_writer(ranks, finals=2)
    _checkpoint_of_two(two / "full" / "checkpoints" / "step-0000004")
    assert all(r["mismatch"].startswith("[E591]") and "seed: rank 0=0, rank 1=1" in r["mismatch"] for r in ranks)


# ---------------------------------------------------------------- retriever trainers, 2 processes
def _encoder_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "encoder" / "model.safetensors"))


@pytest.mark.parametrize("name", list(RETRIEVERS))
def test_retriever_two_processes_train_like_one(tmp_path, still_encoder, two, name):
    from genbel.training.retriever import BiosynConfig, SapbertConfig, train_biosyn, train_sapbert
    from tests.training.retriever_fixtures import make_docs, make_kb

    method, cfg = RETRIEVERS[name]
    cfg = {**RETRIEVER, **cfg}
    if method == "sapbert":
        train_sapbert(make_kb(), str(still_encoder), tmp_path / "one", documents=make_docs(),
                      config=SapbertConfig(**cfg), progress=False)
    else:
        train_biosyn(make_kb(), make_docs(), str(still_encoder), tmp_path / "one", config=BiosynConfig(**cfg),
                     progress=False)
    folder, results = two
    two, ranks = folder / name, results[name]
    _same_curve(_losses(two / "full"), _losses(tmp_path / "one"))
    _same_curve(_losses(two / "full", "epoch_loss"), _losses(tmp_path / "one", "epoch_loss"))
    a, b = _encoder_weights(two / "full"), _encoder_weights(tmp_path / "one")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=WEIGHT_ATOL, rtol=0)
    if method == "biosyn":
        lam = [json.loads((d / "retriever.json").read_text())["sparse_weight"] for d in (two / "full", tmp_path / "one")]
        assert lam[0] == pytest.approx(lam[1], abs=1e-6)
    else:
        for r in ranks:  # the all-gather passes the gradient back: one batch, loss and gradient compared
            g = r["gradient"]
            assert g["loss"] == pytest.approx(g["ref_loss"], rel=RTOL)
            assert g["max_grad_diff"] <= 1e-4 * g["max_grad"] and g["max_grad"] > 0
        assert all(r["mismatch"].startswith("[E591]") and "lr:" in r["mismatch"] for r in ranks)
    # interrupted after the first epoch's checkpoint and resumed: the uninterrupted run's curve
    _same_curve(_losses(two / "cut"), _losses(two / "full"))
    _one_writer(ranks, finals=2)
    _checkpoint_of_two(two / "full" / "checkpoints" / "epoch-2")


# ---------------------------------------------------------------- the command line, through torchrun
@pytest.mark.slow  # three interpreters (the command, torchrun's two workers) import torch: ~30-60 s
def test_train_retriever_nproc_2_runs_under_torchrun(tmp_path):
    import os
    import subprocess
    import sys

    from tests.cli.test_retrieval_cli import MEDIC, PUBTATOR
    from tests.linkers.retrieval_fixtures import make_tiny_encoder

    (tmp_path / "kb.txt").write_text(MEDIC)
    (tmp_path / "train.pubtator").write_text(PUBTATOR)
    make_tiny_encoder(tmp_path / "enc")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "genbel.cli.main", "train-retriever", "--method", "sapbert", "--kb",
             str(tmp_path / "kb.txt"), "--kb-format", "medic", "--train", str(tmp_path / "train.pubtator"),
             "--encoder", str(tmp_path / "enc"), "--out", str(tmp_path / "run"), "--epochs", "2", *args],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )

    done = cli("--batch-size", "4", "--nproc", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("trained sapbert retriever") == 1  # rank 0 reports, once
    run = tmp_path / "run"
    assert (run / "index" / "faiss.index").is_file() and (run / "encoder").is_dir()
    _checkpoint_of_two(run / "checkpoints" / "epoch-2")
    assert [r["epoch"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "epoch_loss" in r] == [1, 2]
    bad = cli("--batch-size", "3", "--nproc", "2")
    assert bad.returncode != 0 and "[E590]" in bad.stderr
