"""The table of KB names that retrieval indexes are built over.

Retrieval linkers score *names* and rank *concepts*: a concept's score is the maximum over its
names. :class:`NameTable` holds one row per distinct (normalised name, concept) pair with rows
grouped by concept, so that the per-concept maximum is one ``np.maximum.reduceat`` over a row of
name scores, and helpers to turn scored rows into :class:`~genbel.linkers.base.Candidate` lists.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from genbel.data.queries import Candidate
from genbel.kb.base import KnowledgeBase
from genbel.kb.normalize import normalize_name
from genbel.kb.strings import StringArray, StringArrayWriter
from genbel.textio import read_json

#: largest score change :meth:`NameTable.concept_bonus` makes to break ties by the concept prior
TIE_BREAK = 1e-6


def concept_prior(documents: Iterable[Any], kb: KnowledgeBase) -> dict[str, int]:
    """How often each KB concept (main id) is a gold concept in annotated documents.

    The annotation conventions of a training corpus, e.g. which of two concepts sharing the name
    "DM" its annotators mean, as a prior for ranking (:meth:`NameTable.concept_bonus`).
    """
    counts: dict[str, int] = {}
    for doc in documents:
        for e in doc.entities:
            for main in {kb.resolve_id(g) for g in e.gold_ids} - {None}:
                counts[main] = counts.get(main, 0) + 1  # type: ignore[index]
    return counts


#: the settings file of every retrieval index directory (sparse and dense)
INDEX_META_FILE = "meta.json"


def read_index_meta(path: str | os.PathLike, kind: str = "retrieval") -> dict[str, Any]:
    """The ``meta.json`` of a saved index directory (its kind, version, settings and the
    ``kb_fingerprint`` of the KB it was built for).

    Raises E300 when the file is missing and E013 when it is not valid JSON; ``kind`` names the
    index in those messages.
    """

    from genbel.errors import Errors, FormatError

    p = Path(path)
    meta_path = p / INDEX_META_FILE
    if not meta_path.is_file():
        raise FormatError(Errors.E300.format(path=p, kind=kind, missing=INDEX_META_FILE))
    return read_json(meta_path, expect=dict)


def read_prior(path: str | os.PathLike) -> dict[str, float]:
    """A concept prior saved as JSON ``{concept_id: count}``."""
    import json

    from genbel.errors import Errors, FormatError

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(Errors.E006.format(path=p)) from None
    except json.JSONDecodeError as e:
        raise FormatError(Errors.E013.format(path=p, line=e.lineno, reason=e.msg)) from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise FormatError(Errors.E016.format(path=p, reason="expected a JSON object {concept_id: count}"))
    return {str(k): float(v) for k, v in data.items()}


def table_rows(kb: KnowledgeBase, normalize: bool = True) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    """The rows of :meth:`NameTable.from_kb`, one concept at a time: ``(concept id, preferred name,
    [(key, name), …])`` for each concept with at least one non-empty key (streamed builds use it)."""
    for c in kb:
        seen: set[str] = set()
        rows: list[tuple[str, str]] = []
        for n in c.names:
            key = normalize_name(n) if normalize else n.strip()
            if not key or key in seen:
                continue
            seen.add(key)
            rows.append((key, n))
        if rows:
            yield c.id, c.name, rows


class _Keys(Sequence[str]):
    """The keys of a table read from disk: its names, normalised on access (nothing stored)."""

    def __init__(self, names: Sequence[str], normalize: bool) -> None:
        self.names = names
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = self.names[i]
        return normalize_name(n) if self.normalize else n.strip()


#: the files of a saved :class:`NameTable` (beside an index's own files)
TABLE_FILES = (
    *StringArray.files("table.names"), *StringArray.files("table.concept_ids"),
    *StringArray.files("table.preferred"), "table.row_concept.npy", "table.concept_starts.npy",
)


class NameTableWriter:
    """Builds a :class:`NameTable` concept by concept into numpy blocks and writes it with
    :meth:`save` (no Python string is kept per name)."""

    def __init__(self) -> None:
        self.names = StringArrayWriter()
        self.concept_ids = StringArrayWriter()
        self.preferred = StringArrayWriter()
        self._row_concept = array("i")  # machine arrays: no Python object per row or concept
        self._starts = array("q")
        self.n_rows = 0

    def add(self, concept_id: str, preferred: str, names: Sequence[str]) -> None:
        j = len(self._starts)
        self._starts.append(self.n_rows)
        self.concept_ids.append(concept_id)
        self.preferred.append(preferred)
        self.names.extend(names)
        self._row_concept.extend([j] * len(names))
        self.n_rows += len(names)

    def save(self, path: str | Path) -> None:
        self.names.save(path, "table.names")
        self.concept_ids.save(path, "table.concept_ids")
        self.preferred.save(path, "table.preferred")
        np.save(Path(path) / "table.row_concept.npy", np.frombuffer(self._row_concept, dtype=np.int32))
        np.save(Path(path) / "table.concept_starts.npy", np.frombuffer(self._starts, dtype=np.int64))


@dataclass
class NameTable:
    """KB names as rows grouped by concept.

    ``keys[i]`` is the text that is indexed for row ``i`` (the normalised name), ``names[i]`` the
    KB spelling shown to users, ``row_concept[i]`` the position of its concept in
    ``concept_ids``; ``concept_starts[j]`` is the first row of concept ``j`` (rows of one
    concept are contiguous) and ``preferred[j]`` its preferred name. Concepts whose every name
    normalises to the empty string are absent.

    Built from a KB (:meth:`from_kb`) the string columns are lists; saved with an index
    (:meth:`save`, :class:`NameTableWriter`) and read back with :meth:`load` they are memory-mapped
    :class:`~genbel.kb.strings.StringArray` columns and ``keys`` are computed from ``names`` on access,
    so a table of millions of names holds no Python object per name.
    """

    keys: Sequence[str]
    names: Sequence[str]
    row_concept: np.ndarray
    concept_ids: Sequence[str]
    concept_starts: np.ndarray
    preferred: Sequence[str] = field(default_factory=list)

    @classmethod
    def from_kb(cls, kb: KnowledgeBase, normalize: bool = True) -> NameTable:
        """One row per distinct key of each concept (``normalize_name`` applied when ``normalize``)."""
        keys: list[str] = []
        names: list[str] = []
        row_concept: list[int] = []
        concept_ids: list[str] = []
        starts: list[int] = []
        preferred: list[str] = []
        for cid, pref, rows in table_rows(kb, normalize):
            starts.append(len(keys))
            for key, n in rows:
                keys.append(key)
                names.append(n)
                row_concept.append(len(concept_ids))
            concept_ids.append(cid)
            preferred.append(pref)
        return cls(
            keys=keys,
            names=names,
            row_concept=np.asarray(row_concept, dtype=np.int64),
            concept_ids=concept_ids,
            concept_starts=np.asarray(starts, dtype=np.int64),
            preferred=preferred,
        )

    def save(self, path: str | Path) -> None:
        """Write the table's columns into the directory ``path`` (:data:`TABLE_FILES`)."""
        w = NameTableWriter()
        starts = [int(x) for x in self.concept_starts] + [len(self)]
        for j, cid in enumerate(self.concept_ids):
            w.add(cid, self.preferred_name(j), [self.names[r] for r in range(starts[j], starts[j + 1])])
        w.save(path)

    @classmethod
    def load(cls, path: str | Path, normalize: bool = True, mmap: bool = True) -> NameTable:
        """Read a table written by :meth:`save` or :class:`NameTableWriter` (memory-mapped by default)."""
        mode = "r" if mmap else None
        names = StringArray.load(path, "table.names", mmap=mmap)
        return cls(
            keys=_Keys(names, normalize),
            names=names,
            row_concept=np.load(Path(path) / "table.row_concept.npy", mmap_mode=mode),
            concept_ids=StringArray.load(path, "table.concept_ids", mmap=mmap),
            concept_starts=np.load(Path(path) / "table.concept_starts.npy", mmap_mode=mode),
            preferred=StringArray.load(path, "table.preferred", mmap=mmap),
        )

    def __len__(self) -> int:
        return len(self.row_concept)

    @property
    def n_concepts(self) -> int:
        return len(self.concept_ids)

    def concept_scores(self, name_scores: np.ndarray) -> np.ndarray:
        """Per-concept maximum of a ``(batch, n_names)`` score array → ``(batch, n_concepts)``."""
        if name_scores.shape[1] == 0:
            return np.zeros((name_scores.shape[0], 0), dtype=name_scores.dtype)
        return np.maximum.reduceat(name_scores, self.concept_starts, axis=1)

    def preferred_name(self, j: int) -> str:
        """The preferred name of concept ``j`` (its first row's name when the table has none)."""
        return self.preferred[j] if self.preferred else self.names[int(self.concept_starts[j])]

    def candidate(self, row: int, score: float) -> Candidate:
        """The :class:`Candidate` of name row ``row``: its concept, preferred name and the matched name."""
        j = int(self.row_concept[row])
        return Candidate(self.concept_ids[j], self.preferred_name(j), score, matched=self.names[row])

    def concept_end(self, j: int) -> int:
        return int(self.concept_starts[j + 1]) if j + 1 < len(self.concept_starts) else len(self)

    def concept_bonus(self, prior: Mapping[str, float] | None, weight: float = 0.0) -> np.ndarray | None:
        """Per-concept score bonus from a concept prior (e.g. gold-concept counts of a training corpus).

        ``weight · log(1 + count)`` plus a tie-breaker of at most :data:`TIE_BREAK` that orders
        concepts with equal scores (names shared by several concepts, such as "DM" or "aniridia" in
        MEDIC) by their prior. ``None`` when the prior gives no concept a positive count.
        """
        if not prior:
            return None
        counts = np.array(
            [max(0.0, float(prior.get(cid, 0.0))) for cid in self.concept_ids], dtype=np.float64
        )
        if counts.size == 0 or counts.max() <= 0:
            return None
        logc = np.log1p(counts)
        return (weight * logc + TIE_BREAK * logc / logc.max()).astype(np.float32)

    def top_concepts(
        self, name_scores: np.ndarray, k: int, min_score: float | None = None, bonus: np.ndarray | None = None
    ) -> list[list[Candidate]]:
        """The ``k`` best concepts of each row of a dense ``(batch, n_names)`` score array.

        A concept scores the maximum over its names (plus ``bonus[concept]`` when given, see
        :meth:`concept_bonus`) and is shown with its preferred name and that best name (``matched``).
        Remaining ties are broken by KB order, so results are deterministic. Concepts whose name
        score is ``<= min_score`` are left out (``None``: keep all).
        """
        out: list[list[Candidate]] = []
        if k <= 0 or self.n_concepts == 0:
            return [[] for _ in range(name_scores.shape[0])]
        cs = self.concept_scores(name_scores)
        if min_score is not None or bonus is not None:
            raw = cs
            cs = cs + bonus[None, :] if bonus is not None else cs.copy()
            if min_score is not None:
                cs[raw <= min_score] = -np.inf
                min_score = -np.inf
        kk = min(k, cs.shape[1])
        if kk < cs.shape[1]:
            part = np.argpartition(cs, cs.shape[1] - kk, axis=1)[:, cs.shape[1] - kk :]
        else:
            part = np.broadcast_to(np.arange(cs.shape[1]), cs.shape)
        for b in range(cs.shape[0]):
            cols = part[b]
            vals = cs[b, cols]
            order = np.lexsort((cols, -vals))
            row: list[Candidate] = []
            for j in cols[order]:
                s = float(cs[b, j])
                if min_score is not None and not s > min_score:
                    break
                lo, hi = int(self.concept_starts[j]), self.concept_end(int(j))
                best = lo + int(np.argmax(name_scores[b, lo:hi]))
                row.append(self.candidate(best, s))
            out.append(row)
        return out


def rows_per_batch(n_rows: int, batch_size: int, budget: int = 1 << 25) -> int:
    """How many queries to score at once so that a dense ``(batch, n_rows)`` float32 block stays
    under ``budget`` elements (128 MB by default), at most ``batch_size``."""
    return max(1, min(batch_size, budget // max(1, n_rows)))


class ConceptPriorMixin:
    """``set_prior`` shared by the retrieval linkers that hold a :class:`NameTable` as ``self.table``."""

    table: NameTable

    def set_prior(self, prior: Mapping[str, float] | str | Path | None, weight: float = 0.0) -> None:
        """Use a concept prior (``{concept_id: count}`` or a JSON file of it, e.g. from
        :func:`concept_prior` on training documents): ties are broken by it and
        ``weight · log(1 + count)`` is added to concept scores (see :meth:`NameTable.concept_bonus`)."""
        if isinstance(prior, (str, Path)):
            prior = read_prior(prior)
        kb = getattr(self, "kb", None)
        if prior and kb is not None:  # keyed by main ids: a prior saved when another id was main still applies
            resolved: dict[str, float] = {}
            for k, v in prior.items():
                main = kb.resolve_id(k) or k
                resolved[main] = resolved.get(main, 0.0) + float(v)
            prior = resolved
        self.prior = {k: float(v) for k, v in prior.items()} if prior else None
        self.prior_weight = float(weight)
        self._bonus = self.table.concept_bonus(self.prior, self.prior_weight)
