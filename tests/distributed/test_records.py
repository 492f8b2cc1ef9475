"""Plain records and Parquet rows → documents (genbel.distributed.records)."""

from __future__ import annotations

import json

import pytest

from genbel.data.bigbio import read_bigbio_jsonl
from genbel.distributed.records import is_plain_records, read_jsonl_records, read_parquet_records, record_document
from genbel.errors import InputError
from tests.distributed.conftest import documents, write_records
from tests.helpers import raises_code


def test_a_text_record_is_the_plain_text_document(tmp_path):
    docs = documents()
    got = read_jsonl_records(write_records(tmp_path / "r.jsonl", docs))
    assert [d.to_dict() for d in got] == [d.to_dict() for d in docs]


def test_title_and_abstract_are_joined_as_in_pubtator():
    d = record_document({"pmid": 7, "title": "Breast cancer.", "abstract": "APC too."}, "x:1")
    assert d.document_id == "7" and d.text == "Breast cancer. APC too."
    assert [(p.type, p.offsets) for p in d.passages] == [("title", [(0, 14)]), ("abstract", [(15, 23)])]


def test_a_bigbio_record_is_read_as_the_bigbio_reader_reads_it(tmp_path):
    docs = documents(annotated=True)
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(d.to_dict()) + "\n" for d in docs), encoding="utf-8")
    assert not is_plain_records(path)
    assert [record_document(json.loads(line), "b").to_dict() for line in path.read_text().splitlines()] == [
        d.to_dict() for d in read_bigbio_jsonl(path)
    ]


@pytest.mark.parametrize(
    ("line", "code", "where"),
    [
        ('{"id": "a", "text": "x"}\n{"id": "b", "text": ', "E013", ":2"),
        ('{"id": "a", "text": "x"}\n{"text": "no id"}', "E584", ":2"),
        ('{"id": "a", "text": "x"}\n{"id": "b", "text": 3}', "E584", ":2"),
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "again"}', "E016", ":2"),
    ],
)
def test_a_bad_record_names_file_and_line(tmp_path, line, code, where):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with raises_code(code, InputError) as e:
        read_jsonl_records(path)
    assert f"{path}{where}" in str(e.value)


def test_parquet_rows_are_records(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    docs = documents()
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"id": [d.document_id for d in docs], "text": [d.text for d in docs],
                             "year": [2024] * len(docs)}), path)
    assert [d.to_dict() for d in read_parquet_records(path)] == [d.to_dict() for d in docs]
    pq.write_table(pa.table({"id": ["a", None], "text": ["x", "y"]}), path)
    with raises_code("E584", InputError, match="row 2"):
        read_parquet_records(path)
    path.write_bytes(b"PAR1 not parquet")
    with raises_code("E016", InputError, match="not a readable Parquet file"):
        read_parquet_records(path)
