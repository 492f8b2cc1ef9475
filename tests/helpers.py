"""Assertions shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def raises_code(code: str, exc_type: type[BaseException] | tuple[type[BaseException], ...],
                match: str | None = None) -> Iterator[Any]:
    """``pytest.raises(exc_type, match=match)`` that also checks the message starts with ``[code]``.

    genbel's errors carry their code in the message (``[E103] …``), so a test asserts the code, not
    only the type.
    """
    with pytest.raises(exc_type, match=match) as info:
        yield info
    assert str(info.value).startswith(f"[{code}] "), f"expected [{code}], got: {info.value}"
