"""The top-level API: the names people guess, a cheap `import genbel`, and plain-string queries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import genbel
from genbel import Candidate, KnowledgeBase, MentionQuery, create_linker
from genbel.errors import InputError
from tests.helpers import raises_code

REPO = Path(__file__).resolve().parents[1]

EXPECTED = {
    "load_kb", "default_kb", "KnowledgeBase", "Concept", "load_corpus", "write_corpus", "Document", "Entity",
    "create_linker", "available_linkers", "default_linker", "Linker", "MentionQuery", "Candidate", "evaluate",
    "EvaluationResult", "GenbelError", "Errors", "__version__",
}


def test_all_names_resolve() -> None:
    assert EXPECTED <= set(genbel.__all__)
    for name in genbel.__all__:
        assert getattr(genbel, name) is not None, name
    from genbel import load_kb  # noqa: F401  (the import that used to fail)
    from genbel.data import load_corpus
    from genbel.eval import evaluate
    from genbel.kb import load_kb as kb_load_kb

    assert genbel.load_kb is kb_load_kb and genbel.load_corpus is load_corpus and genbel.evaluate is evaluate
    with pytest.raises(AttributeError):
        genbel.no_such_name  # noqa: B018


def test_linkers_package_exports() -> None:
    import genbel.linkers as linkers

    for name in linkers.__all__:
        if name not in ("DenseLinker", "GenerativeLinker", "DocumentLinker"):  # need torch: tested below
            assert getattr(linkers, name) is not None, name
    assert {"Linker", "MentionQuery", "Candidate", "create_linker", "available_linkers", "register_linker",
            "SparseLinker", "ExactMatchLinker"} <= set(linkers.__all__)


def test_import_genbel_is_light() -> None:
    """`import genbel`, listing linkers and creating exact/tfidf import no torch."""
    code = (
        "import sys, genbel\n"
        "from genbel import KnowledgeBase, Concept, create_linker, available_linkers\n"
        "assert 'dense' in available_linkers() and 'generative' in available_linkers()\n"
        "kb = KnowledgeBase([Concept('D1', 'heart attack')])\n"
        "create_linker('exact', kb); create_linker('tfidf', kb); create_linker('sparse', kb)\n"
        "import genbel.linkers, genbel.eval, genbel.pipeline, genbel.cli.main\n"
        "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'peft') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.fixture
def kb() -> KnowledgeBase:
    from genbel import Concept

    return KnowledgeBase(
        [Concept("D009203", "Myocardial Infarction", ["heart attack", "MI"]),
         Concept("D001943", "Breast Neoplasms", ["breast cancer"])],
        name="api",
    )


@pytest.mark.parametrize("linker", ["exact", "tfidf"])
def test_link_accepts_strings_pairs_and_queries(kb: KnowledgeBase, linker: str) -> None:
    lk = create_linker(linker, kb)
    context = "She had a heart attack last year."
    as_query = MentionQuery("heart attack", context=context, start=10, end=22)
    plain = lk.link(["heart attack"], k=1)
    pair = lk.link([("heart attack", context)], k=1)
    query = lk.link([as_query], k=1)
    assert plain == pair == query
    assert isinstance(plain[0][0], Candidate) and plain[0][0].concept_id == "D009203"
    mixed = lk.link(["breast cancer", ("heart attack", context), as_query], k=1)
    assert [c[0].concept_id for c in mixed] == ["D001943", "D009203", "D009203"]
    assert lk.link("breast cancer", k=1)[0][0].concept_id == "D001943"  # one string is one query
    with raises_code("E155", InputError) as e:
        lk.link([("heart attack", "no such mention here")])
    assert str(e.value).startswith("[E155] query 0")
    with raises_code("E156", InputError) as e:
        lk.link(["ok", 42])  # type: ignore[list-item]
    assert str(e.value).startswith("[E156] query 1")


def test_pair_becomes_a_query_with_offsets() -> None:
    from genbel.linkers import as_query

    q = as_query(("MI", "She had an MI."))
    assert (q.text, q.surface, q.context, q.start, q.end) == ("MI", "MI", "She had an MI.", 11, 13)
    assert as_query("MI") == MentionQuery("MI")


def test_wrong_argument_types_are_coded_errors(kb: KnowledgeBase) -> None:
    from genbel import evaluate
    from genbel.errors import ConfigError

    lk = create_linker("tfidf", kb)
    with raises_code("E156", InputError):
        lk.link(42)  # type: ignore[arg-type]
    with raises_code("E029", ConfigError, match="KnowledgeBase"):
        create_linker("tfidf", 3)  # type: ignore[arg-type]
    with raises_code("E029", ConfigError, match="got KnowledgeBase, list"):
        evaluate(kb, [], lk)  # type: ignore[arg-type]
    with raises_code("E029", ConfigError, match="load_corpus"):
        evaluate("corpus.txt", kb, lk)  # type: ignore[arg-type]
    docs = genbel.example_documents()
    with raises_code("E023", ConfigError, match="for k: must be >= 1"):
        evaluate(docs, kb, lk, k=0)
    with raises_code("E023", ConfigError, match="n_bootstrap"):
        evaluate(docs, kb, lk, n_bootstrap=0)


def test_create_linker_opens_a_kb_path(tmp_path: Path) -> None:
    p = tmp_path / "my.tsv"
    p.write_text("id\tname\tsynonyms\nX1\tHeart attack\tmyocardial infarction\nX2\tAsthma\t\n", encoding="utf-8")
    lk = create_linker("exact", p)
    assert [c.concept_id for c in lk.link(["myocardial infarction"], k=1)[0]] == ["X1"]
