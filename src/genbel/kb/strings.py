"""Many strings in two numpy arrays: UTF-8 bytes and offsets (the name and id columns of UMLS-sized KBs).

A Python ``list`` of 7M names costs ~0.6 GB of object headers before the text; :class:`StringArray`
keeps the UTF-8 bytes of all strings in one ``uint8`` array and their ends in one ``int64`` array, so it
costs the text plus 8 bytes a string, can be memory-mapped from disk (:meth:`StringArray.load`) and is
written streamed, string by string (:class:`StringArrayWriter`). It is a read-only ``Sequence[str]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np


class StringArray(Sequence[str]):
    """``n`` strings: ``data[offsets[i]:offsets[i + 1]]`` is the UTF-8 encoding of string ``i``."""

    def __init__(self, offsets: np.ndarray, data: np.ndarray) -> None:
        self.offsets = offsets
        self.data = data

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringArray:
        w = StringArrayWriter()
        w.extend(strings)
        return w.to_array()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.data[a:b]).decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StringArray):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.data, other.data)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.data.nbytes)

    def save(self, path: str | Path, stem: str) -> None:
        """Write ``STEM.offsets.npy`` and ``STEM.bytes.npy`` into the directory ``path``."""
        np.save(Path(path) / f"{stem}.offsets.npy", np.asarray(self.offsets, dtype=np.int64))
        np.save(Path(path) / f"{stem}.bytes.npy", np.asarray(self.data, dtype=np.uint8))

    @staticmethod
    def files(stem: str) -> tuple[str, str]:
        return f"{stem}.offsets.npy", f"{stem}.bytes.npy"

    @classmethod
    def load(cls, path: str | Path, stem: str, mmap: bool = True) -> StringArray:
        """Read what :meth:`save` (or :meth:`StringArrayWriter.save`) wrote; memory-mapped by default."""
        mode = "r" if mmap else None
        return cls(np.load(Path(path) / f"{stem}.offsets.npy", mmap_mode=mode),
                   np.load(Path(path) / f"{stem}.bytes.npy", mmap_mode=mode))

    def __repr__(self) -> str:
        return f"StringArray({len(self)} strings, {self.data.nbytes} bytes)"


class StringArrayWriter:
    """Collects strings into growing ``bytearray``/``int64`` blocks (no Python object per string)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends: list[np.ndarray] = []
        self._pending: list[int] = []

    def append(self, s: str) -> None:
        self._data += s.encode("utf-8", "surrogatepass")
        self._pending.append(len(self._data))
        if len(self._pending) >= 65_536:
            self._flush()

    def extend(self, strings: Iterable[str]) -> None:
        for s in strings:
            self.append(s)

    def _flush(self) -> None:
        if self._pending:
            self._ends.append(np.asarray(self._pending, dtype=np.int64))
            self._pending = []

    def __len__(self) -> int:
        return sum(len(e) for e in self._ends) + len(self._pending)

    def to_array(self) -> StringArray:
        """The strings collected (the writer takes no more strings afterwards: the array shares its bytes)."""
        self._flush()
        offsets = np.zeros(1 + sum(len(e) for e in self._ends), dtype=np.int64)
        if len(offsets) > 1:
            offsets[1:] = np.concatenate(self._ends)
        return StringArray(offsets, np.frombuffer(self._data, dtype=np.uint8))

    def save(self, path: str | Path, stem: str) -> None:
        self.to_array().save(path, stem)
