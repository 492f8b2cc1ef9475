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
def test_shipped_disease_tagger_and_default_detector(tiny_kb) -> None:
    from genbel.ner import default_detector
    from genbel.ner.combine import CombinedDetector

    text = ("Familial adenomatous polyposis (FAP) is an inherited cancer syndrome. FAP patients develop "
            "colorectal cancer; breast cancer is rare.")
    tagger = create_detector("tagger:default")
    assert tagger.types == ["Disorders"]
    found = {s.text for s in tagger.detect(text)}
    assert {"Familial adenomatous polyposis", "colorectal cancer", "breast cancer"} <= found
    det = default_detector(tiny_kb)
    assert isinstance(det, CombinedDetector) and det.mode == "primary-types"
    spans = det.detect(text)
    assert [s.text for s in spans if s.text == "FAP"] == ["FAP", "FAP"]
    for s in spans:
        assert text[s.start:s.end] == s.text


def test_windows_own_every_character_once_and_overlap_their_neighbours() -> None:
    from genbel.ner.tagger import window_spans

    text = "Breast cancer is common. APC mutations cause FAP! Colon cancer follows. " * 6
    wins = window_spans(text, max_chars=100, context_chars=30)
    owned = [i for _, _, s, e in wins for i in range(s, e)]
    assert len(owned) == len(set(owned))  # owned once
    assert {i for i, c in enumerate(text) if not c.isspace()} <= set(owned)
    for cs, ce, s, e in wins:
        assert cs <= s < e <= ce and e - s <= 100 and ce - cs <= 160
    assert any(cs < s for cs, _, s, _ in wins[1:]) and any(ce > e for _, ce, _, e in wins[:-1])
    assert window_spans(text, 100, 0) == [(s, e, s, e) for _, _, s, e in wins]


def test_crf_nll_is_the_brute_force_negative_log_likelihood() -> None:
    import itertools

    import torch

    from genbel.ner.crf import crf_nll

    g = torch.Generator().manual_seed(0)
    em = torch.randn(2, 4, 3, generator=g)
    start, trans, end = torch.randn(3, generator=g), torch.randn(3, 3, generator=g), torch.randn(3, generator=g)
    tags = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)

    def score(row: int, ys: tuple[int, ...]) -> torch.Tensor:
        s = start[ys[0]] + em[row, 0, ys[0]] + end[ys[-1]]
        for i in range(1, len(ys)):
            s = s + trans[ys[i - 1], ys[i]] + em[row, i, ys[i]]
        return s

    want = []
    for row, n in ((0, 4), (1, 2)):
        log_z = torch.logsumexp(torch.stack([score(row, ys) for ys in itertools.product(range(3), repeat=n)]), 0)
        want.append(log_z - score(row, tuple(tags[row, :n].tolist())))
    assert float(crf_nll(em, tags, mask, start, trans, end)) == pytest.approx(float(torch.stack(want).mean()), abs=1e-5)


def test_crf_transition_scores_steer_viterbi() -> None:
    p = np.array([[0.2, 0.45, 0.35], [0.2, 0.45, 0.35]])
    logits = np.log(p)
    assert [s[:2] for s in decode(p, LABELS)] == [(0, 1), (1, 2)]  # B B
    crf = {"start": np.zeros(3), "end": np.zeros(3), "trans": np.array([[0, 0, 0], [0, -5, 5], [0, 0, 0]], float)}
    assert [s[:2] for s in decode(p, LABELS, emissions=logits, crf=crf)] == [(0, 2)]  # B I


def test_word_level_examples_label_only_the_first_piece_of_each_word(encoder_dir: Path) -> None:
    from genbel.training.ner import token_examples

    tagger = TokenTagger.from_base(encoder_dir, LABELS)
    doc = make_doc("1", "the patient had gouty arthritis today", [("gouty arthritis", "Disease", "D1")])
    [(_ids, labels)] = token_examples([doc], tagger.tokenizer, LABELS, word_level=True)
    enc = tagger.tokenizer(doc.text)
    words = enc.word_ids()
    firsts = [i for i, w in enumerate(words) if w is not None and (i == 0 or words[i - 1] != w)]
    assert [i for i, y in enumerate(labels) if y != -100] == firsts
    assert [LABELS[labels[i]] for i in firsts] == ["O", "O", "O", "B-Disorders", "I-Disorders", "O"]


def test_lowrank_delta_round_trips_and_quantised_loading_detects(encoder_dir: Path, tmp_path: Path) -> None:
    import torch

    tagger = TokenTagger.from_base(encoder_dir, LABELS, max_length=60, max_chars=50, word_level=True,
                                   windows=True, context_chars=10)
    name = "bert.encoder.layer.0.attention.self.query.weight"
    w = dict(tagger.model.named_parameters())[name]
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(w.shape[0], 2, generator=g) * 0.5, torch.randn(2, w.shape[1], generator=g)
    with torch.no_grad():
        w.add_(a @ b)
    head = {k: v for k, v in tagger.model.state_dict().items() if k.startswith("classifier.")}
    saved = tagger.save(tmp_path / "t", base=encoder_dir, lowrank={name: (a, b)}, head=head)
    info = json.loads((saved / "genbel_ner.json").read_text())
    assert info["format"] == "genbel-ner-delta-lowrank" and info["lowrank_rank"] == 2 and info["word_level"]
    again = TokenTagger.load(saved)
    assert torch.allclose(dict(again.model.named_parameters())[name], w, atol=1e-2)
    texts = ["Breast cancer and colon cancer. APC (adenomatous polyposis coli) is rare. " * 3]
    assert again.windows and again.context_chars == 10
    quick = TokenTagger.load(saved, quantize=True)
    for spans in quick.detect_batch(texts):
        for s in spans:
            assert texts[0][s.start:s.end] == s.text
    with raises_code("E504", ConfigError):
        tagger.save(tmp_path / "u", base=encoder_dir, lowrank={"nope.weight": (a, b)})


def test_lora_training_with_a_crf_learns_a_toy_corpus(encoder_dir: Path, tmp_path: Path) -> None:
    from genbel.training.ner import NERConfig, hold_out, train_ner

    docs = _toy_docs()
    cfg = NERConfig(base=str(encoder_dir), epochs=20, batch_size=4, lr=1e-2, head_lr=5e-2, lora_rank=4,
                    train_layers=1, max_length=60, max_chars=30, windows=True, context_chars=10,
                    word_level=True, crf=True, warmup=0.0, num_threads=1)
    path = train_ner(docs, tmp_path / "run", cfg, dev_docs=docs[:5])
    tagger = create_detector(f"tagger:{path}")
    assert tagger.crf is not None and tagger.word_level
    assert [s.text for s in tagger.detect("the patient had gout today")] == ["gout"]
    info = json.loads((path / "genbel_ner.json").read_text())
    assert info["format"] == "genbel-ner-delta-lowrank" and info["crf"]
    kept, held = hold_out(docs, 0.2, seed=1)
    assert len(held) == 3 and len(kept) == 12 and not {d.id for d in kept} & {d.id for d in held}
    assert hold_out(docs, 0.2, seed=1) == (kept, held)
    with raises_code("E504", ConfigError):
        NERConfig(crf=True).check()  # a CRF needs word labels


def test_onnx_runtime_gives_torchs_logits_and_spans(encoder_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    tagger = TokenTagger.from_base(encoder_dir, LABELS, max_length=60, max_chars=50)
    fast = TokenTagger(tagger.model, tagger.tokenizer, LABELS, max_length=60, max_chars=50, runtime="onnx")
    texts = ["Breast cancer and colon cancer. APC (adenomatous polyposis coli) is rare.", "x y", ""]
    for (p1, s1), (p2, s2) in zip(tagger.scores(texts), fast.scores(texts), strict=True):
        assert p1 == p2
        np.testing.assert_array_equal(s1[0], s2[0])
        np.testing.assert_allclose(s1[3], s2[3], atol=1e-4)  # logits of every word piece, padded batches
    for a, b in zip(fast.detect_batch(texts), tagger.detect_batch(texts), strict=True):
        assert [(s.start, s.end, s.text, s.type) for s in a] == [(s.start, s.end, s.text, s.type) for s in b]
        assert [s.score for s in a] == pytest.approx([s.score for s in b], abs=1e-4)
    for bad in ({"runtime": "tensorrt"}, {"runtime": "onnx", "quantize": True}):
        with raises_code("E504", ConfigError):
            TokenTagger(tagger.model, tagger.tokenizer, LABELS, **bad)
