"""Knowledge bases: concepts, loaders for common biomedical vocabularies, and a SQLite store."""

from __future__ import annotations

from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept


def load_kb(source, format=None, *, name=None, group=None, dedupe=False):  # noqa: A002 - temporary until loaders land
    from genbel.kb.loaders import load_kb as _load_kb

    return _load_kb(source, format, name=name, group=group, dedupe=dedupe)


__all__ = ["Concept", "KnowledgeBase", "load_kb"]
