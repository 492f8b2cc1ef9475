"""The BIO tagger on a tiny BERT built from a config: chunking, decoding, offsets, save/load as an
int8 delta, training (run framework, resume) that learns a toy corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genbel.errors import ConfigError, FormatError, InputError
from genbel.ner import create_detector
from genbel.ner.tagger import TokenTagger, chunk_spans, decode
from tests.conftest import make_doc
from tests.helpers import raises_code

LABELS = ["O", "B-Disorders", "I-Disorders"]


def test_chunks_cover_every_non_space_character() -> None:
    text = "Breast cancer is common. APC mutations cause FAP! x" + " word" * 40
    chunks = chunk_spans(text, max_chars=60)
    assert all(e - s <= 60 for s, e in chunks)
    covered = {i for s, e in chunks for i in range(s, e)}
    assert {i for i, c in enumerate(text) if not c.isspace()} <= covered
    assert text[chunks[0][0]:chunks[0][1]] == "Breast cancer is common."


def test_viterbi_never_starts_inside_and_argmax_repairs() -> None:
    p = np.array([[0.1, 0.2, 0.7], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.1, 0.6]])
    assert [s[:3] for s in decode(p, LABELS, "viterbi")] == [(0, 2, "Disorders"), (3, 5, "Disorders")]
    assert [s[:3] for s in decode(p, LABELS, "argmax")] == [(0, 2, "Disorders"), (3, 5, "Disorders")]
    assert decode(np.zeros((0, 3)), LABELS) == []
    with raises_code("E504", ConfigError):
        decode(p, LABELS, "crf")


def test_untrained_tagger_spans_are_offsets_into_the_text(encoder_dir: Path, tmp_path: Path) -> None:
    tagger = TokenTagger.from_base(encoder_dir, LABELS, max_length=60, max_chars=50)
    texts = ["Breast cancer and colon cancer. APC (adenomatous polyposis coli) is rare.", "", "x y z"]
    out = tagger.detect_batch(texts)
    assert len(out) == 3 and out[1] == []
    for text, spans in zip(texts, out):
        for s in spans:
            assert text[s.start:s.end] == s.text and s.source == "tagger" and 0 <= s.score <= 1
    saved = tagger.save(tmp_path / "t", base=encoder_dir)
    info = json.loads((saved / "genbel_ner.json").read_text())
    assert info["labels"] == LABELS and info["changed_tensors"] == 0  # untrained: only the head is stored
    again = create_detector(f"tagger:{saved}")
    assert again.detect_batch(texts) == out
    with raises_code("E507", InputError):
        tagger.detect_batch([b"bytes"])  # type: ignore[list-item]


def test_load_refuses_what_is_not_a_tagger(tmp_path: Path) -> None:
    with raises_code("E503", FormatError):
        TokenTagger.load(tmp_path)
    (tmp_path / "genbel_ner.json").write_text("{}")
    with raises_code("E503", FormatError):
        TokenTagger.load(tmp_path)


def _toy_docs() -> list:
    texts = [("the patient had gout today", "gout"), ("gout was seen in him", "gout"),
             ("no sign of lupus here", "lupus"), ("lupus and more", "lupus"), ("we saw it today", None)]
    return [make_doc(str(i), t, [(m, "Disease", "D1")] if m else []) for i, (t, m) in enumerate(texts * 3)]


def test_training_learns_a_toy_corpus_and_resumes(encoder_dir: Path, tmp_path: Path) -> None:
    from genbel.training.ner import NERConfig, train_ner

    docs = _toy_docs()
    cfg = NERConfig(base=str(encoder_dir), epochs=1, batch_size=4, lr=5e-3, head_lr=5e-2, train_layers=1,
                    max_length=60, max_chars=50, warmup=0.0, num_threads=1)
    train_ner(docs, tmp_path / "run", cfg, dev_docs=docs[:5])
    cfg.epochs = 25
    path = train_ner(docs, tmp_path / "run", cfg, dev_docs=docs[:5], resume=True)
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "epoch_loss" in r] == list(range(1, 26))  # epoch 1, then 2..25
    tagger = create_detector(f"tagger:{path}")
    assert [s.text for s in tagger.detect("the patient had gout today")] == ["gout"]
    info = json.loads((path / "genbel_ner.json").read_text())
    assert info["training"]["best"]["f1"] == pytest.approx(100.0)
    with raises_code("E352", ConfigError):  # other settings cannot resume this run
        cfg.lr = 1e-3
        train_ner(docs, tmp_path / "run", cfg, resume=True)


def test_training_refuses_nothing_to_learn(encoder_dir: Path, tmp_path: Path) -> None:
    from genbel.training.ner import NERConfig, train_ner

    with raises_code("E505", InputError):
        train_ner([make_doc("1", "no mention", [])], tmp_path / "r", NERConfig(base=str(encoder_dir)))
    with raises_code("E504", ConfigError):
        NERConfig(epochs=0).check()


@pytest.mark.slow
def test_shipped_disease_tagger_and_default_detector(tiny_kb) -> None:  # noqa: ANN001
    from genbel.ner import default_detector
    from genbel.ner.combine import CombinedDetector

    text = ("Familial adenomatous polyposis (FAP) is an inherited cancer syndrome. FAP patients develop "
            "colorectal cancer; breast cancer is rare.")
    tagger = create_detector("tagger:default")
    assert tagger.types == ["Disorders"]
    found = {s.text for s in tagger.detect(text)}
    assert {"Familial adenomatous polyposis", "colorectal cancer", "breast cancer"} <= found
    det = default_detector(tiny_kb)
    assert isinstance(det, CombinedDetector) and det.mode == "union"
    spans = det.detect(text)
    assert [s.text for s in spans if s.text == "FAP"] == ["FAP", "FAP"]
    for s in spans:
        assert text[s.start:s.end] == s.text
