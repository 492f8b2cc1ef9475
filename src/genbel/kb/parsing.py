"""Line-level helpers shared by the KB loaders: numbered lines, row errors, ids and names.

Every loader reads text through :func:`numbered_lines` (gzip-aware, BOM dropped, bad bytes as a coded
error naming ``file:line``) and reports a malformed row with :func:`row_error` (``E003``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from genbel.errors import Errors, FormatError
from genbel.kb.ids import split_ids
from genbel.textio import iter_lines


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without the end-of-line)`` for every line of a text file.

    Decoding goes through :func:`genbel.textio.iter_lines`: a leading BOM is dropped, bad bytes
    and corrupt ``.gz`` files raise coded errors naming ``file:line``.
    """
    for i, line in enumerate(iter_lines(path), 1):
        yield i, line.rstrip("\r\n")


def row_error(path: Path, line: int, fmt: str, reason: str) -> FormatError:
    return FormatError(Errors.E003.format(path=path, line=line, fmt=fmt, reason=reason))


def parse_ids(raw: str, path: Path, line: int, fmt: str) -> list[str]:
    ids = split_ids(raw)
    if not ids:
        raise row_error(path, line, fmt, f"no concept id in {raw!r}")
    return ids


def unique_names(raw: Iterable[str]) -> list[str]:
    """Stripped, non-empty, de-duplicated names in order (linear: a dict keeps the first-seen order)."""
    return [n for n in dict.fromkeys(x.strip() for x in raw) if n]


def file_stem(path: Path) -> str:
    name = path.name
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name
