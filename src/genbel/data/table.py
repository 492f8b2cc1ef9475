"""CSV and TSV: one row per entity, for spreadsheets and data frames.

Columns (:data:`TABLE_COLUMNS`): ``document, start, end, text, type, concept_id, preferred_name, score,
candidates``. ``start``/``end`` are character offsets into the document text (a discontinuous entity:
its covering span, with ``text`` its pieces joined by a space); ``concept_id``, ``preferred_name`` and
``score`` are the top concept (empty when none); ``candidates`` lists the ranked candidates as
``id score`` pairs joined by `` | ``. Written with the :mod:`csv` module (RFC 4180 quoting for CSV; TSV
has no quoting, so TABs and line breaks inside a field are written as spaces). A document without
entities has no row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from genbel.data.linked import LinkedDocument, iter_linked
from genbel.data.model import Document
from genbel.io import atomic_open

__all__ = ["TABLE_COLUMNS", "table_rows", "write_csv", "write_table", "write_tsv"]

TABLE_COLUMNS: tuple[str, ...] = (
    "document", "start", "end", "text", "type", "concept_id", "preferred_name", "score", "candidates",
)


def _score(score: float | None) -> str:
    return "" if score is None else f"{score:.6g}"


def table_rows(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], where: str = "<output>") -> Iterator[list[str]]:
    """One row (strings, in :data:`TABLE_COLUMNS` order) per entity."""
    for ld in iter_linked(docs, where):
        for le in ld.entities:
            e = le.entity
            top = le.top
            yield [
                ld.document.document_id, str(e.start), str(e.end), " ".join(e.text), e.type,
                top.id if top else "", top.name if top else "", _score(top.score) if top else "",
                " | ".join(f"{c.id} {_score(c.score)}".strip() for c in le.candidates),
            ]


def write_table(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path,
                delimiter: str = ",") -> None:
    """Write :func:`table_rows` with a header, atomically: CSV (``delimiter=","``) or TSV (``"\\t"``)."""
    with atomic_open(path) as fh:
        if delimiter == "\t":
            clean = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
            fh.write("\t".join(TABLE_COLUMNS) + "\n")
            for row in table_rows(docs, str(path)):
                fh.write("\t".join(v.translate(clean) for v in row) + "\n")
        else:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(TABLE_COLUMNS)
            writer.writerows(table_rows(docs, str(path)))


def write_csv(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path) -> None:
    write_table(docs, path, ",")


def write_tsv(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path) -> None:
    write_table(docs, path, "\t")
