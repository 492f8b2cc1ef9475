"""The --engine option of genbel annotate and genbel link: ray options need --engine ray, unknown engines
are refused (no Ray needed: the checks come before any work)."""

from __future__ import annotations

import pytest

from tests.cli.test_usage import run_main


@pytest.mark.parametrize("command", ["annotate", "link"])
@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--workers", "2"], "E583", "--workers applies only with --engine ray"),
        (["--batch-docs", "8"], "E583", "--batch-docs applies only with --engine ray"),
        (["--engine", "spark"], "E022", "invalid value 'spark' for --engine"),
    ],
)
def test_engine_options_are_checked_first(tmp_path, monkeypatch, capsys, command, extra, code, message):
    src = tmp_path / "in.txt"
    src.write_text("Breast cancer.\n", encoding="utf-8")
    argv = [command, str(src), "-o", str(tmp_path / "out.jsonl"), "--kb", "default", "--linker", "exact", *extra]
    rc, _, err = run_main(argv, monkeypatch, capsys)
    assert rc == 2 and f"[{code}]" in err and message in " ".join(err.split())
    assert not (tmp_path / "out.jsonl").exists()


def test_explain_is_refused_with_the_ray_engine(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.pubtator"
    src.write_text("1|t|Breast cancer.\n1\t0\t13\tBreast cancer\tDisease\tD001943\n\n", encoding="utf-8")
    argv = ["link", str(src), "-o", str(tmp_path / "out"), "--engine", "ray", "--document-level",
            "--explain", "1"]
    rc, _, err = run_main(argv, monkeypatch, capsys)
    assert rc == 2 and "[E587]" in err and "--explain" in err
    assert not (tmp_path / "out").exists()
