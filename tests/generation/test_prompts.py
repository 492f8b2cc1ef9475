import re

import pytest

from genbel.data.queries import MentionQuery
from genbel.errors import InputError
from genbel.generation.prompts import PromptFormat, parse_markup
from tests.helpers import raises_code


def test_parse_markup_offsets_and_group():
    q = parse_markup("[Myocardial infarction]{Disorders} requires immediate intervention")
    assert q.text == "Myocardial infarction"
    assert q.type == "Disorders"
    assert q.context == "Myocardial infarction requires immediate intervention"
    assert q.context[q.start : q.end] == "Myocardial infarction"


def test_parse_markup_empty_group_is_none():
    q = parse_markup("Patients with [FAP]{} were studied")
    assert q.type is None and q.context[q.start : q.end] == "FAP"


@pytest.mark.parametrize(
    "line,reason",
    [
        ("no markup at all", "no [mention]{Group} span"),
        ("[ibuprofen] is a drug", "must be followed by {Group}"),
        ("[a]{X} and [b]{Y}", "more than one marked mention"),
    ],
)
def test_parse_markup_errors_name_the_problem(line, reason):
    with raises_code("E011", InputError, match=re.escape(reason)):
        parse_markup(line, where="input.txt:3")
    with raises_code("E011", InputError, match="input.txt:3"):
        parse_markup(line, where="input.txt:3")


def test_syncabel_prompt_and_target():
    q = parse_markup("Germline mutations cause [FAP]{Disorders} in families")
    f = PromptFormat(style="syncabel", context_chars=None)
    assert f.source(q) == "Germline mutations cause [FAP]{Disorders} in families"
    assert f.prompt(q) == "Germline mutations cause [FAP]{Disorders} in families\nFAP is"
    assert PromptFormat.target("Adenomatous Polyposis Coli ") == " Adenomatous Polyposis Coli"


def test_genbioel_source_and_context_window():
    text = "word " * 100 + "breast cancer" + " tail" * 100
    s = text.index("breast cancer")
    q = MentionQuery("breast cancer", context=text, start=s, end=s + 13)
    f = PromptFormat(style="genbioel", context_chars=30)
    src = f.source(q)
    assert "[ST] breast cancer [ET]" in src
    assert len(src) <= 30 + 30 + len("[ST] breast cancer [ET]")
    assert not src.startswith("ord")  # cut at a word boundary
    assert PromptFormat(style="genbioel", context_chars=0).source(q) == "[ST] breast cancer [ET]"


def test_expanded_abbreviation_is_the_decoder_prefix():
    q = MentionQuery("familial adenomatous polyposis", surface="FAP")
    assert PromptFormat().prefix(q) == "familial adenomatous polyposis is"


def test_unknown_style_rejected():
    with raises_code("E022", InputError, match="prompt style"):
        PromptFormat(style="t5")


def test_memory_block_keeps_latest_distinct_entries():
    f = PromptFormat(memory_size=2)
    mem = [
        ("FAP", "Adenomatous Polyposis Coli"), ("CRC", "Colorectal Neoplasms"), ("FAP", "Polyposis"),
        ("BC", "Breast"),
    ]
    assert f.memory_block(mem) == "FAP is Polyposis\nBC is Breast\n---\n"
    assert f.memory_block([]) == ""
    q = parse_markup("a [BC]{Disorders} case")
    assert f.prompt(q, mem[:1]) == "FAP is Adenomatous Polyposis Coli\n---\na [BC]{Disorders} case\nBC is"
