"""Named linker factories: ``genbel evaluate --linker NAME[:PATH]`` and ``genbel link --linker``.

A factory takes the KB, an optional path (a trained model or saved index) and keyword options, and
returns a :class:`~genbel.linkers.base.Linker`. Modules register their factories with
:func:`register_linker`; :func:`create_linker` resolves ``"name"`` or ``"name:path"``, after
:func:`resolve_alias` has replaced a short name a user would guess (:data:`ALIASES`: ``default``,
``dense``, ``generative`` …) by the spec of the shipped model it stands for.

A **chain** ``"A+B"`` (e.g. ``dense:default+rerank:default``) builds ``A``, then ``B`` with ``A`` as
its upstream linker (the ``retriever`` option of ``B``'s factory); any number of stages may follow
the first, each registered with ``register_linker(name, stage=True)``. Options prefixed with a
stage's name (``dense.n_candidates=64``) go to that stage, the others to the last one.

The registry is lazy: :data:`_MODULES` maps each name to the module that registers it, imported on
first use, so listing linkers or creating ``exact``/``tfidf``/``sparse`` never imports torch. A
linker whose module needs a missing optional dependency raises E450 naming the extra to install
(:mod:`genbel.deps`).
"""

from __future__ import annotations

import importlib
import json
import re
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
#: names whose factory takes an upstream linker (``retriever=``) and may follow another in a chain
_STAGES: set[str] = set()

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
    "rerank": "genbel.linkers.rerank",
}
#: stage names known without importing their module (``register_linker(..., stage=True)`` adds more)
_STAGE_MODULES = {"rerank"}


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


def register_linker(name: str, *, stage: bool = False) -> Callable[[LinkerFactory], LinkerFactory]:
    """Decorator registering a factory ``(kb, path, **options) -> Linker`` under ``name``
    (add ``name`` to :data:`_MODULES` too, so that the registry finds it without importing it).
    ``stage``: the factory takes an upstream linker as option ``retriever``, so that ``name`` may
    follow another linker in a chain ``A+name``."""

    def deco(fn: LinkerFactory) -> LinkerFactory:
        _FACTORIES[name] = fn
        if stage:
            _STAGES.add(name)
        return fn

    return deco


def available_linkers() -> list[str]:
    """Names :func:`create_linker` accepts (without importing any linker module); chain them with
    ``+`` (e.g. ``dense:default+rerank:default``), a stage after the first being one of
    :func:`chain_stages`."""
    return sorted(set(_MODULES) | set(_FACTORIES))


def chain_stages() -> list[str]:
    """Names that may follow another linker in a chain ``A+name``."""
    return sorted(_STAGES | _STAGE_MODULES)


def create_linker(spec: str, kb: KnowledgeBase | str | Path, **options: Any) -> Linker:
    """Build a linker from ``"name"``, ``"name:path"``, an alias (:data:`ALIASES`) or a chain ``"A+B"``
    (each stage may be an alias too) for ``kb``.

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
    parts = [resolve_alias(p) for p in split_chain(spec)]
    spec = "+".join(parts)
    if len(parts) > 1:
        return _create_chain(spec, parts, kb, options)
    linker = _create_one(spec, kb, options)
    linker.spec = spec  # what evaluation reports name the linker by
    return linker


def split_chain(spec: str) -> list[str]:
    """The stages of a chain spec: ``"dense:default+rerank:default"`` → ``["dense:default",
    "rerank:default"]``. A ``+`` splits only where a known linker name follows (``+rerank``,
    ``+rerank:PATH``), so that a path containing ``+`` stays whole."""
    names = "|".join(re.escape(n) for n in sorted(set(_MODULES) | set(_FACTORIES), key=len, reverse=True))
    return re.split(rf"\+(?=(?:{names})(?::|\+|$))", spec)


def _create_one(spec: str, kb: KnowledgeBase, options: dict[str, Any]) -> Linker:
    name, _, path = spec.partition(":")
    _import_module(name, spec)
    if name not in _FACTORIES:
        raise ConfigError(Errors.E009.format(name=spec, known=known_linkers()))
    return _FACTORIES[name](kb, path or None, **options)


def _import_module(name: str, spec: str) -> None:
    if name not in _FACTORIES and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            extra = extra_of(e.name)
            if extra is not None:  # an optional dependency the module imports without a guard
                raise missing_dependency([str(e.name)], extra, f"the {name} linker", str(e)) from e
            # a module of an area not installed in this build
            raise ConfigError(Errors.E009.format(name=spec, known=known_linkers())) from e


def _create_chain(spec: str, parts: list[str], kb: KnowledgeBase, options: dict[str, Any]) -> Linker:
    """Build ``A+B+…``: each later stage gets the linker built so far as its ``retriever``."""
    names = [p.partition(":")[0] for p in parts]
    for name, part in zip(names[1:], parts[1:]):
        _import_module(name, part)
        if name not in _FACTORIES:
            raise ConfigError(Errors.E009.format(name=part, known=known_linkers()))
        if name not in _STAGES:
            raise ConfigError(Errors.E472.format(spec=spec, name=name,
                                                 stages=", ".join(sorted(_STAGES | _STAGE_MODULES))))
    per_stage: list[dict[str, Any]] = [{} for _ in parts]
    for key, value in options.items():
        stage, dot, rest = key.partition(".")
        if dot:
            if stage not in names:
                raise ConfigError(Errors.E473.format(spec=spec, option=key, stages=", ".join(names)))
            per_stage[len(names) - 1 - names[::-1].index(stage)][rest] = value  # the last stage of that name
        else:
            per_stage[-1][key] = value
    linker = _create_one(parts[0], kb, per_stage[0])
    linker.spec = parts[0]
    for part, opts in zip(parts[1:], per_stage[1:]):
        linker = _create_one(part, kb, {**opts, "retriever": linker})
        linker.spec = part
    linker.spec = spec
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
