"""Helpers of the reader property tests (``tests/*/test_*_fuzz.py``): mutated inputs and the outcome check.

Every reader must end, for any input, in a clean result or a :class:`~genbel.errors.GenbelError`
whose message starts with its code (``[Ennn]``); any other exception fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

from genbel.errors import GenbelError

T = TypeVar("T")

#: Byte strings that break text formats in interesting ways.
NASTY = [
    b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\t", b"|", b"||", b"\n", b"\r", b"[", b"]",
    b"{", b"}", b'"', b",", b":", b"-1", b"9" * 4400, b"[" * 3000, b'"\\ud800"', b"\\ud800", b"null", b"[]",
    b"{}", b"1e400", "\u2028".encode(), "é".encode(),
]


def outcome(fn: Callable[[], T]) -> T | GenbelError:
    """``fn()``, or the coded genbel error it raised (other exceptions propagate and fail the test)."""
    try:
        return fn()
    except GenbelError as e:
        assert str(e).startswith("[E"), f"uncoded genbel error: {e!r}"
        return e


@st.composite
def mutated(draw: Any, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` after 1-4 random edits (insert, delete, flip, truncate, splice, BOM)."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "nasty", "delete", "flip", "truncate", "splice", "bom"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data = data[:pos] + draw(st.binary(min_size=1, max_size=8)) + data[pos:]
        elif op == "nasty":
            data = data[:pos] + draw(st.sampled_from(NASTY)) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 40)):]
        elif op == "flip" and data:
            i = min(pos, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
        elif op == "truncate":
            data = data[:pos]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            data = data[:pos] + other[draw(st.integers(0, len(other))):]
        elif op == "bom":
            data = b"\xef\xbb\xbf" + data
    return data


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes or a mutated seed."""
    return st.one_of(st.binary(max_size=200), mutated(seeds))
