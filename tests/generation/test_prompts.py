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


def test_lines_memory_keeps_first_names_in_order_and_drops_whole_chunks():
    f = PromptFormat(context_chars=0, include_group=False, memory_size=4, memory_style="lines")
    mem = [("a", "A1"), ("b", "B"), ("a", "A2"), ("c", "C")]
    # a repeat adds nothing: each mention keeps its first name and place
    assert f.memory_entries(mem) == [("a", "A1"), ("b", "B"), ("c", "C")]
    assert f.memory_block(mem) == "a is A1\nb is B\nc is C\n"  # no "---" line
    five = [(m, m.upper()) for m in "abcde"]
    # past memory_size (4) the oldest chunk of memory_size // 2 (2) goes at once
    assert f.memory_entries(five) == [("c", "C"), ("d", "D"), ("e", "E")]
    assert f.memory_entries(five + [("f", "F")]) == [("c", "C"), ("d", "D"), ("e", "E"), ("f", "F")]
    assert [f.chunk_start(n, 4) for n in range(9)] == [0, 0, 0, 0, 0, 2, 2, 4, 4]
    assert PromptFormat(memory_size=0, memory_style="lines").memory_entries(mem) == []
    with raises_code("E022", InputError, match="memory style"):
        PromptFormat(memory_style="stack")


def test_lines_prompts_of_a_document_extend_one_another():
    """With a mention-only context, each prompt is the previous one + the name chosen for its mention
    + the next mention's line, until a chunk of old entries is left out. (A repeated mention is not
    decoded again by DocumentLinker, and its memory entry adds nothing.)"""
    f = PromptFormat(context_chars=0, include_group=False, memory_size=4, memory_style="lines")
    mentions = ["FAP", "CRC", "FAP", "BC", "pain", "APC", "DMD"]
    memory: list[tuple[str, str]] = []
    prompts = []
    for m in mentions:
        prompts.append(f.prompt(MentionQuery(m, surface=m), memory))
        memory.append((m, f"{m} name"))
    assert prompts[0] == "[FAP]\nFAP is"  # no memory yet: the mention-level prompt
    assert prompts[1] == "FAP is FAP name\nCRC is"
    assert prompts[2] == "FAP is FAP name\nCRC is CRC name\nFAP is"  # the repeat
    assert prompts[3] == prompts[1] + " CRC name\nBC is"
    assert prompts[4] == prompts[3] + " BC name\npain is"
    assert prompts[5] == prompts[4] + " pain name\nAPC is"
    # 5 distinct entries > memory_size 4: the oldest chunk of 2 is left out at once
    assert prompts[6] == "BC is BC name\npain is pain name\nAPC is APC name\nDMD is"
    # a context window keeps the marked source line before the query, as the block layout does
    g = PromptFormat(context_chars=20, include_group=False, memory_style="lines")
    q = parse_markup("a [BC]{Disorders} case")
    assert g.prompt(q, [("FAP", "Polyposis")]) == "FAP is Polyposis\na [BC] case\nBC is"


def test_saved_formats_round_trip_and_old_ones_are_block():
    f = PromptFormat(context_chars=0, memory_style="lines")
    assert PromptFormat.from_dict(f.to_dict()) == f
    old = {k: v for k, v in f.to_dict().items() if k != "memory_style"}
    assert PromptFormat.from_dict(old).memory_style == "block"
