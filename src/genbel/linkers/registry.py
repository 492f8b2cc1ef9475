"""Named linker factories: ``genbel evaluate --linker NAME[:PATH]`` and ``genbel link --linker``.

A factory takes the KB, an optional path (a trained model or saved index) and keyword options, and
returns a :class:`~genbel.linkers.base.Linker`. Modules register their factories with
:func:`register_linker`; :func:`create_linker` resolves ``"name"`` or ``"name:path"``, after
:func:`resolve_alias` has replaced a short name a user would guess (:data:`ALIASES`: ``default``,
``dense``, ``generative`` …) by the spec of the shipped model it stands for.

The registry is lazy: :data:`_MODULES` maps each name to the module that registers it, imported on
first use, so listing linkers or creating ``exact``/``tfidf``/``sparse`` never imports torch. A
linker whose module needs a missing optional dependency raises E450 naming the extra to install
(:mod:`genbel.deps`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genbel.deps import extra_of, missing_dependency
from genbel.errors import ConfigError, Errors
from genbel.kb.base import KnowledgeBase
from genbel.linkers.base import Linker
from genbel.linkers.default import DEFAULT_LINKER

LinkerFactory = Callable[..., Linker]
_FACTORIES: dict[str, LinkerFactory] = {}

#: modules imported lazily so that registering a linker never costs start-up time
_MODULES = {
    "exact": "genbel.linkers.exact",
    "tfidf": "genbel.linkers.sparse",
    "sparse": "genbel.linkers.sparse",
    "dense": "genbel.linkers.dense",
    "biosyn": "genbel.linkers.dense",
    "generative": "genbel.linkers.generative",
    "hybrid": "genbel.linkers.hybrid",
    "document": "genbel.linkers.document",
}


#: short names a user would guess → the spec they stand for (one entry per alias). A registry name
#: without a path that has a shipped model names that model: ``dense`` is ``dense:default``, not an
#: untrained encoder (that is ``dense:minilm``). ``auto`` is what ``genbel demo --linker`` took before.
ALIASES: dict[str, str] = {
    "default": DEFAULT_LINKER,
    "auto": DEFAULT_LINKER,
    "dense": "dense:default",
    "biosyn": "biosyn:default",
    "generative": "generative:default",
}


def resolve_alias(spec: str) -> str:
    """The spec an alias of :data:`ALIASES` stands for (``dense`` → ``dense:default``); any other
    spec unchanged (``name:path`` specs are never aliases)."""
    return ALIASES.get(spec.strip(), spec)


def known_linkers() -> str:
    """The registry names and the aliases, for messages (E009):
    ``"biosyn, dense, … or NAME:PATH (aliases: default = dense:default, …)"``."""
    aliases = ", ".join(f"{a} = {spec}" for a, spec in ALIASES.items())
    return f"{', '.join(available_linkers())} or NAME:PATH (aliases: {aliases})"


def register_linker(name: str) -> Callable[[LinkerFactory], LinkerFactory]:
    """Decorator registering a factory ``(kb, path, **options) -> Linker`` under ``name``
    (add ``name`` to :data:`_MODULES` too, so that the registry finds it without importing it)."""

    def deco(fn: LinkerFactory) -> LinkerFactory:
        _FACTORIES[name] = fn
        return fn

    return deco


def available_linkers() -> list[str]:
    """Names :func:`create_linker` accepts (without importing any linker module)."""
    return sorted(set(_MODULES) | set(_FACTORIES))


def create_linker(spec: str, kb: KnowledgeBase | str | Path, **options: Any) -> Linker:
    """Build a linker from ``"name"``, ``"name:path"`` or an alias (:data:`ALIASES`) for ``kb``.

    ``kb`` is a :class:`~genbel.kb.base.KnowledgeBase` or anything :func:`genbel.kb.open_kb` opens (a KB
    file, a saved KB directory, ``"default"``). Raises E009 for an unknown name and E450 when the
    linker needs an optional extra that is not installed (e.g. ``dense`` or ``generative`` without
    ``genbel[models]``).
    """
    if isinstance(kb, (str, Path)):
        from genbel.kb import open_kb

        kb = open_kb(kb)
    elif not isinstance(kb, KnowledgeBase):
        raise ConfigError(Errors.E029.format(
            what="create_linker(spec, kb): kb", expected="a KnowledgeBase, a KB path or 'default'",
            got=type(kb).__name__,
        ))
    spec = resolve_alias(spec)
    name, _, path = spec.partition(":")
    if name not in _FACTORIES and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            extra = extra_of(e.name)
            if extra is not None:  # an optional dependency the module imports without a guard
                raise missing_dependency([str(e.name)], extra, f"the {name} linker", str(e)) from e
            # a module of an area not installed in this build
            raise ConfigError(Errors.E009.format(name=spec, known=known_linkers())) from e
    if name not in _FACTORIES:
        raise ConfigError(Errors.E009.format(name=spec, known=known_linkers()))
    linker = _FACTORIES[name](kb, path or None, **options)
    linker.spec = spec  # what evaluation reports name the linker by
    return linker


def parse_options(pairs: list[str] | None, where: str = "--set") -> dict[str, Any]:
    """``["mode=constrain", "n_candidates=5"]`` → ``{"mode": "constrain", "n_candidates": 5}``.

    Values are read as JSON when they parse (numbers, ``true``/``false``, ``null``), else kept as text.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(Errors.E024.format(value=pair, field=where, kind="KEY=VALUE"))
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
