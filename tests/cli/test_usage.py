"""Usage errors of the real ``genbel`` entry point: typer's short usage message, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from genbel._version import __version__


def run_main(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run :func:`genbel.cli.main.main` with ``argv``; ``(exit code, stdout, stderr)``."""
    from genbel.cli.main import main

    monkeypatch.setattr(sys, "argv", ["genbel", *argv])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else int(e.code)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["lnk"], "Did you mean 'link'?"),
        (["link"], "Missing argument 'INPUT'"),
        (["evaluate", "c.txt", "--kb", "default", "-k", "abc"], "Invalid value for '-k'"),
        (["evaluate", "c.txt", "--kb", "default", "-k", "0"], "Invalid value for '-k'"),
        (["link", "in.txt", "--linker", "exact", "-o", "o.json", "-k", "0"], "Invalid value for '-k'"),
        (["kb", "build"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2_without_traceback(argv, message, monkeypatch, capsys):
    code, _, err = run_main(argv, monkeypatch, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and "Usage: genbel" in err
    assert len(err.strip().splitlines()) <= 6


def test_version(monkeypatch, capsys):
    code, out, _ = run_main(["--version"], monkeypatch, capsys)
    assert code == 0 and out.strip() == f"genbel {__version__}"


def test_usage_error_in_a_subprocess():
    r = subprocess.run(
        [sys.executable, "-c", "from genbel.cli.main import main; main()", "lnk"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Did you mean 'link'?" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_optional_package_is_e450_naming_the_extra(monkeypatch, capsys) -> None:
    from genbel.cli import main as cli_main

    def app(**_: object) -> None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli_main, "app", app)
    with pytest.raises(SystemExit) as e:
        cli_main.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "[E450]" in err and "genbel[models]" in err


def test_an_unrelated_missing_module_is_not_hidden(monkeypatch) -> None:
    from genbel.cli import main as cli_main

    def app(**_: object) -> None:
        raise ModuleNotFoundError("No module named 'nothing_like_this'", name="nothing_like_this")

    monkeypatch.setattr(cli_main, "app", app)
    with pytest.raises(ModuleNotFoundError):
        cli_main.main()
