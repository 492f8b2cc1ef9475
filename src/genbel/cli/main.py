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

from genbel.errors import GenbelError

app = typer.Typer(
    name="genbel",
    help="Biomedical entity linking: generative (trie-constrained), retrieval and document-level linkers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details.")) -> None:
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


_register_all()


def main() -> None:
    try:
        rv = app(standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except GenbelError as e:
        # escaped: messages quote user text and extras such as genbel[models], not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
