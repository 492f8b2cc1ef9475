"""``--nproc N`` of the training commands: the same command in N processes under torchrun
(:func:`genbel.training.distributed.launch`)."""

from __future__ import annotations

import os

import typer

from genbel.errors import ConfigError, Errors

NPROC_OPTION = typer.Option(
    None, "--nproc", help="Train in N processes (torchrun, DistributedDataParallel; same global batch)."
)


def relaunch(nproc: int | None) -> None:
    """``--nproc N`` (N > 1, outside torchrun): run this command in N processes under torchrun and
    exit with their status; returns when the command should run in this process."""
    if nproc is None:
        return
    from genbel.training import distributed

    if nproc < 1:
        raise ConfigError(Errors.E594.format(value=nproc, reason="must be >= 1"))
    if distributed.under_torchrun():
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != nproc:
            raise ConfigError(Errors.E594.format(
                value=nproc, reason=f"this process already runs under torchrun with {world} processes"
            ))
        return
    if nproc == 1:
        return
    code = distributed.launch(nproc)
    raise typer.Exit(code)

