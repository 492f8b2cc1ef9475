"""genbel.textio: the shared decoding of every reader (issue 14)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from genbel.errors import FormatError, InputError
from genbel.textio import iter_lines, loads_json, read_text


def test_lines_split_at_newline_only_and_bom_dropped(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"\xef\xbb\xbfa\x0bb\r\nc\xc2\x85d\n\ne")
    assert list(iter_lines(p)) == ["a\x0bb\r\n", "c\x85d\n", "\n", "e"]
    g = tmp_path / "a.txt.gz"
    g.write_bytes(gzip.compress(p.read_bytes()))
    assert list(iter_lines(g)) == list(iter_lines(p))
    assert read_text(g) == read_text(p) == "a\x0bb\r\nc\x85d\n\ne"


def test_wide_encodings(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("a\x85b\nc\n\nd", encoding="utf-16")
    assert list(iter_lines(p, encoding="utf-16")) == ["a\x85b\n", "c\n", "\n", "d"]
    with pytest.raises(InputError, match=r"^\[E154\] invalid value 'no-such-codec' for encoding"):
        list(iter_lines(p, encoding="no-such-codec"))


def test_decode_error_names_line_and_bytes(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"ok\nok\nbad \xe2\x82 here\n")
    for read in (lambda: list(iter_lines(p)), lambda: read_text(p)):
        with pytest.raises(FormatError, match=r"^\[E157\] .*a\.txt:3: not valid utf-8 text: bytes b'\\xe2\\x82 h' "
                                              r"at byte 4 of the line"):
            read()


def test_read_text_limit_keeps_whole_characters(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes("é".encode() * 10)
    assert read_text(p, limit=5) == "éé"


def test_loads_json_names_the_field() -> None:
    with pytest.raises(FormatError, match=r"^\[E159\] f:4: field a\[1\]\['b c'\] holds a lone surrogate"):
        loads_json('{"a": [1, {"b c": "x\\udc00"}]}', "f", 4)
    with pytest.raises(FormatError, match=r"^\[E159\] f: field \['k\\ud800'\]"):
        loads_json('{"k\\ud800": 1}', "f")
    with pytest.raises(FormatError, match=r"^\[E013\] f:2: invalid JSON: Expecting value"):
        loads_json("[1,\n]", "f")
    assert loads_json('{"a": "\\ud83d\\ude00"}', "f") == {"a": "\U0001f600"}
