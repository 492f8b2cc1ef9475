"""Fixtures for the training tests: a tiny KB, tiny documents, a tokenizer and tiny models built here."""

from __future__ import annotations

import pytest

from genbel.data.model import Document, Entity, Normalization, Passage
from genbel.kb.base import KnowledgeBase
from genbel.kb.concept import Concept
from tests.tiny_models import bpe_tokenizer, single_thread, token_ids
from tests.tiny_models import tiny_bart as build_tiny_bart
from tests.tiny_models import tiny_llama as build_tiny_llama

CONCEPTS = [
    Concept(
        "D001943",
        "Breast Neoplasms",
        ["Breast Cancer", "Mammary Carcinoma", "Breast Tumor"],
        semantic_groups=["Disorders"],
        definitions=["Tumors or cancer of the human breast."],
    ),
    Concept("D010051", "Ovarian Neoplasms", ["Ovarian Cancer", "Ovary Tumor"], semantic_groups=["Disorders"]),
    Concept(
        "D003920",
        "Diabetes Mellitus",
        ["Diabetes", "DM"],
        alt_ids=["OMIM:222100"],
        semantic_groups=["Disorders"],
    ),
    Concept("D006432", "Hemochromatosis", [], semantic_groups=["Disorders"]),
    Concept("D002318", "Cardiovascular Diseases", ["Heart Disease"], semantic_groups=["Disorders"]),
]


def make_kb() -> KnowledgeBase:
    return KnowledgeBase([Concept.from_dict(c.to_dict()) for c in CONCEPTS], name="tiny")


def doc(doc_id: str, text: str, mentions: list[tuple[str, str, str]]) -> Document:
    """A one-passage document; ``mentions`` = (surface, ids joined by |, type), found left to right."""
    ents = []
    pos = 0
    for i, (surface, ids, typ) in enumerate(mentions):
        s = text.index(surface, pos)
        pos = s + len(surface)
        norms = [Normalization("MESH", x) for x in ids.split("|")] if ids else []
        ents.append(Entity(f"{doc_id}-{i}", typ, [surface], [(s, s + len(surface))], norms))
    return Document(doc_id, doc_id, [Passage(f"{doc_id}-p", "abstract", [text], [(0, len(text))])], ents)


@pytest.fixture
def kb() -> KnowledgeBase:
    return make_kb()


@pytest.fixture
def docs() -> list[Document]:
    return [
        doc(
            "1",
            "Women with breast cancers and ovarian cancer were studied.",
            [("breast cancers", "D001943", "Disease"), ("ovarian cancer", "D010051", "Disease")],
        ),
        doc(
            "2",
            "Risk of breast and ovarian cancer in diabetes mellitus (DM) patients; DM was common.",
            [
                ("breast and ovarian cancer", "D001943|D010051", "CompositeMention"),
                ("diabetes mellitus", "D003920", "Disease"),
                ("DM", "D003920", "Disease"),
                ("DM", "D003920", "Disease"),
            ],
        ),
        doc(
            "3",
            "A case of hemochromatosis and of an unknown syndrome.",
            [("hemochromatosis", "D006432", "Disease"), ("unknown syndrome", "D999999", "Disease")],
        ),
    ]


def build_tokenizer():
    """A byte-level BPE tokenizer trained on the tiny KB and texts (deterministic, ~0.1 s)."""
    corpus = [n for c in CONCEPTS for n in c.names] + [
        "Women with breast cancers and ovarian cancer were studied.",
        "is also known as defined refers to",
        "Risk of breast and ovarian cancer in diabetes patients",
        "A case of hemochromatosis",
    ]
    return bpe_tokenizer(
        corpus * 3,
        vocab_size=400,
        special_tokens=["<pad>", "</s>", "<s>"],
        eos_token="</s>",
        pad_token="<pad>",
        bos_token="<s>",
    )


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


def tiny_llama(tokenizer, seed: int = 0):
    """A random tiny Llama over ``tokenizer`` (init range large enough for LoRA alone to move the logits)."""
    return build_tiny_llama(
        len(tokenizer), seed=seed, tie_word_embeddings=True, initializer_range=0.3, **token_ids(tokenizer)
    )


def tiny_bart(tokenizer, seed: int = 0):
    """A random tiny BART over ``tokenizer``."""
    return build_tiny_bart(len(tokenizer), seed=seed, **token_ids(tokenizer))


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory, tokenizer):
    """A saved tiny Llama checkpoint (model + tokenizer), usable as ``base_model``."""
    d = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(tokenizer).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def bart_dir(tmp_path_factory, tokenizer):
    d = tmp_path_factory.mktemp("tiny-bart")
    tiny_bart(tokenizer).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield
