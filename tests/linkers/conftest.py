"""Fixtures shared by the linker tests."""

import pytest


@pytest.fixture
def embedded(monkeypatch):
    """The KB names given to the encoder (what a name-vector store or a shipped pack must spare)."""
    from genbel.encoders import TextEncoder

    texts: list[str] = []
    encode = TextEncoder.encode

    def counting(self, batch, progress=None, desc="embedding"):
        if desc == "embedding KB names":
            texts.extend(batch)
        return encode(self, batch, progress=progress, desc=desc)

    monkeypatch.setattr(TextEncoder, "encode", counting)
    return texts
