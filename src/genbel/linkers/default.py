"""What genbel uses when no linker is named: :data:`DEFAULT_LINKER`, its best fast pipeline.

``genbel link``, ``genbel evaluate`` and ``genbel demo`` without ``--linker``, the alias ``default``
(:data:`genbel.linkers.registry.ALIASES`) and :func:`default_linker` all resolve to the one spec
:data:`DEFAULT_LINKER`; without a KB they link against the bundled one (:func:`genbel.kb.default_kb`).
A base install without the ``models`` extra falls back to :data:`FALLBACK_LINKER` (with a warning
naming the extra). The shipped generative model stays available as ``generative`` /
``generative:default`` (:func:`default_model_dir`).
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

from genbel.errors import ConfigError, Errors
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker

logger = logging.getLogger(__name__)

#: the linker spec genbel uses when none is named (the best shipped pipeline that runs fast on CPU)
DEFAULT_LINKER = "dense:default"
#: what :func:`default_linker` uses instead when :data:`DEFAULT_LINKER` needs an extra that is not installed
FALLBACK_LINKER = "tfidf"
#: name of the shipped default generative model under ``genbel/resources/models/``
DEFAULT_MODEL = "default"


def default_model_dir() -> Path | None:
    """The shipped generative model's directory (``generative:default``), or ``None`` when absent."""
    d = Path(str(resources.files("genbel"))) / "resources" / "models" / DEFAULT_MODEL
    return d if (d / "genbel_linker.json").exists() else None


def default_linker(
    kb: KnowledgeBase | str | Path | None = None, spec: str | None = None, **options: Any
) -> Linker:
    """The linker genbel uses when none is named, for ``kb`` (default: the bundled KB).

    ``spec`` (``None``: :data:`DEFAULT_LINKER`) is any spec or alias :func:`create_linker` takes;
    ``options`` go to its factory. ``kb`` is a :class:`KnowledgeBase` or anything
    :func:`genbel.kb.open_kb` opens. When ``spec`` is not given and the default needs an optional
    extra that is not installed (E450), :data:`FALLBACK_LINKER` is used and a warning says which
    extra brings the default.

    >>> from genbel import default_linker
    >>> default_linker().link(["panic attacks"], k=1)[0][0].name
    'Panic Disorder'
    """
    from genbel.deps import MissingDependencyError
    from genbel.kb import default_kb, open_kb
    from genbel.linkers.registry import create_linker

    if kb is None:
        kb = default_kb()
    elif not isinstance(kb, KnowledgeBase):
        kb = open_kb(kb)
    if spec is not None:
        return create_linker(spec, kb, **options)
    try:
        return create_linker(DEFAULT_LINKER, kb, **options)
    except MissingDependencyError as e:
        logger.warning(
            "using the %s linker instead of the default %s: %s", FALLBACK_LINKER, DEFAULT_LINKER, e
        )
        return create_linker(FALLBACK_LINKER, kb)


#: the generative model that ``--document-level`` reads with memory when no linker is named
DOCUMENT_LEVEL_MODEL = "generative:default"


def document_level_spec(
    spec: str | None, *, ensemble: bool = False, option: str = "--document-level"
) -> tuple[str, dict[str, Any]]:
    """The linker spec and options of ``genbel link|annotate --document-level`` (``--ensemble``).

    ``spec`` is the ``--linker`` given (``None``, ``default`` or ``auto``: the shipped generative model,
    :data:`DOCUMENT_LEVEL_MODEL`); it must name a generative model (``generative[:PATH]`` or
    ``document:PATH``), else E630. The result is ``document:PATH`` — LongBEL's document-level linker
    with a memory of the document's earlier predictions, on prompts built as the model was trained
    (``context_chars="model"``) — and with ``ensemble`` its document + mention ensemble
    (:func:`genbel.linkers.ensemble.default_ensemble`).

    >>> document_level_spec(None, ensemble=True)
    ('document:default', {'context_chars': 'model', 'ensemble': True})
    """
    from genbel.linkers.registry import resolve_alias

    given = (spec or "").strip()
    resolved = resolve_alias(DOCUMENT_LEVEL_MODEL if given in ("", "default", "auto") else given)
    name, _, path = resolved.partition(":")
    if name not in ("generative", "document") or "+" in resolved:
        raise ConfigError(Errors.E630.format(option=option, spec=spec))
    options: dict[str, Any] = {"context_chars": "model"}
    if ensemble:
        options["ensemble"] = True
    return f"document:{path or 'default'}", options
