"""Tiny documents and linkers shared by the document-level, saliency and ensemble tests."""

from __future__ import annotations

from genbel.linkers.document import DocumentLinker
from genbel.linkers.generative import GenerativeLinker
from tests.conftest import make_doc
from tests.linkers.generative_tiny import tiny_kb, tiny_model, tiny_tokenizer


def docs():
    d1 = make_doc(
        "d1",
        "The patient had breast cancer and APC. Later breast cancer came back with pain.",
        [("breast cancer", "Disease", "D001"), ("APC", "Disease", "D003"),
         ("breast cancer", "Disease", "D001"), ("pain", "Disease", "D004")],
    )
    d2 = make_doc(
        "d2",
        "Ibuprofen and APC were given for colon cancer.",
        [("Ibuprofen", "Chemical", "C001"), ("APC", "Chemical", "C001"), ("colon cancer", "Disease", "D002")],
    )
    d3 = make_doc("d3", "A tumour of the breast.", [("tumour of the breast", "Disease", "D001")])
    return [d1, d2, d3]


def build(arch: str = "llama", seed: int = 0) -> GenerativeLinker:
    kb = tiny_kb()
    tok = tiny_tokenizer(kb)
    return GenerativeLinker(tiny_model(arch, len(tok), seed=seed), tok, kb)


def document_linker(arch: str = "llama", **kw) -> DocumentLinker:
    return DocumentLinker(build(arch), **kw)
