"""A small corpus in every shard format and a tiny KB store, shared by the genbel.distributed tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genbel.data import write_corpus
from genbel.data.model import Document, Entity, Passage
from tests.conftest import make_tiny_kb

#: (id, text) of the corpus: mentions of the tiny KB's names, and a short form defined in its document
TEXTS = [
    ("d1", "Familial adenomatous polyposis (FAP) is inherited. Breast cancer was seen. Later FAP recurred."),
    ("d2", "Colon cancer and colorectal cancer in the family; ibuprofen eased the pain."),
    ("d3", "No finding today."),
    ("d4", "Breast tumor, breast cancer and APC: three mentions in one line."),
    ("d5", "Her colon cancer was treated with ibuprofen."),
    ("d6", "familial adenomatous polyposis again, then colorectal cancer."),
    ("d7", "Breast cancer, colon cancer, APC, ibuprofen, breast tumor, colorectal cancer, FAP."),
]


def text_doc(doc_id: str, text: str, mentions: tuple[str, ...] = ()) -> Document:
    """A one-passage document; ``mentions`` are annotated (type Disease) at their every occurrence."""
    ents = []
    for m in mentions:
        start = text.find(m)
        while start >= 0:
            ents.append(Entity(f"{doc_id}-T{len(ents) + 1}", "Disease", [m], [(start, start + len(m))]))
            start = text.find(m, start + 1)
    ents.sort(key=lambda e: e.offsets)
    return Document(doc_id, doc_id, [Passage(f"{doc_id}-text", "text", [text], [(0, len(text))])], ents)


def documents(annotated: bool = False) -> list[Document]:
    names = ("Familial adenomatous polyposis", "FAP", "Breast cancer", "breast cancer", "Colon cancer",
             "colon cancer", "colorectal cancer", "Breast tumor", "breast tumor", "APC")
    return [text_doc(i, t, names if annotated else ()) for i, t in TEXTS]


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_kb().save(tmp_path_factory.mktemp("kb") / "kb")


def write_shards(folder: Path, docs: list[Document], sizes: list[int], fmt: str = "bigbio-jsonl") -> list[Path]:
    """``docs`` cut into shards of ``sizes`` documents, written as ``part-N`` files in ``fmt``."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = {"bigbio-jsonl": ".jsonl", "pubtator": ".pubtator"}[fmt]
    paths = []
    start = 0
    for n, size in enumerate(sizes):
        p = folder / f"part-{n}{ext}"
        write_corpus(docs[start:start + size], p, fmt)
        paths.append(p)
        start += size
    assert start == len(docs)
    return paths


def write_records(path: Path, docs: list[Document]) -> Path:
    """Plain ``{id, text}`` JSON lines of ``docs``."""
    path.write_text("".join(json.dumps({"id": d.document_id, "text": d.text}) + "\n" for d in docs), encoding="utf-8")
    return path
