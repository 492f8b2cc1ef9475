"""Property tests of the readers genbel annotate adds (plain text, BioC XML/JSON, brat) and of format
detection: any input (random bytes, mutated real files) ends in documents or a coded genbel error, and the
documents read can be written in every output format."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from genbel.data import example_documents
from genbel.data.bioc import read_bioc_json, read_bioc_xml
from genbel.data.brat import read_brat, write_brat
from genbel.data.formats import OUTPUT_FORMATS, read_documents, write_documents
from genbel.data.text import read_text_documents
from genbel.errors import GenbelError
from tests.fuzzing import inputs, outcome

FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = {"bigbio-json": "o.json", "bigbio-jsonl": "o.jsonl", "pubtator": "o.pubtator", "bioc-xml": "o.xml",
         "bioc-json": "o.bioc.json", "brat": "o", "csv": "o.csv", "tsv": "o.tsv"}


def _seed(fmt: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / NAMES[fmt]
        write_documents(example_documents()[:2], p, fmt)
        return p.read_bytes()


XML_SEED = _seed("bioc-xml")
JSON_SEED = _seed("bioc-json")
TEXT_SEED = "Familial adenomatous polyposis (FAP).\n\nSjögren syndrome – a second paragraph.\n".encode()
with tempfile.TemporaryDirectory() as _d:
    write_brat(example_documents()[:1], Path(_d) / "b")
    ANN_SEED = next((Path(_d) / "b").glob("*.ann")).read_bytes()
    TXT_OF_ANN = next((Path(_d) / "b").glob("*.txt")).read_bytes()


def _in_tmp(name: str, data: bytes, fn):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        res = outcome(lambda: fn(p))
        if isinstance(res, list):  # what was read can be written in every format (or a coded error)
            for fmt in OUTPUT_FORMATS:
                outcome(lambda fmt=fmt: write_documents(res, Path(d) / f"out-{NAMES[fmt]}", fmt))
        return res


@FAST
@given(inputs([XML_SEED]))
def test_bioc_xml_any_input(data: bytes) -> None:
    _in_tmp("in.xml", data, read_bioc_xml)


@FAST
@given(inputs([JSON_SEED]))
def test_bioc_json_any_input(data: bytes) -> None:
    _in_tmp("in.json", data, read_bioc_json)


@FAST
@given(inputs([TEXT_SEED]))
def test_text_any_input(data: bytes) -> None:
    _in_tmp("in.txt", data, read_text_documents)


@FAST
@given(inputs([ANN_SEED]))
def test_brat_any_ann(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "x.txt").write_bytes(TXT_OF_ANN)
        (Path(d) / "x.ann").write_bytes(data)
        outcome(lambda: read_brat(d))


@FAST
@given(inputs([XML_SEED, JSON_SEED, TEXT_SEED]))
def test_detection_then_reading_any_input(data: bytes) -> None:
    res = _in_tmp("in", data, lambda p: read_documents(p, keep_annotations=True))
    assert isinstance(res, (list, GenbelError))
