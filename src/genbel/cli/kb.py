"""``genbel kb``: build, inspect and query knowledge bases."""

from __future__ import annotations

import typer

kb_app = typer.Typer(help="Build, inspect and query knowledge bases.", no_args_is_help=True)


@kb_app.command("build")
def build(source: str, fmt: str = typer.Option(None, "--format", "-f"), out: str = typer.Option(..., "--out", "-o"),
          dedupe: bool = typer.Option(False, "--dedupe"), group: str = typer.Option(None, "--group"),
          name: str = typer.Option(None, "--name")) -> None:
    """Build a KB directory from SOURCE."""
    from genbel.kb.loaders import load_kb
    from genbel.kb.store import save_kb

    kb = load_kb(source, fmt, name=name, group=group, dedupe=dedupe)
    save_kb(kb, out)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
