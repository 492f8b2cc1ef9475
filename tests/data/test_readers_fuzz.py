"""Property tests of the corpus readers and writers (issue 14) and regression tests of the crashes it found.

Any input (random bytes, mutated real documents) ends in documents or a coded genbel error; documents
written and read back are the same. ``benchmarks/fuzz_readers.py`` runs the longer fuzzing.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genbel.data import (
    detect_corpus_format,
    example_documents,
    load_corpus,
    read_bigbio_json,
    read_bigbio_jsonl,
    read_pubtator,
    write_bigbio_json,
    write_bigbio_jsonl,
    write_pubtator,
)
from genbel.data.model import Document
from genbel.data.pubtator import format_pubtator, infer_db_name, parse_pubtator
from genbel.errors import FormatError, GenbelError, InputError
from genbel.generation.prompts import parse_markup
from genbel.pipeline import read_input, read_markup
from tests.fuzzing import inputs, outcome

#: bounded: the property tests of both reader test files cost ~15 s together
BOUNDED = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
FAST = settings(max_examples=60, **BOUNDED)

EXAMPLES = example_documents()
PUBTATOR_SEED = format_pubtator(EXAMPLES[:2]).encode("utf-8")
JSON_SEED = json.dumps([d.to_dict() for d in EXAMPLES[:1]]).encode("utf-8")
JSONL_SEED = "".join(json.dumps(d.to_dict()) + "\n" for d in EXAMPLES[:2]).encode("utf-8")
MARKUP_SEED = b"# comment\nFamilial [breast cancer]{Disorders} in BRCA1 carriers.\nA [cyst]{} here\n"


def _in_tmp(name: str, data: bytes, fn):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        return outcome(lambda: fn(p))


def _writable(res) -> None:
    """Documents read must also be writable (a lone surrogate would fail at the output)."""
    if isinstance(res, list):
        for d in res:
            json.dumps(d.to_dict(), ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------ any input: clean or coded
@FAST
@given(inputs([PUBTATOR_SEED]))
def test_pubtator_any_input(data: bytes) -> None:
    _writable(_in_tmp("in.txt", data, lambda p: read_pubtator(p, offsets="warn", on_duplicate="skip-identical")))


@FAST
@given(inputs([PUBTATOR_SEED]), st.integers(0, 2))
def test_pubtator_gz_any_input(data: bytes, corrupt: int) -> None:
    gz = gzip.compress(data, mtime=0)
    if corrupt == 1:
        gz = gz[: len(gz) // 2]
    elif corrupt == 2:
        gz = gz[:10] + bytes([gz[10] ^ 0xFF]) + gz[11:]
    _writable(_in_tmp("in.txt.gz", gz, read_pubtator))


@FAST
@given(inputs([JSON_SEED, JSONL_SEED]))
def test_bigbio_json_any_input(data: bytes) -> None:
    _writable(_in_tmp("in.json", data, read_bigbio_json))


@FAST
@given(inputs([JSONL_SEED, JSON_SEED]))
def test_bigbio_jsonl_any_input(data: bytes) -> None:
    _writable(_in_tmp("in.jsonl", data, read_bigbio_jsonl))


@FAST
@given(inputs([PUBTATOR_SEED, JSON_SEED, JSONL_SEED]))
def test_corpus_detection_any_input(data: bytes) -> None:
    _writable(_in_tmp("in.txt", data, lambda p: load_corpus(p, offsets="fix")))


@FAST
@given(inputs([MARKUP_SEED]))
def test_markup_file_any_input(data: bytes) -> None:
    _in_tmp("in.txt", data, read_markup)
    _in_tmp("in.txt", data, lambda p: read_input(p, "auto"))


@FAST
@given(st.text(max_size=80))
def test_parse_markup_any_line(line: str) -> None:
    outcome(lambda: parse_markup(line, "x:1"))


# ------------------------------------------------------------------ round trips
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=40)
_IDS = st.sampled_from(["D003924", "MESH:C535662", "OMIM:114480", "613097", "UMLS:C0011849", "-1"])


@st.composite
def pubtator_docs(draw) -> str:
    """PubTator text of 1-3 documents whose mentions lie at their offsets."""
    blocks = []
    for pmid in draw(st.lists(st.integers(1, 10**8), min_size=1, max_size=3, unique=True)):
        title = draw(_TEXT.filter(lambda t: t.strip()))
        abstract = draw(_TEXT)
        text = title + " " + abstract
        rows = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
        for _ in range(draw(st.integers(0, 3))):
            s = draw(st.integers(0, len(text) - 1))
            e = draw(st.integers(s + 1, min(len(text), s + 15)))
            mention = text[s:e]
            if any(c in mention for c in "\t") or not mention:
                continue
            ids = "|".join(draw(st.lists(_IDS, min_size=1, max_size=2)))
            rows.append(f"{pmid}\t{s}\t{e}\t{mention}\tDisease\t{ids}")
        blocks.append("\n".join(rows) + "\n")
    return "\n".join(blocks)


def _dicts(docs: list[Document]) -> list[dict]:
    return [d.to_dict() for d in docs]


@FAST
@given(pubtator_docs())
def test_round_trip_pubtator_and_bigbio(text: str) -> None:
    docs = parse_pubtator(text)
    with tempfile.TemporaryDirectory() as d:
        for name, write, read in [
            ("out.pubtator", write_pubtator, read_pubtator),
            ("out.json", write_bigbio_json, read_bigbio_json),
            ("out.jsonl", write_bigbio_jsonl, read_bigbio_jsonl),
        ]:
            p = Path(d) / name
            write(docs, p)
            again = read(p)
            assert _dicts(again) == _dicts(docs), name
            assert _dicts(load_corpus(p)) == _dicts(docs), name


_PLAIN = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="[]{}"), max_size=30)


@FAST
@given(_PLAIN, _PLAIN.filter(lambda m: m.strip()), _PLAIN, _PLAIN.map(lambda g: g.strip()))
def test_round_trip_markup(left: str, mention: str, right: str, group: str) -> None:
    q = parse_markup(f"{left}[{mention}]{{{group}}}{right}")
    assert (q.text, q.context, q.type) == (mention, left + mention + right, group or None)
    assert q.context[q.start : q.end] == mention


def test_ids_infer_their_db() -> None:  # the round trip above relies on it
    assert [infer_db_name(x) for x in ("D003924", "613097", "UMLS:C0011849")] == ["MESH", "OMIM", "UMLS"]


# ------------------------------------------------------------------ regressions (issue 14, item 1 and 7)
BAD_UTF8 = b"123|t|Colon cancer\n123|a|An abstract \xff here\n"


def _code(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)[:6]


@pytest.mark.parametrize(
    "name, read",
    [
        ("in.txt", read_pubtator),
        ("in.txt.gz", read_pubtator),
        ("in.txt", detect_corpus_format),
        ("in.txt", lambda p: load_corpus(p, "pubtator")),
    ],
)
def test_invalid_utf8_names_file_and_line(tmp_path: Path, name: str, read) -> None:
    p = tmp_path / name
    p.write_bytes(gzip.compress(BAD_UTF8) if name.endswith(".gz") else BAD_UTF8)
    with pytest.raises(FormatError) as exc:
        read(p)
    assert _code(exc) == "[E157]"
    assert f"{p}:2:" in str(exc.value) and "\\xff" in str(exc.value)


def test_invalid_utf8_bigbio(tmp_path: Path) -> None:
    p = tmp_path / "in.json"
    p.write_bytes(b'[\n{"id": "1",\n "document_id": "\xc3"}]')
    with pytest.raises(FormatError, match=r"^\[E157\] .*in\.json:3:"):
        read_bigbio_json(p)
    q = tmp_path / "in.jsonl"
    q.write_bytes(JSONL_SEED + b'{"id": "\xed\xa0\x80"}\n')
    with pytest.raises(FormatError, match=r"^\[E157\] .*in\.jsonl:3:"):
        read_bigbio_jsonl(q)


def test_invalid_utf8_markup(tmp_path: Path) -> None:
    p = tmp_path / "in.txt"
    p.write_bytes(b"A [cyst]{Disorders}\nthe [\xffcyst]{}\n")
    with pytest.raises(FormatError, match=r"^\[E157\] .*in\.txt:2:"):
        read_markup(p)
    with pytest.raises(FormatError, match=r"^\[E157\]"):
        read_input(p, "auto")


@pytest.mark.parametrize("depth", [101, 5000, 100_000])
def test_deep_json(tmp_path: Path, depth: int) -> None:
    deep = "[" * depth + "]" * depth
    p = tmp_path / "in.jsonl"
    p.write_text(JSONL_SEED.decode() + deep + "\n")
    with pytest.raises(FormatError, match=r"^\[E013\] .*in\.jsonl:3: .*nested deeper than 100 levels"):
        read_bigbio_jsonl(p)
    q = tmp_path / "in.json"
    q.write_text(deep)
    with pytest.raises(FormatError, match=r"^\[E013\] .*in\.json:1:"):
        read_bigbio_json(q)
    r = tmp_path / "auto.txt"
    r.write_text(deep + "\n")
    with pytest.raises(FormatError, match=r"^\[E013\]"):
        load_corpus(r)  # the format detection used to hit RecursionError


def test_huge_int_json(tmp_path: Path) -> None:
    d = EXAMPLES[0].to_dict()
    line = json.dumps(d).replace('"offsets": [[0,', '"offsets": [[' + "9" * 5000 + ",", 1)
    assert "9" * 5000 in line
    p = tmp_path / "in.jsonl"
    p.write_text(line + "\n")
    with pytest.raises(FormatError, match=r"^\[E013\] .*in\.jsonl:1: .*4300"):
        read_bigbio_jsonl(p)


@pytest.mark.parametrize("value", [5, "D1", {"db_name": "MESH", "db_id": "D1"}, True])
def test_bigbio_normalized_not_a_list(tmp_path: Path, value) -> None:
    d = EXAMPLES[0].to_dict()
    d["entities"][0]["normalized"] = value
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(d) + "\n")
    with pytest.raises(FormatError, match=r"^\[E016\] .*in\.jsonl:1 .*entity .*'normalized' must be list"):
        read_bigbio_jsonl(p)


def test_lone_surrogate_rejected_at_read(tmp_path: Path) -> None:
    d = EXAMPLES[0].to_dict()
    d["entities"][1]["type"] = "Dis\ud800ease"
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(d) + "\n")  # ensure_ascii: written as the escape \ud800
    with pytest.raises(FormatError, match=r"^\[E159\] .*in\.jsonl:1: field entities\[1\]\.type"):
        read_bigbio_jsonl(p)
    q = tmp_path / "in.json"
    q.write_text(json.dumps([d]))
    with pytest.raises(FormatError, match=r"^\[E159\] .*in\.json: field \[0\]\.entities\[1\]\.type"):
        read_bigbio_json(q)


def test_paired_surrogate_escape_is_fine(tmp_path: Path) -> None:
    d = EXAMPLES[0].to_dict()
    d["entities"][0]["type"] = "Disease \U0001f600"  # written as \ud83d\ude00
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(d) + "\n")
    assert read_bigbio_jsonl(p)[0].entities[0].type == "Disease \U0001f600"


@pytest.mark.parametrize("how", ["truncated", "bad-header", "bad-data"])
def test_bad_gzip_names_file(tmp_path: Path, how: str) -> None:
    gz = gzip.compress(PUBTATOR_SEED * 20, mtime=0)
    gz = {"truncated": gz[: len(gz) // 2], "bad-header": b"\x1f\x8b\x09" + gz[3:],
          "bad-data": gz[:30] + bytes(40) + gz[70:]}[how]
    p = tmp_path / "in.pubtator.gz"
    p.write_bytes(gz)
    for read in (read_pubtator, load_corpus):
        with pytest.raises(InputError) as exc:
            read(p)
        assert _code(exc) in ("[E158]", "[E157]") and str(p) in str(exc.value)


def test_bom_is_stripped(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    for name, data, read in [
        ("in.txt", PUBTATOR_SEED, read_pubtator),
        ("in.txt.gz", gzip.compress(bom + PUBTATOR_SEED), read_pubtator),
        ("in.json", JSON_SEED, read_bigbio_json),
        ("in.jsonl", JSONL_SEED, read_bigbio_jsonl),
        ("auto.txt", PUBTATOR_SEED, load_corpus),
        ("auto.jsonl", JSONL_SEED, load_corpus),
    ]:
        plain, with_bom = tmp_path / ("plain-" + name), tmp_path / name
        plain.write_bytes(gzip.compress(PUBTATOR_SEED) if name.endswith(".gz") else data)
        with_bom.write_bytes(data if name.endswith(".gz") else bom + data)
        assert _dicts(read(with_bom)) == _dicts(read(plain)), name
    assert _dicts(parse_pubtator("\ufeff" + PUBTATOR_SEED.decode())) == _dicts(parse_pubtator(PUBTATOR_SEED.decode()))
    m = tmp_path / "markup.txt"
    m.write_bytes(bom + MARKUP_SEED)
    assert read_markup(m)[0].entities[0].text == ["breast cancer"]
    assert read_input(m, "auto")[1] is True


def test_genbel_errors_are_coded() -> None:
    with pytest.raises(GenbelError, match=r"^\[E"):
        parse_markup("no mention here")


def test_bigbio_far_passage_offsets(tmp_path: Path) -> None:
    # offsets [10**11, 10**11 + 3] made Document.text pad 10**11 spaces: MemoryError
    d = {"id": "1", "document_id": "1", "entities": [],
         "passages": [{"id": "p", "type": "t", "text": ["abc"], "offsets": [[10**11, 10**11 + 3]]}]}
    p = tmp_path / "in.jsonl"
    p.write_text(json.dumps(d) + "\n")
    with pytest.raises(FormatError, match=r"^\[E016\] .*in\.jsonl:1 \(document 1\) passage #0: offsets "
                                          r"100000000000-100000000003 leave more than 1,000,000 characters"):
        read_bigbio_jsonl(p)
    d["passages"][0]["offsets"] = [[999_000, 999_003]]  # a gap within the bound is padded as before
    p.write_text(json.dumps(d) + "\n")
    assert read_bigbio_jsonl(p)[0].text == " " * 999_000 + "abc"
