"""Reading text and JSON input safely: the one place where genbel's readers decode files.

Every reader (PubTator, BigBio JSON/JSONL, the KB loaders, the KB store's ``meta.json``, markup)
goes through these helpers, so malformed input ends in a coded error naming the file and line
instead of a traceback:

* :func:`iter_lines` / :func:`read_text` read a file (``.gz`` decompressed on the fly), strip a
  leading UTF-8 byte-order mark and report undecodable bytes as ``E157`` (``file:line``) and an
  unreadable or corrupt (e.g. truncated ``.gz``) file as ``E158``;
* :func:`loads_json` parses JSON and reports invalid JSON, too deep nesting and integers too long
  for Python as ``E013`` (``file:line``), and a lone surrogate escape (``"\\ud800"``, which cannot
  be written as UTF-8 later) as ``E159`` naming the field.

Lines are split at ``\\n`` only (a ``\\r`` before it stays on the line, as with ``newline="\\n"``).
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from genbel.errors import Errors, FormatError, InputError

__all__ = ["BOM", "MAX_JSON_DEPTH", "check_json", "iter_lines", "loads_json", "read_json", "read_text"]

#: The byte-order mark that some editors put at the start of UTF-8 files; readers drop it.
BOM = "\ufeff"

#: JSON nested deeper than this is rejected (genbel's formats nest at most ~5 levels).
MAX_JSON_DEPTH = 100

# errors that reading a damaged or compressed file can raise (gzip.BadGzipFile is an OSError)
_READ_ERRORS = (OSError, EOFError, zlib.error)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# encodings whose line breaks are not the single byte b"\n": decoded as a whole, then split
_WIDE = ("utf-16", "utf-32")


def _is_gz(p: Path) -> bool:
    return p.name.endswith(".gz")


def _open_binary(p: Path) -> IO[bytes]:
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    try:
        return gzip.open(p, "rb") if _is_gz(p) else open(p, "rb")
    except _READ_ERRORS as e:
        raise InputError(Errors.E158.format(where=p, reason=_reason(e))) from None


def _reason(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, EOFError):
        msg = f"the compressed data ends too early ({msg})"
    elif isinstance(e, (gzip.BadGzipFile, zlib.error)):
        msg = f"corrupt gzip data ({msg})"
    return msg


def _decode_error(p: Path | str, line: int, encoding: str, e: UnicodeDecodeError) -> FormatError:
    bad = e.object[e.start : e.start + 4]
    return FormatError(
        Errors.E157.format(path=p, line=line, encoding=encoding, offset=e.start, data=bytes(bad), reason=e.reason)
    )


def _wide(encoding: str) -> bool:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(Errors.E154.format(value=encoding, option="encoding", known="a Python codec name")) from None
    return name.startswith(_WIDE)


def iter_lines(path: str | Path, *, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a text file, decoded, each with its ``\\n`` (a leading BOM is dropped).

    ``.gz`` files are decompressed. Raises ``E006`` (missing file), ``E157`` (bytes that are not
    ``encoding`` text, naming ``file:line``) and ``E158`` (unreadable or corrupt compressed file).
    """
    p = Path(path)
    if _wide(encoding):
        text = read_text(p, encoding=encoding)
        yield from (m.group(0) for m in re.finditer(r"[^\n]*\n|[^\n]+$", text))
        return
    fh = _open_binary(p)
    lineno = 0
    try:
        with fh:
            it = iter(fh)
            while True:
                try:
                    raw = next(it)
                except StopIteration:
                    return
                except _READ_ERRORS as e:
                    raise InputError(Errors.E158.format(where=f"{p}:{lineno + 1}", reason=_reason(e))) from None
                lineno += 1
                try:
                    line = raw.decode(encoding)
                except UnicodeDecodeError as e:
                    raise _decode_error(p, lineno, encoding, e) from None
                if lineno == 1 and line.startswith(BOM):
                    line = line[1:]
                yield line
    except _READ_ERRORS as e:  # closing a truncated gzip file
        raise InputError(Errors.E158.format(where=p, reason=_reason(e))) from None


def read_text(path: str | Path, *, encoding: str = "utf-8", limit: int | None = None) -> str:
    """The whole text of a file (or its first ``limit`` bytes), decoded, without a leading BOM.

    Errors as :func:`iter_lines`. With ``limit``, a multi-byte character cut at the end is dropped.
    """
    p = Path(path)
    fh = _open_binary(p)
    try:
        with fh:
            data = fh.read() if limit is None else fh.read(limit)
    except _READ_ERRORS as e:
        raise InputError(Errors.E158.format(where=p, reason=_reason(e))) from None
    try:
        if limit is not None and len(data) == limit:
            text = codecs.getincrementaldecoder(encoding)().decode(data, final=False)
        else:
            text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        e.start -= start  # byte offset within the line
        e.object = data[start:]
        raise _decode_error(p, line, encoding, e) from None
    return text[1:] if text.startswith(BOM) else text


def loads_json(text: str, path: str | Path, line: int | None = None) -> Any:
    """Parse JSON read from ``path`` (``line`` = where ``text`` starts, for one JSONL line).

    Raises ``E013`` (naming ``file:line``) for invalid JSON, JSON nested deeper than
    :data:`MAX_JSON_DEPTH` and integers too long to convert, and ``E159`` for a string holding a
    lone surrogate escape, naming the field.
    """
    import json

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        ln = e.lineno if line is None else line + e.lineno - 1
        raise FormatError(Errors.E013.format(path=path, line=ln, reason=e.msg)) from None
    except RecursionError:
        reason = f"nested deeper than {MAX_JSON_DEPTH} levels"
        raise FormatError(Errors.E013.format(path=path, line=line or 1, reason=reason)) from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise FormatError(Errors.E013.format(path=path, line=line or 1, reason=str(e))) from None
    check_json(obj, path, line, surrogates=_SURROGATE_ESCAPE.search(text) is not None)
    return obj


def read_json(path: str | Path, *, expect: type | None = None) -> Any:
    """The parsed JSON of a file: :func:`read_text` + :func:`loads_json` (``E006``, ``E157``, ``E013``).

    With ``expect`` (e.g. ``dict``), a document of another JSON type raises ``E016`` naming the file.
    """
    obj = loads_json(read_text(path), path)
    if expect is not None and not isinstance(obj, expect):
        kind = {dict: "a JSON object", list: "a JSON array"}.get(expect, expect.__name__)
        raise FormatError(Errors.E016.format(path=path, reason=f"expected {kind}"))
    return obj


def _field(parts: tuple[Any, ...]) -> str:
    out = ""
    for k in parts:
        if isinstance(k, int):
            out += f"[{k}]"
        elif k.isidentifier():
            out += f".{k}" if out else k
        else:
            out += f"[{k!r}]"
    return out or "<top level>"


def check_json(obj: Any, path: str | Path, line: int | None = None, *, surrogates: bool = True) -> None:
    """Reject parsed JSON nested deeper than :data:`MAX_JSON_DEPTH` (``E013``) or holding a string
    with a lone surrogate (``E159``, naming the field). Iterative: never recurses."""
    where = f"{path}:{line}" if line is not None else str(path)

    def bad_string(s: str, parts: tuple[Any, ...]) -> None:
        if surrogates and _SURROGATE.search(s):
            raise FormatError(Errors.E159.format(where=where, field=_field(parts), value=s[:80]))

    stack: list[tuple[Any, tuple[Any, ...]]] = [(obj, ())]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, str):
            bad_string(value, parts)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if len(parts) >= MAX_JSON_DEPTH:
            reason = f"nested deeper than {MAX_JSON_DEPTH} levels (at {_field(parts)})"
            raise FormatError(Errors.E013.format(path=path, line=line or 1, reason=reason))
        if isinstance(value, dict):
            for k, v in value.items():
                bad_string(k, (*parts, k))
                stack.append((v, (*parts, k)))
        else:
            stack.extend((v, (*parts, i)) for i, v in enumerate(value))
