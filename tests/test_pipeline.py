"""genbel.pipeline: what `genbel link`/`evaluate`/`build-index` do, as library functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbel.data import write_corpus
from genbel.errors import ConfigError, InputError
from genbel.linkers.exact import ExactMatchLinker
from genbel.pipeline import (
    generative_options,
    kb_spec_for,
    linked_documents,
    linker_kb,
    load_augmented_kb,
    read_input,
    read_markup,
    uses_shipped_models,
    write_linked,
)
from tests.conftest import make_doc
from tests.helpers import raises_code


def test_read_markup_and_auto_input(tmp_path: Path) -> None:
    p = tmp_path / "m.txt"
    p.write_text("# comment\n\nshe had [breast cancer]{Disorders} last year\n[APC]{}\n", encoding="utf-8")
    docs = read_markup(p)
    assert [d.document_id for d in docs] == ["3", "4"]
    assert docs[0].entities[0].mention == "breast cancer" and docs[0].entities[0].type == "Disorders"
    assert docs[1].entities[0].type == ""
    again, is_markup = read_input(p)
    assert is_markup and [d.text for d in again] == [d.text for d in docs]
    empty = tmp_path / "e.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with raises_code("E016", InputError) as e:
        read_markup(empty)
    assert str(e.value).startswith("[E016]")
    with raises_code("E006", InputError) as e:
        read_input(tmp_path / "missing.txt")
    assert str(e.value).startswith("[E006]")


def test_linked_documents_and_write(tiny_kb, tmp_path: Path) -> None:
    docs = [make_doc("1", "colon cancer and ibuprofen", [("colon cancer", "Disease", "D002"),
                                                         ("ibuprofen", "Chemical", "C004")])]
    results = ExactMatchLinker(tiny_kb).link_documents(docs, k=3, entity_types=["Disease"])
    out = linked_documents(docs, results, tiny_kb.name)
    ents = out[0]["entities"]
    assert ents[0]["candidates"] == [
        {"code": "D002", "name": "Colorectal Neoplasms", "matched": "colon cancer", "score": 1.0}
    ]
    assert ents[0]["normalized"][0]["db_id"] == "D002" and ents[0]["gold_normalized"]
    assert "candidates" not in ents[1]  # filtered out by entity type: unchanged
    write_linked(out, tmp_path / "o.jsonl", "jsonl")
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])["document_id"] == "1"
    with raises_code("E022", ConfigError):
        write_linked(out, tmp_path / "o.xml", "xml")


def test_generative_options() -> None:
    assert generative_options("tfidf", constrained=False, num_beams=3) == {}
    assert generative_options(None, num_beams=3) == {}  # the default linker
    assert generative_options("generative", num_beams=3)["num_beams"] == 3  # the alias of generative:default
    assert generative_options("generative:run", num_beams=3) == {
        "constrained": True, "restrict_to_group": True, "num_beams": 3,
    }


def test_linker_kb_and_augmented_kb(tiny_kb, tmp_path: Path) -> None:
    tiny_kb.save(tmp_path / "run" / "kb")
    assert linker_kb(None, None, f"generative:{tmp_path / 'run'}").fingerprint() == tiny_kb.fingerprint()
    assert linker_kb(str(tmp_path / "run" / "kb"), None, "tfidf").name == "tiny"
    with raises_code("E014", ConfigError) as e:
        linker_kb(None, None, "tfidf")
    assert str(e.value).startswith("[E014]")
    assert linker_kb(None, None, None).name == "MEDIC"  # no linker named: the default, over the bundled KB
    corpus = tmp_path / "train.json"
    write_corpus([make_doc("1", "big bowel cancer", [("big bowel cancer", "Disease", "D002")])], corpus)
    kb, added = load_augmented_kb(tmp_path / "run" / "kb", augment=[corpus])
    assert added == [(str(corpus), 1)] and kb.lookup("big bowel cancer") == ["D002"]


def test_shipped_models_link_against_the_bundled_kb() -> None:
    from genbel.linkers.default import DEFAULT_LINKER

    for spec in (None, "default", DEFAULT_LINKER, "dense", "dense:default", "generative", "biosyn:default",
                 "dense:default+rerank:default"):
        assert uses_shipped_models(spec), spec
        assert kb_spec_for(None, spec) == "default"
    for spec in ("tfidf", "exact", "dense:runs/x", "dense:default+rerank:runs/r"):
        assert not uses_shipped_models(spec), spec
        with raises_code("E014", ConfigError, match="genbel evaluate: .*--kb"):
            kb_spec_for(None, spec, where="genbel evaluate")
    assert kb_spec_for("kb/medic", "tfidf") == kb_spec_for("kb/medic", None) == "kb/medic"


# ----------------------------------------------------------------------------- incremental, resumable output
from genbel.pipeline import link_to_file, output_format, partial_path

_TEXTS = [
    "breast cancer and APC", "colon cancer", "ibuprofen for breast tumor", "APC again", "colorectal cancer",
]


def _docs(n: int = 10):
    out = []
    for i in range(n):
        text = _TEXTS[i % len(_TEXTS)]
        mentions = [(w, "Disease", "D001") for w in ("breast cancer", "colon cancer", "APC", "ibuprofen",
                                                      "breast tumor", "colorectal cancer") if w in text]
        out.append(make_doc(f"doc{i}", text, mentions))
    return out


class _Interrupting:
    """Links like ``inner`` but raises KeyboardInterrupt on the call after ``calls`` calls."""

    def __init__(self, inner, calls: int) -> None:
        self.inner, self.calls = inner, calls

    def link_documents(self, docs, **kw):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.inner.link_documents(docs, **kw)


def test_output_format_from_extension(tmp_path: Path) -> None:
    assert output_format("a.json") == "json" and output_format("a.JSONL") == "jsonl"
    assert output_format("a.csv", "jsonl") == "jsonl"
    with raises_code("E455", ConfigError, match="'.csv'"):
        output_format("a.csv")
    with raises_code("E022", ConfigError):
        output_format("a.json", "xml")


def test_link_to_file_resumes_after_an_interrupt(tiny_kb, tmp_path: Path) -> None:
    docs = _docs(10)
    lk = ExactMatchLinker(tiny_kb)
    for ext in ("jsonl", "json"):
        whole = tmp_path / f"whole.{ext}"
        run = link_to_file(docs, lk, whole, kb_name="tiny", k=3, chunk_mentions=1, settings={"input": "x"})
        assert run.n_documents == 10 and run.resumed == 0 and not partial_path(whole).exists()

        out = tmp_path / f"out.{ext}"
        seen: list[tuple[int, int]] = []
        with pytest.raises(KeyboardInterrupt):
            link_to_file(docs, _Interrupting(lk, 4), out, kb_name="tiny", k=3, chunk_mentions=1,
                         settings={"input": "x"}, progress=lambda d, t, seen=seen: seen.append((d, t)))
        assert not out.exists() and seen[-1] == (4, 10)
        partial = partial_path(out)
        assert len(partial.read_text().splitlines()) == 1 + 4  # settings + 4 documents, each flushed
        with partial.open("a") as fh:  # a line cut by the interrupt
            fh.write('{"id": "doc4", "document_')
        # other settings: refused, nothing changed
        before = partial.read_bytes()
        with raises_code("E456", InputError, match="k"):
            link_to_file(docs, lk, out, kb_name="tiny", k=2, chunk_mentions=1, settings={"input": "x"},
                         resume=True)
        with raises_code("E456", InputError, match="input"):
            link_to_file(docs, lk, out, kb_name="tiny", k=3, chunk_mentions=1, settings={"input": "y"},
                         resume=True)
        assert partial.read_bytes() == before
        # another input order: refused
        with raises_code("E456", InputError, match="document 1"):
            link_to_file(docs[::-1], lk, out, kb_name="tiny", k=3, chunk_mentions=1,
                         settings={"input": "x"}, resume=True)
        run = link_to_file(docs, lk, out, kb_name="tiny", k=3, chunk_mentions=1, settings={"input": "x"},
                           resume=True)
        assert run.resumed == 4 and run.n_documents == 6
        assert out.read_bytes() == whole.read_bytes() and not partial.exists()


def test_link_to_file_without_resume_starts_over(tiny_kb, tmp_path: Path) -> None:
    docs = _docs(4)
    lk = ExactMatchLinker(tiny_kb)
    out = tmp_path / "o.jsonl"
    partial_path(out).write_text('{"genbel_partial_output": {}}\n{"document_id": "zzz"}\n')
    run = link_to_file(docs, lk, out, kb_name="tiny")
    assert run.resumed == 0 and [json.loads(x)["document_id"] for x in out.read_text().splitlines()] == [
        d.document_id for d in docs
    ]
    partial_path(out).write_text("garbage\n")
    with raises_code("E456", InputError, match="not a genbel partial output"):
        link_to_file(docs, lk, out, kb_name="tiny", resume=True)


def test_read_input_directory_is_not_file_not_found(tmp_path: Path) -> None:
    with raises_code("E454", InputError, match="is a directory"):
        read_input(tmp_path)


_KILLED_RUN = """
import sys, time
sys.path.insert(0, {root!r})
from genbel.linkers.exact import ExactMatchLinker
from genbel.pipeline import link_to_file
from tests.test_pipeline import _docs, _kb

class Slow(ExactMatchLinker):
    def link_documents(self, docs, **kw):
        time.sleep(0.05)
        return super().link_documents(docs, **kw)

link_to_file(_docs(200), Slow(_kb()), {out!r}, kb_name="tiny", k=3, chunk_mentions=1, settings={{"input": "x"}})
"""


def _kb():
    from genbel.kb import Concept, KnowledgeBase

    return KnowledgeBase(
        [Concept("D001", "Breast Neoplasms", ["breast cancer", "breast tumor"]),
         Concept("D002", "Colorectal Neoplasms", ["colorectal cancer", "colon cancer"]),
         Concept("D003", "APC", ["APC"]), Concept("C004", "Ibuprofen", ["ibuprofen"])],
        name="tiny",
    )


def test_sigkilled_link_resumes_to_the_uninterrupted_output(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    root = str(Path(__file__).resolve().parents[1])
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(root) / "src"), root])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN.format(root=root, out=str(out))], env=env)
    partial = partial_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and len(partial.read_bytes().splitlines()) >= 6:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and partial.exists()
    lk = ExactMatchLinker(_kb())
    run = link_to_file(_docs(200), lk, out, kb_name="tiny", k=3, chunk_mentions=1, settings={"input": "x"},
                       resume=True)
    assert 5 <= run.resumed < 200
    whole = tmp_path / "whole.jsonl"
    link_to_file(_docs(200), lk, whole, kb_name="tiny", k=3, chunk_mentions=1, settings={"input": "x"})
    assert out.read_bytes() == whole.read_bytes()
