"""What each process of the two-process tests runs (``torch.multiprocessing.spawn`` imports it).

:func:`spawn` starts ``world`` processes on a free local port with the environment torchrun sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), so the trainers find
it exactly as under ``torchrun``; each process runs jobs of :data:`JOBS` and writes what the test
compares into ``out/<job name>/rank<r>.json``. The writes of checkpoints and final models are counted per rank
by wrapping the real writers (they still write).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(jobs: dict[str, tuple[str, dict]], out: Path, world: int = 2) -> dict[str, list[dict]]:
    """Run each ``name: (job, kwargs)`` of ``jobs`` as ``JOBS[job](rank, out / name, **kwargs)`` in
    ``world`` processes, one job after the other in the same processes (they start once: most of a
    two-process test's time is two interpreters importing torch and transformers); per job, the
    results of every rank."""
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_entry, args=(world, free_port(), jobs, str(out)), nprocs=world, join=True)
    return {name: [json.loads((out / name / f"rank{r}.json").read_text()) for r in range(world)]
            for name in jobs}


def _entry(rank: int, world: int, port: int, jobs: dict[str, tuple[str, dict]], out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    writes = _count_writes()
    for name, (job, kwargs) in jobs.items():
        where = Path(out, name)
        where.mkdir(parents=True, exist_ok=True)
        writes.update(checkpoints=0, final=0)
        t0 = time.perf_counter()
        result = JOBS[job](rank, where, **kwargs)
        result["writes"], result["seconds"] = dict(writes), round(time.perf_counter() - t0, 1)
        (where / f"rank{rank}.json").write_text(json.dumps(result))
    from genbel.training.distributed import teardown

    teardown()


def _count_writes() -> dict[str, int]:
    """Count this process's checkpoint and final-model writes (the real functions still run)."""
    from genbel.training import retriever, run, save

    counts = {"checkpoints": 0, "final": 0}

    def counted(owner, name: str, key: str) -> None:
        real = getattr(owner, name)

        def wrapper(*a, **kw):
            counts[key] += 1
            return real(*a, **kw)

        setattr(owner, name, wrapper)

    counted(run.RunDirectory, "write_checkpoint", "checkpoints")
    counted(save, "save_linker", "final")
    counted(retriever, "_write_result", "final")
    return counts


def _errors(fn) -> str | None:
    from genbel.errors import GenbelError

    try:
        fn()
    except GenbelError as e:
        return str(e)
    return None


# ---------------------------------------------------------------- generative trainer
def generative_docs() -> list:
    """Four documents, nine linkable mentions (batches of 4 mix them; the last batch of an epoch
    wraps around)."""
    from tests.training.conftest import doc

    return [
        doc("1", "Women with breast cancers and ovarian cancer were studied.",
            [("breast cancers", "D001943", "Disease"), ("ovarian cancer", "D010051", "Disease")]),
        doc("2", "Risk of breast and ovarian cancer in diabetes mellitus (DM) patients.",
            [("breast and ovarian cancer", "D001943|D010051", "CompositeMention"),
             ("diabetes mellitus", "D003920", "Disease"), ("DM", "D003920", "Disease")]),
        doc("3", "A case of hemochromatosis with heart disease.",
            [("hemochromatosis", "D006432", "Disease"), ("heart disease", "D002318", "Disease")]),
        doc("4", "Mammary carcinoma and an ovary tumor.",
            [("Mammary carcinoma", "D001943", "Disease"), ("ovary tumor", "D010051", "Disease")]),
    ]


def generative(rank: int, out: Path, cfg: dict) -> dict:
    from genbel.training.config import TrainConfig
    from genbel.training.trainer import Trainer
    from tests.training.conftest import make_kb

    def trainer(**kw) -> Trainer:
        return Trainer(TrainConfig(**{**cfg, **kw}), kb=make_kb(), documents={"human": generative_docs()})

    full = trainer(out=str(out / "full"))
    full.train()
    trainer(out=str(out / "cut")).train(save_final=False, stop_after=2)
    trainer(out=str(out / "cut")).train(resume=True)
    # every rank must be started with the same settings
    mismatch = _errors(lambda: trainer(out=str(out / "bad"), seed=rank))
    return {"weights": {k: v.tolist() for k, v in full.trainable_state().items()}, "mismatch": mismatch}


# ---------------------------------------------------------------- retriever trainers
def retriever(rank: int, out: Path, encoder: str, method: str, cfg: dict) -> dict:
    from genbel.training import retriever as td
    from genbel.training.retriever import BiosynConfig, SapbertConfig, train_biosyn, train_sapbert
    from tests.training.retriever_fixtures import make_docs, make_kb

    def train(where: str, resume: bool = False):
        if method == "sapbert":
            return train_sapbert(make_kb(), encoder, out / where, documents=make_docs(),
                                 config=SapbertConfig(**cfg), progress=False, resume=resume)
        return train_biosyn(make_kb(), make_docs(), encoder, out / where, config=BiosynConfig(**cfg),
                            progress=False, resume=resume)

    result: dict = {}
    if method == "sapbert":
        result["gradient"] = _gathered_gradient(encoder, cfg)
    train("full")
    # an interruption right after the first epoch's checkpoint, then a resumed run
    real = td._save_epoch

    def crash(*args):
        real(*args)
        raise KeyboardInterrupt

    td._save_epoch = crash
    try:
        train("cut")
    except KeyboardInterrupt:
        pass
    td._save_epoch = real
    train("cut", resume=True)
    result["mismatch"] = _errors(lambda: train_sapbert(
        make_kb(), encoder, out / "bad", config=SapbertConfig(**{**cfg, "lr": cfg.get("lr", 1e-3) * (rank + 1)}),
        progress=False,
    )) if method == "sapbert" else None
    return result


def _gathered_gradient(encoder: str, cfg: dict) -> dict:
    """The loss and gradient of one batch of 6 pairs split over the ranks (all-gathered embeddings
    with gradient, the encoder in DistributedDataParallel) next to the same batch in this process
    alone: the largest differences."""
    from genbel.encoders import TextEncoder
    from genbel.training.distributed import setup
    from genbel.training.losses import infonce_loss, multi_similarity_loss
    from genbel.training.retriever import _pair_embeddings, _wrap_encoder

    dist = setup("cpu")
    batch = [("breast cancer", "breast tumor", 0), ("colon cancer", "colorectal cancer", 1),
             ("apc", "familial adenomatous polyposis", 2), ("migraine", "migraine disorders", 3),
             ("mammary cancer", "breast neoplasms", 0), ("fap", "apc", 2)]
    labels = torch.tensor([c for _, _, c in batch] * 2)

    def loss_of(emb: torch.Tensor) -> torch.Tensor:
        if cfg.get("loss") == "multi-similarity":
            return multi_similarity_loss(emb, labels)
        return infonce_loss(emb, labels, 0.05)

    shared = TextEncoder.load(encoder)
    model = _wrap_encoder(shared, dist)
    shared.model.train()
    loss = loss_of(_pair_embeddings(shared, model, batch, dist))
    loss.backward()
    alone = TextEncoder.load(encoder)
    alone.model.train()
    ref = loss_of(alone.embed([a for a, _, _ in batch] + [b for _, b, _ in batch]))
    ref.backward()
    grads = [(p.grad, q.grad) for p, q in zip(shared.model.parameters(), alone.model.parameters())
             if q.grad is not None]
    return {
        "loss": float(loss), "ref_loss": float(ref),
        "max_grad_diff": max(float((a - b).abs().max()) for a, b in grads),
        "max_grad": max(float(b.abs().max()) for _, b in grads),
    }


JOBS = {"generative": generative, "retriever": retriever}
