"""``genbel kb build|info|lookup`` through typer's CliRunner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from genbel.cli import kb as kb_cli
from genbel.errors import ConfigError
from genbel.kb.store import is_kb_dir, read_meta


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """genbel (test app with the kb commands only)."""

    kb_cli.register(app)
    return app


runner = CliRunner()


def test_build_info_lookup(app: typer.Typer, fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    r = runner.invoke(app, ["kb", "build", str(fixtures / "mini_medic.txt"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert is_kb_dir(out)
    meta = read_meta(out)
    assert meta["name"] == "MEDIC" and meta["counts"]["concepts"] == 8
    assert "medic" in r.output and "concepts" in r.output and meta["fingerprint"] in r.output
    assert "Disorders (8)" in r.output

    r = runner.invoke(app, ["kb", "info", str(out)])
    assert r.exit_code == 0, r.output
    assert meta["fingerprint"] in r.output and "Disorders (8)" in r.output
    assert f"{meta['counts']['names']}" in r.output

    r = runner.invoke(app, ["kb", "lookup", str(out), "breast-cancer"])
    assert r.exit_code == 0, r.output
    assert "OMIM:114480" in r.output and "Breast Neoplasms" in r.output and "D001943" in r.output

    r = runner.invoke(app, ["kb", "lookup", str(out), "hpp"])
    assert r.exit_code == 0, r.output
    assert "2 concept(s)" in r.output and "145250" in r.output and "266140" in r.output

    r = runner.invoke(app, ["kb", "lookup", str(out), "Unknown Disease!"])
    assert r.exit_code == 1, r.output
    assert "no concept found for 'Unknown Disease!' (normalised: 'unknown disease')" in r.output


def test_build_options(app: typer.Typer, fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "kb"
    r = runner.invoke(app, ["kb", "build", str(fixtures / "mini.obo"), "-o", str(out), "--kb-format", "obo",
                            "--dedupe", "--group", "DISO", "--name", "DO-mini"])
    assert r.exit_code == 0, r.output
    meta = read_meta(out)
    assert meta["name"] == "DO-mini"
    assert meta["semantic_groups"] == {"Disorders": 5}
    assert "dedupe removed" in r.output
    # lookup on a source file (not a built directory) works too
    r = runner.invoke(app, ["kb", "lookup", str(fixtures / "mini.obo"), "NIDDM"])
    assert r.exit_code == 0 and "DOID:9352" in r.output


def test_errors_are_genbel_errors(app: typer.Typer, fixtures: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["kb", "build", str(fixtures / "mini_medic.txt"), "-o", str(tmp_path / "x"),
                            "--kb-format", "mesh"])
    assert isinstance(r.exception, ConfigError)
    assert not (tmp_path / "x").exists()
    r = runner.invoke(app, ["kb", "info", str(tmp_path)])
    assert r.exit_code != 0 and r.exception is not None


def test_main_prints_one_line_and_exits_2(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from genbel.cli.main import main

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{}")
    monkeypatch.setattr(sys, "argv", ["genbel", "kb", "info", str(broken)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{broken}: not a genbel KB directory (missing kb.sqlite)" in err.replace("\n", "")
