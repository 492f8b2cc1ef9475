"""Packed string columns: UTF-8 bytes + offsets, written streamed, read memory-mapped."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genbel.kb.strings import StringArray, StringArrayWriter


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=30))
def test_round_trip_in_memory(strings: list[str]) -> None:
    arr = StringArray.from_strings(strings)
    assert len(arr) == len(strings) and list(arr) == strings and arr == strings
    if strings:
        assert arr[-1] == strings[-1] and arr[1:3] == strings[1:3]


def test_saved_and_mapped(tmp_path) -> None:
    strings = ["Hérédité", "", "breast cancer", "𝛼-thalassemia", "x" * 1_000]
    w = StringArrayWriter()
    for s in strings * 14_000:  # more than one block of offsets
        w.append(s)
    assert len(w) == 70_000
    w.save(tmp_path, "names")
    arr = StringArray.load(tmp_path, "names")
    assert isinstance(arr.offsets, np.memmap) and len(arr) == 70_000
    assert arr[3] == "𝛼-thalassemia" and arr[69_999] == "x" * 1_000 and arr[1] == ""
    assert arr == StringArray.load(tmp_path, "names", mmap=False)
    assert arr.nbytes == arr.offsets.nbytes + arr.data.nbytes
    with pytest.raises(IndexError):
        arr[70_000]
