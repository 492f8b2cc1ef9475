"""genbel.io: output checks before the work (inputs never overwritten, writability) and OSError → E453."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from genbel.errors import ConfigError, InputError, OutputError
from genbel.io import atomic_open, check_input_file, check_output, output_errors
from tests.helpers import raises_code


def test_output_equal_to_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("x")
    with raises_code("E451", ConfigError, match="in.txt"):
        check_output(src, [src])
    with raises_code("E451", ConfigError):
        check_output(tmp_path / "sub" / ".." / "in.txt", [src])  # same path, spelt otherwise
    (tmp_path / "soft.json").symlink_to(src)
    with raises_code("E451", ConfigError):
        check_output(tmp_path / "soft.json", [src])
    os.link(src, tmp_path / "hard.json")
    with raises_code("E451", ConfigError):
        check_output(tmp_path / "hard.json", [src])
    assert check_output(tmp_path / "out.json", [src, None, "default"]) == tmp_path / "out.json"
    assert src.read_text() == "x"


def test_output_inside_an_input_directory_or_holding_an_input(tmp_path: Path) -> None:
    store = tmp_path / "kb"
    store.mkdir()
    (store / "kb.sqlite").write_text("")
    with raises_code("E451", ConfigError):
        check_output(store / "kb.sqlite", stores=[store])
    with raises_code("E451", ConfigError):
        check_output(store / "linked.json", stores=[store])
    check_output(store / "index", [store], kind="dir")  # an index inside a (linker) directory read
    # a directory output replaces the folder as a whole: an input inside it would be deleted
    with raises_code("E451", ConfigError):
        check_output(tmp_path, [store / "kb.sqlite"], kind="dir")
    check_output(tmp_path, [store / "kb.sqlite"], kind="run")  # a run directory is written into


def test_output_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with raises_code("E452", OutputError, match="is a directory"):
        check_output(tmp_path / "d")
    f = tmp_path / "f.txt"
    f.write_text("x")
    with raises_code("E453", OutputError, match="is a file, not a folder"):
        check_output(f / "sub" / "out.json")
    with raises_code("E453", OutputError, match="not a directory"):
        check_output(f, kind="dir")
    check_output(tmp_path / "new" / "deeper" / "out.json")  # folders are created when writing
    assert not (tmp_path / "new").exists()


def test_read_only_folder_is_refused_before_the_work(tmp_path: Path, monkeypatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    # root may write anywhere, so the read-only folder is simulated
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    with raises_code("E453", OutputError, match="not writable"):
        check_output(ro / "out.json")


def test_oserror_while_writing_names_the_path(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    with raises_code("E453", OutputError, match="No space left"):
        with output_errors(out), atomic_open(out) as fh:
            fh.write("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []  # no half-written output, no temporary


def test_check_input_file(tmp_path: Path) -> None:
    with raises_code("E454", InputError, match="is a directory"):
        check_input_file(tmp_path, "corpus")
    with raises_code("E006", InputError):
        check_input_file(tmp_path / "missing")
    with pytest.raises(InputError):
        check_input_file(tmp_path / "missing")


def test_text_that_is_not_unicode_is_a_coded_error_and_leaves_nothing(tmp_path: Path) -> None:
    from genbel.data import write_corpus
    from genbel.data.model import Document, Entity, Passage

    out = tmp_path / "o.jsonl"
    doc = Document("1", "1", [Passage("p", "t", ["bad \ud800 text"], [(0, 10)])], [Entity("e", "D", ["bad"], [(0, 3)])])
    with raises_code("E041", OutputError, match="o.jsonl"):
        write_corpus([doc], out)
    assert list(tmp_path.iterdir()) == []
