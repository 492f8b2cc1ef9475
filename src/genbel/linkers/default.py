"""The linker genbel uses when none is named: the shipped default model if present, else TF-IDF."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.registry import create_linker

logger = logging.getLogger(__name__)

#: name of the shipped default generative model under ``genbel/resources/models/``
DEFAULT_MODEL = "default"


def default_model_dir() -> Path | None:
    d = Path(str(resources.files("genbel"))) / "resources" / "models" / DEFAULT_MODEL
    return d if (d / "genbel_linker.json").exists() else None


def default_linker(kb: KnowledgeBase, prefer: str = "auto") -> Linker:
    """``prefer``: ``auto`` (shipped model if bundled, else ``tfidf``), or any registry spec."""
    if prefer != "auto":
        return create_linker(prefer, kb)
    d = default_model_dir()
    if d is not None:
        logger.info("using the shipped default model %s", d)
        return create_linker(f"generative:{d}", kb)
    return create_linker("tfidf", kb)
