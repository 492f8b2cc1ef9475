"""The ``genbel`` command line: a thin layer over the Python API.

Each area registers its commands in its own module (``genbel.cli.<area>``) through a
``register(app)`` function; this module wires them and turns :class:`~genbel.errors.GenbelError`
into a one-line message and exit code 2.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from genbel.deps import extra_of, missing_dependency
from genbel.errors import GenbelError

app = typer.Typer(
    name="genbel",
    help="Biomedical entity linking: generative (trie-constrained), retrieval and document-level linkers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from genbel._version import __version__

        typer.echo(f"genbel {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print genbel's version and exit."
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )


def _register_all() -> None:
    # one line per area; each module defines register(app)
    from genbel.cli import kb as kb_cli

    kb_cli.register(app)
    from genbel.cli import evaluate as evaluate_cli

    evaluate_cli.register(app)
    from genbel.cli import demo as demo_cli

    demo_cli.register(app)
    from genbel.cli import link as link_cli; link_cli.register(app)  # noqa: E702
    from genbel.cli import retrieval as retrieval_cli; retrieval_cli.register(app)  # noqa: E702
    from genbel.cli import train as train_cli; train_cli.register(app)  # noqa: E702
    from genbel.cli import annotate as annotate_cli; annotate_cli.register(app)  # noqa: E702
    from genbel.cli import ner as ner_cli; ner_cli.register(app)  # noqa: E702
    from genbel.cli import serve as serve_cli; serve_cli.register(app)  # noqa: E702


_register_all()


def _error(e: GenbelError) -> None:
    # escaped: messages quote user text and extras such as genbel[models], not rich markup
    err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    sys.exit(2)


def main() -> None:
    try:
        rv = app(prog_name="genbel", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except GenbelError as e:
        _error(e)
    except ModuleNotFoundError as e:
        # an optional package (torch, transformers, …) imported by a module without its own guard:
        # the same E450 as genbel.deps.require, naming the extra to install
        extra = extra_of(e.name)
        if extra is None:
            raise
        _error(missing_dependency([e.name or "?"], extra, "this command", str(e)))
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # usage errors arrive here in non-standalone mode
        usage_errors, aborts = _click_exceptions()
        if isinstance(e, usage_errors):
            # typer's one-line usage message ("Usage: … / Error: No such command 'lnk'. Did you mean
            # 'link'?"), exit code 2 for usage errors
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, aborts):
            sys.exit(1)
        raise


def _click_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """``(ClickException classes, Abort classes)`` of the click typer parses with: typer >= 0.20
    vendors its own click (``typer._click``), older typers use ``click``; both are checked."""
    import importlib

    errors: list[type[BaseException]] = []
    aborts: list[type[BaseException]] = []
    for name in ("typer._click.exceptions", "typer.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "ClickException"):
            errors.append(mod.ClickException)
        if hasattr(mod, "Abort"):
            aborts.append(mod.Abort)
    return tuple(errors), tuple(aborts)


if __name__ == "__main__":
    main()
