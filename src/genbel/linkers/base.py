"""The linker interface every genbel linker implements.

A linker ranks KB concepts for mentions. The unit of work is a :class:`MentionQuery` (a mention
with its document context); the answer is a ranked list of :class:`Candidate` per query, best
first, at most ``k`` distinct concepts. Both records live in :mod:`genbel.data.queries`.

Document-level linkers (which need the mentions of a document in order) override
:meth:`Linker.link_documents`; everything else implements :meth:`Linker.link`.

Every linker's ``link`` also accepts plain strings and ``(text, context)`` pairs: the base class
turns them into :class:`MentionQuery` objects (:func:`as_queries`) before the linker sees them::

    linker.link(["heart attack", ("MI", "She had an MI last year.")], k=3)
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from genbel.data.model import Document
from genbel.data.queries import Candidate, MentionQuery, QueryInput, as_queries, queries_from_documents


def _accepting_plain_queries(link: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(link)
    def wrapper(self: Linker, queries: Sequence[QueryInput] | str, *args: Any, **kwargs: Any) -> Any:
        return link(self, as_queries(queries), *args, **kwargs)

    wrapper._accepts_plain_queries = True  # type: ignore[attr-defined]
    return wrapper


class Linker(ABC):
    """Base class of all linkers.

    Subclasses implement :meth:`link` over :class:`MentionQuery` objects; the base class wraps each
    subclass's ``link`` (in :meth:`__init_subclass__`, the one place this happens) so that callers
    may also pass strings and ``(text, context)`` pairs.
    """

    #: registry name (``exact``, ``tfidf``, ``sparse``, ``dense``, ``generative`` …)
    name: str = "linker"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        link = cls.__dict__.get("link")
        if (
            callable(link)
            and not getattr(link, "__isabstractmethod__", False)
            and not getattr(link, "_accepts_plain_queries", False)
        ):
            wrapped = _accepting_plain_queries(link)
            if not wrapped.__doc__:  # help(linker.link) shows what every linker accepts
                wrapped.__doc__ = Linker.link.__doc__
            cls.link = wrapped  # type: ignore[method-assign]

    @abstractmethod
    def link(self, queries: Sequence[QueryInput] | str, k: int = 5) -> list[list[Candidate]]:
        """Ranked candidates (at most ``k`` distinct concepts, best first) for each query.

        A query is a :class:`MentionQuery`, the mention's text, or a ``(text, context)`` pair.
        """

    def link_documents(
        self, documents: Sequence[Document], k: int = 5, expand_abbreviations: bool = False,
        entity_types: Sequence[str] | None = None,
    ) -> list[tuple[MentionQuery, list[Candidate]]]:
        """Link every entity of the documents, in document order."""
        queries = queries_from_documents(documents, expand_abbreviations, entity_types)
        return list(zip(queries, self.link(queries, k=k)))
