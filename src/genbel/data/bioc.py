"""BioC XML and BioC JSON (the formats of PubTator3 and PubTator Central), read and written with the
``bioc`` package.

Reading: a BioC collection (XML, or JSON ``{"source", "date", "key", "infons", "documents"}``), a
JSON list of BioC documents, PubTator3's ``{"PubTator3": [documents]}`` or one BioC document per line
(JSONL, as PubTator Central's export). A passage's ``offset`` is its place in the document, so
:attr:`Document.text <genbel.data.model.Document.text>` puts passages at their offsets (a passage that
has only sentences is read as its sentences). Annotations of the document, its passages and their
sentences become entities: type from the ``type`` infon, ids from ``identifier`` (also ``Identifier``,
``MESH``; several ids separated by ``;``, ``,`` or ``|``; ``-`` is none), one ``[start, end]`` per
location. Offsets are character offsets into the document text; an annotation whose text differs from
the text at its location is E005, a document that is not BioC (a missing or mistyped field, XML that does
not parse) is E523 naming the file (and line for XML).

Writing (:func:`write_bioc_xml`, :func:`write_bioc_json`): one collection, one BioC document per
document, one passage per passage text, each entity an annotation of the passage that holds its
start, with infons ``type``, ``identifier`` (the top concept, ``-`` for none) and, for a linked
entity, ``name`` (its preferred name), ``score`` and ``candidates`` (JSON ``[[id, name, score], …]``,
best first; BioC infons are strings) and ``gold_identifier`` (the input's own ids, when it had any: read
back as the entity's gold, so ``genbel evaluate`` on a linked file never takes predictions for gold).
Documents are written one at a time, atomically.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from genbel.data.linked import LinkedDocument, iter_linked
from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.data.pubtator import OFFSET_MODES, ON_DUPLICATE, _check_option, _resolve_offsets, infer_db_name
from genbel.deps import require
from genbel.errors import Errors, FormatError, InputError
from genbel.io import atomic_open
from genbel.textio import iter_lines, loads_json, read_text

logger = logging.getLogger(__name__)

__all__ = ["bioc_document", "read_bioc_json", "read_bioc_xml", "write_bioc_json", "write_bioc_xml"]

_ID_KEYS = ("identifier", "Identifier", "MESH", "mesh", "normalized_id")
_ID_SPLIT = re.compile(r"[;,|]")
_NO_ID = frozenset({"", "-", "None", "null"})
# characters XML 1.0 cannot hold
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _bioc() -> Any:
    require("bioc", "lxml", extra="formats", feature="BioC input and output")
    import bioc
    import bioc.biocjson
    import bioc.biocxml

    return bioc


# ----------------------------------------------------------------------------- reading
def _fail(where: str, fmt: str, reason: str) -> FormatError:
    return FormatError(Errors.E523.format(where=where, fmt=fmt, reason=reason))


def _int(value: Any, where: str, fmt: str, name: str) -> int:
    if isinstance(value, bool):
        raise _fail(where, fmt, f"{name} {value!r} is not an integer")
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise _fail(where, fmt, f"{name} {value!r} is not an integer") from None
    if out < 0:
        raise _fail(where, fmt, f"{name} {out} is negative")
    return out


def _ids(infons: Mapping[str, Any]) -> list[Normalization]:
    # genbel's linked output: ``identifier`` is the prediction; the gold, if the input had one, is
    # ``gold_identifier`` (so evaluating a linked file never scores the linker against itself)
    for key in ("gold_identifier",) if "candidates" in infons else _ID_KEYS:
        raw = infons.get(key)
        if raw is None:
            continue
        out = []
        for part in _ID_SPLIT.split(str(raw)):
            p = part.strip()
            if p not in _NO_ID:
                out.append(Normalization(infer_db_name(p), p))
        return out
    return []


def _annotations(bdoc: Any) -> Iterator[Any]:
    yield from bdoc.annotations
    for p in bdoc.passages:
        yield from p.annotations
        for s in p.sentences:
            yield from s.annotations


def bioc_document(bdoc: Any, where: str, fmt: str = "XML", offsets: str = "error") -> Document:
    """A :class:`Document` from a ``bioc.BioCDocument`` (``where`` names it in errors); ``offsets`` is
    what to do when an annotation's text is not at its location (as in
    :func:`genbel.data.pubtator.read_pubtator`: ``error``, ``warn`` or ``fix``)."""
    doc_id = str(bdoc.id) if bdoc.id is not None else ""
    if not doc_id:
        raise _fail(where, fmt, "a document has no id")
    loc = f"{where} (document {doc_id})"
    passages: list[Passage] = []
    for i, p in enumerate(bdoc.passages):
        ploc = f"{loc} passage #{i}"
        ptype = str((p.infons or {}).get("type") or (p.infons or {}).get("section_type") or "")
        pieces = [(p.offset, p.text)] if p.text else [(s.offset, s.text or "") for s in p.sentences]
        for j, (off, text) in enumerate(pieces):
            start = _int(off, ploc, fmt, "offset")
            if not isinstance(text, str):
                raise _fail(ploc, fmt, f"its text is {type(text).__name__}, not a string")
            if text:
                passages.append(Passage(f"{doc_id}-p{i}" + (f"s{j}" if j else ""), ptype, [text],
                                        [(start, start + len(text))]))
    doc = Document(doc_id, doc_id, passages, [])
    text = doc.text
    for n, ann in enumerate(_annotations(bdoc)):
        aid = str(ann.id) if ann.id not in (None, "") else f"T{n + 1}"
        aloc = f"{loc} annotation {aid!r}"
        if not ann.locations:
            raise _fail(aloc, fmt, "an annotation has no location")
        spans = []
        for lo in ann.locations:
            s = _int(lo.offset, aloc, fmt, "location offset")
            spans.append((s, s + _int(lo.length, aloc, fmt, "location length")))
        spans.sort()
        for s, e in spans:
            if e > len(text):
                raise _fail(aloc, fmt, f"location {s}-{e} ends after the document text ({len(text)} characters)")
        pieces = [text[s:e] for s, e in spans]
        if len(spans) == 1 and ann.text is not None and ann.text != pieces[0]:
            s, e, piece = _resolve_offsets(text, spans[0][0], spans[0][1], ann.text, offsets, loc, aid)
            spans, pieces = [(s, e)], [piece]
        infons = ann.infons or {}
        doc.entities.append(Entity(aid, str(infons.get("type") or ""), pieces, spans, _ids(infons)))
    return doc


def read_bioc_xml(
    path: str | Path, *, on_duplicate: str = "error", offsets: str = "error", encoding: str = "utf-8"
) -> list[Document]:
    """The documents of a BioC XML collection (see the module documentation); ``on_duplicate`` and
    ``offsets`` as in :func:`genbel.data.pubtator.read_pubtator`."""
    bioc = _bioc()
    from lxml import etree

    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    text = read_text(p, encoding=encoding)  # BOM dropped; bad bytes: E157 (file:line)
    try:
        collection = bioc.biocxml.loads(text)
    except etree.XMLSyntaxError as e:
        line = e.position[0] if e.position else 1
        raise _fail(f"{p}:{line}", "XML", e.msg or str(e)) from None
    except (etree.LxmlError, TypeError, ValueError, AttributeError, KeyError) as e:
        what = f"missing attribute {e.args[0]!r}" if isinstance(e, KeyError) else str(e)
        raise _fail(str(p), "XML", f"not a BioC collection ({what})") from None
    return _documents(collection.documents, str(p), "XML", on_duplicate, offsets)


def _documents(
    bdocs: Iterable[Any], where: str, fmt: str, on_duplicate: str = "error", offsets: str = "error"
) -> list[Document]:
    _check_option(on_duplicate, "on_duplicate", ON_DUPLICATE)
    _check_option(offsets, "offsets", OFFSET_MODES)
    docs: list[Document] = []
    seen: dict[str, int] = {}
    for i, bd in enumerate(bdocs):
        d = bioc_document(bd, f"{where}: document #{i}", fmt, offsets)
        if d.document_id in seen:
            first = docs[[x.document_id for x in docs].index(d.document_id)]
            if on_duplicate == "skip-identical" and first.to_dict() == d.to_dict():
                logger.warning("%s: document #%d (%s) repeats document #%d; skipped", where, i, d.document_id,
                               seen[d.document_id])
                continue
            raise _fail(where, fmt, f"document id {d.document_id!r} occurs twice (#{seen[d.document_id]} and #{i})")
        seen[d.document_id] = i
        docs.append(d)
    return docs


_DOC_DEFAULTS: dict[str, Any] = {"infons": {}, "relations": [], "annotations": []}
_PASSAGE_DEFAULTS: dict[str, Any] = {"infons": {}, "relations": [], "annotations": [], "sentences": []}


def _parse_doc(obj: Any, where: str) -> Any:
    """``bioc.biocjson`` parse of one document dict, with the lists PubTator3 may leave out filled in."""
    bioc = _bioc()
    if not isinstance(obj, dict):
        raise _fail(where, "JSON", f"a document is a JSON object, got {type(obj).__name__}")
    obj = {**_DOC_DEFAULTS, **obj}
    if "_id" in obj and "id" not in obj:  # PubTator3's search export
        obj["id"] = str(obj["_id"]).split("|")[0]
    passages = obj.get("passages")
    if not isinstance(passages, list):
        raise _fail(where, "JSON", "field 'passages' is missing or not a list")
    obj["passages"] = [{**_PASSAGE_DEFAULTS, **p} if isinstance(p, dict) else p for p in passages]
    for p in obj["passages"]:
        if not isinstance(p, dict):
            raise _fail(where, "JSON", "a passage is not a JSON object")
        for s in p["sentences"]:
            if isinstance(s, dict):
                s.setdefault("infons", {})
                s.setdefault("annotations", [])
                s.setdefault("relations", [])
        for a in [*p["annotations"], *obj["annotations"]]:
            if isinstance(a, dict):
                a.setdefault("infons", {})
                a.setdefault("text", None)
    try:
        return bioc.biocjson.decoder.parse_doc(obj)
    except KeyError as e:
        raise _fail(where, "JSON", f"missing field {e.args[0]!r}") from None
    except (TypeError, AttributeError, ValueError) as e:
        raise _fail(where, "JSON", f"not a BioC document ({e})") from None


def read_bioc_json(
    path: str | Path, *, on_duplicate: str = "error", offsets: str = "error", encoding: str = "utf-8"
) -> list[Document]:
    """The documents of a BioC JSON file: a collection, a list of documents, PubTator3's
    ``{"PubTator3": [...]}``, or one document (or collection) per line; options as :func:`read_bioc_xml`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Errors.E006.format(path=p))
    head = read_text(p, encoding=encoding, limit=1 << 16).lstrip()
    first = head.split("\n", 1)[0]
    one_per_line = False
    if first.startswith("{"):
        try:
            json.loads(first)
            one_per_line = "\n" in head.strip()
        except ValueError:
            one_per_line = False
    bdocs: list[Any] = []
    if one_per_line:
        for lineno, line in enumerate(iter_lines(p, encoding=encoding), 1):
            if line.strip():
                bdocs.extend(_objects(loads_json(line, p, lineno), f"{p}:{lineno}"))
    else:
        bdocs.extend(_objects(loads_json(read_text(p, encoding=encoding), p), str(p)))
    return _documents(bdocs, str(p), "JSON", on_duplicate, offsets)


def _objects(data: Any, where: str) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get("PubTator3"), list):
        data = data["PubTator3"]
    elif isinstance(data, dict) and isinstance(data.get("documents"), list):
        data = data["documents"]
    items = data if isinstance(data, list) else [data]
    return [_parse_doc(obj, f"{where}: document #{i}") for i, obj in enumerate(items)]


# ----------------------------------------------------------------------------- writing
def _to_bioc(ld: LinkedDocument, where: str, fmt: str) -> Any:
    bioc = _bioc()
    doc = ld.document
    bdoc = bioc.BioCDocument()
    bdoc.id = doc.document_id
    bpassages: list[tuple[int, int, Any]] = []
    for p in doc.passages:
        for t, (s, e) in zip(p.text, p.offsets):
            bp = bioc.BioCPassage()
            bp.offset = s
            bp.text = t
            if p.type:
                bp.infons["type"] = p.type
            bpassages.append((s, e, bp))
    bpassages.sort(key=lambda x: x[0])
    for _, _, bp in bpassages:
        bdoc.add_passage(bp)
    for le in ld.entities:
        e = le.entity
        ann = bioc.BioCAnnotation()
        ann.id = e.id
        ann.text = " ".join(e.text)
        ann.infons["type"] = e.type
        top = le.top
        ann.infons["identifier"] = top.id if top is not None else "-"
        if le.candidates:
            ann.infons["name"] = le.candidates[0].name
            ann.infons["score"] = _score(le.candidates[0].score)
            ann.infons["candidates"] = json.dumps([[c.id, c.name, c.score] for c in le.candidates], ensure_ascii=False)
            gold = [n.db_id for n in e.normalized if n.db_id.strip()]
            if gold:
                ann.infons["gold_identifier"] = ",".join(gold)
        for s, t in e.offsets:
            ann.add_location(bioc.BioCLocation(s, t - s))
        home = next((bp for s, t, bp in reversed(bpassages) if s <= e.start), None)
        (home if home is not None else bdoc).add_annotation(ann)
    if fmt == "XML":
        for value in [doc.document_id, *(bp.text for _, _, bp in bpassages),
                      *(str(v) for a in _annotations(bdoc) for v in a.infons.values())]:
            m = _NOT_XML.search(value)
            if m is not None:
                raise FormatError(Errors.E526.format(
                    where=where, doc_id=doc.document_id, fmt="BioC XML",
                    reason=f"its text holds U+{ord(m.group(0)):04X}, which XML 1.0 cannot hold",
                ))
    return bdoc


def _score(score: float | None) -> str:
    return "" if score is None else f"{score:.6g}"


def _collection_header() -> dict[str, Any]:
    return {"source": "genbel", "date": datetime.date.today().strftime("%Y%m%d"), "key": "genbel.key",
            "infons": {}}


def write_bioc_xml(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path) -> None:
    """Write documents (linked or not) as one BioC XML collection, atomically."""
    _bioc()
    from bioc.biocxml.encoder import encode_document
    from lxml import etree

    head = _collection_header()
    with atomic_open(path) as fh:
        fh.write("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n"
                 "<!DOCTYPE collection SYSTEM 'BioC.dtd'>\n<collection>")
        for key in ("source", "date", "key"):
            el = etree.Element(key)
            el.text = head[key]
            fh.write(etree.tostring(el, encoding="unicode"))
        for ld in iter_linked(docs, str(path)):
            tree = encode_document(_to_bioc(ld, str(path), "XML"))
            fh.write("\n" + etree.tostring(tree, encoding="unicode"))
        fh.write("\n</collection>\n")


def write_bioc_json(docs: Iterable[Document | LinkedDocument | Mapping[str, Any]], path: str | Path) -> None:
    """Write documents (linked or not) as one BioC JSON collection (one document a line), atomically."""
    bioc = _bioc()
    with atomic_open(path) as fh:
        _write_json(fh, docs, str(path), bioc)


def _write_json(fh: TextIO, docs: Iterable[Any], where: str, bioc: Any) -> None:
    head = json.dumps(_collection_header(), ensure_ascii=False)
    fh.write(head[:-1] + ', "documents": [')
    fh.writelines(("\n" if i == 0 else ",\n") + json.dumps(bioc.biocjson.toJSON(_to_bioc(ld, where, "JSON")),
                                                          ensure_ascii=False) for i, ld in enumerate(iter_linked(docs, where)))
    fh.write("\n]}\n")
