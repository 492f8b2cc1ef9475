"""The candidate trie of a KB: a :class:`TokenTrie` over tokenized names plus what they decode to.

Every distinct KB name (stripped) is one payload; the trie holds, for each name, the token ids of
``target(name)`` tokenized without special tokens and followed by the EOS id — exactly the sequence
a generative linker is trained to write. ``target`` is given by the caller (generative linking passes
:meth:`genbel.generation.prompts.PromptFormat.target`, i.e. ``" " + name``), so the trie depends on no
prompt format. A name shared by several concepts maps to all their codes (``text_to_code``, the
``text_to_code.json`` of SynCABEL).

On disk (:meth:`CandidateTrie.save`) a directory holds ``trie/`` (memory-mappable ``.npy``
arrays), ``text_to_code.json`` (name -> codes, in payload order), ``concepts.json`` (code ->
semantic groups and alternate ids) and ``meta.json`` (KB fingerprint, tokenizer, EOS id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from genbel.errors import ConfigError, Errors, FormatError, IndexMismatchError
from genbel.io import atomic_dir, write_json
from genbel.kb.base import KnowledgeBase
from genbel.kb.ids import normalize_id
from genbel.trie.tail_trie import TailTrie, build_trie, load_trie
from genbel.trie.token_trie import Restriction, TokenTrie

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_FILES = ("meta.json", "text_to_code.json", "concepts.json", "trie")


def _as_int_list(token_ids: Any) -> list[int]:
    if hasattr(token_ids, "tolist"):
        token_ids = token_ids.tolist()
    return [int(t) for t in token_ids]


class CandidateTrie:
    """A token trie over a KB's names, with the names and concept codes each path decodes to.

    Build with :meth:`from_kb`; ``names[payload]`` is the name of payload ``payload`` and
    :meth:`codes` its concept ids.
    """

    def __init__(
        self,
        trie: TokenTrie | TailTrie,
        text_to_code: dict[str, list[str]],
        concepts: dict[str, dict[str, list[str]]],
        *,
        kb_fingerprint: str,
        tokenizer_name: str,
        eos_token_id: int | None,
        pad_token_id: int | None = None,
    ) -> None:
        self.trie = trie
        self.text_to_code = text_to_code
        self.names: list[str] = list(text_to_code)
        self.concepts = concepts  # code -> {"groups": [...], "alt_ids": [...]}
        self.kb_fingerprint = kb_fingerprint
        self.tokenizer_name = tokenizer_name
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self._group_cache: dict[frozenset[str], Restriction] = {}
        self._pairs: tuple[np.ndarray, np.ndarray, dict[str, int]] | None = None
        self._alt: dict[str, str] | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_kb(
        cls,
        kb: KnowledgeBase,
        tokenizer: Any,
        *,
        target: Callable[[str], str],
        eos_token_id: int | None = None,
        show_progress: bool = True,
        batch_size: int = 4096,
        layout: str = "tail",
    ) -> CandidateTrie:
        """Tokenize every distinct KB name as ``target(name)`` + EOS and build the trie.

        ``target`` maps a name to the text the model writes for it (the generation target, e.g.
        :meth:`PromptFormat.target <genbel.generation.prompts.PromptFormat.target>`).

        ``tokenizer`` is a Hugging Face (fast) tokenizer, called on batches of targets with
        ``add_special_tokens=False``. ``eos_token_id`` defaults to ``tokenizer.eos_token_id``.
        ``layout`` is ``tail`` (:class:`~genbel.trie.tail_trie.TailTrie`, the compact default) or
        ``full`` (:class:`TokenTrie`); both decode the same.
        """
        eos = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
        tok_name = str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)
        if eos is None:
            raise ConfigError(Errors.E204.format(tokenizer=tok_name))
        eos = int(eos)
        text_to_code: dict[str, list[str]] = {}
        for name, cid in kb.name_pairs():
            key = name.strip()
            if not key:
                continue
            codes = text_to_code.setdefault(key, [])
            if cid not in codes:
                codes.append(cid)
        names = list(text_to_code)
        n = len(names)
        lengths = np.zeros(n, dtype=np.int64)
        chunks: list[np.ndarray] = []
        bar = tqdm(total=n, desc="tokenizing names", unit="name", disable=not show_progress)
        for i in range(0, n, batch_size):
            batch = [target(x) for x in names[i : i + batch_size]]
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            lens = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lens.sum()))
            # append EOS after each name
            ends = np.cumsum(lens + 1) - 1
            out = np.full(int(ends[-1]) + 1 if len(ends) else 0, eos, dtype=np.int64)
            keep = np.ones(len(out), dtype=bool)
            keep[ends] = False
            out[keep] = flat
            chunks.append(out)
            lengths[i : i + len(ids)] = lens + 1
            bar.update(len(ids))
        bar.close()
        tokens = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        trie = build_trie(tokens, offsets, layout=layout)
        concepts = {
            c.id: {"groups": list(c.semantic_groups), "alt_ids": [a for a in c.alt_ids if a != c.id]}
            for c in kb
        }
        pad = getattr(tokenizer, "pad_token_id", None)
        logger.info("candidate trie: %d names, %d nodes, %.1f MB", n, trie.num_nodes, trie.nbytes / 1e6)
        return cls(
            trie,
            text_to_code,
            concepts,
            kb_fingerprint=kb.fingerprint(),
            tokenizer_name=tok_name,
            eos_token_id=eos,
            pad_token_id=int(pad) if pad is not None else None,
        )

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self.names)

    def codes(self, payload: int) -> list[str]:
        """Concept ids of the name with payload id ``payload``."""
        return list(self.text_to_code[self.names[payload]])

    def decode(self, token_ids: Sequence[int] | Any) -> tuple[str, list[str]] | None:
        """Map generated target tokens (without the prompt) to ``(name, codes)``.

        Trailing EOS / pad tokens are accepted; ``None`` if the tokens are not a complete name.
        When several payloads share the tokens, the first name is returned with the codes of all.
        """
        stop = {t for t in (self.eos_token_id, self.pad_token_id) if t is not None}
        trie = self.trie
        node = trie.ROOT
        for t in _as_int_list(token_ids):
            nxt = trie.step(node, t)
            if nxt < 0:
                if t in stop:
                    break
                return None
            node = nxt
        if not trie.is_terminal(node) and self.eos_token_id is not None:
            nxt = trie.step(node, self.eos_token_id)
            if nxt >= 0:
                node = nxt
        if not trie.is_terminal(node):
            return None
        payloads = trie.values(node)
        codes: list[str] = []
        for p in payloads.tolist():
            for c in self.text_to_code[self.names[p]]:
                if c not in codes:
                    codes.append(c)
        return self.names[int(payloads[0])], codes

    # ------------------------------------------------------------------ restrictions
    def _pair_arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """(name index, concept index) for every (name, code) pair, and code -> concept index."""
        if self._pairs is None:
            code_index: dict[str, int] = {}
            names_idx: list[int] = []
            codes_idx: list[int] = []
            for i, name in enumerate(self.names):
                for c in self.text_to_code[name]:
                    names_idx.append(i)
                    codes_idx.append(code_index.setdefault(c, len(code_index)))
            self._pairs = (
                np.asarray(names_idx, dtype=np.int64),
                np.asarray(codes_idx, dtype=np.int64),
                code_index,
            )
        return self._pairs

    def _restrict_codes(self, code_mask: np.ndarray) -> Restriction:
        pair_name, pair_code, _ = self._pair_arrays()
        payload_mask = np.zeros(len(self.names), dtype=bool)
        payload_mask[pair_name[code_mask[pair_code]]] = True
        return Restriction.from_payload_mask(self.trie, payload_mask)

    def resolve_code(self, concept_id: str) -> str | None:
        """The code the trie uses for a main or alternate id (any accepted spelling), or ``None``."""
        _, _, code_index = self._pair_arrays()
        if concept_id in code_index:
            return concept_id
        if self._alt is None:
            self._alt = {a: cid for cid, info in self.concepts.items() for a in info.get("alt_ids", [])}
        for cand in (concept_id, normalize_id(concept_id)):
            if cand is None:
                continue
            if cand in code_index:
                return cand
            if cand in self._alt:
                return self._alt[cand]
        return None

    def restrict_to_concepts(self, concept_ids: Iterable[str]) -> Restriction:
        """Allow only the names of the given concepts (main or alternate ids; unknown ids are ignored)."""
        _, _, code_index = self._pair_arrays()
        mask = np.zeros(len(code_index), dtype=bool)
        unknown = 0
        for cid in concept_ids:
            code = self.resolve_code(cid)
            if code is None or code not in code_index:
                unknown += 1
                continue
            mask[code_index[code]] = True
        if unknown:
            logger.debug("restrict_to_concepts: %d ids not in the trie", unknown)
        return self._restrict_codes(mask)

    def restrict_to_groups(self, groups: Iterable[str]) -> Restriction:
        """Allow only names of concepts whose semantic groups intersect ``groups`` (cached)."""
        key = frozenset(groups)
        r = self._group_cache.get(key)
        if r is None:
            _, _, code_index = self._pair_arrays()
            mask = np.zeros(len(code_index), dtype=bool)
            for code, i in code_index.items():
                info = self.concepts.get(code)
                if info is not None and key.intersection(info.get("groups", ())):
                    mask[i] = True
            r = self._restrict_codes(mask)
            self._group_cache[key] = r
        return r

    @property
    def semantic_groups(self) -> list[str]:
        return sorted({g for info in self.concepts.values() for g in info.get("groups", ())})

    def constraint(
        self,
        prompt_length: int | Sequence[int],
        *,
        num_beams: int,
        restrictions: Sequence[Restriction | None] | None = None,
        logits_processor: bool = False,
    ) -> Any:
        """A :class:`~genbel.trie.constraint.TrieConstraint` (or, with ``logits_processor=True``, a
        :class:`~genbel.trie.constraint.TrieLogitsProcessor`) over this trie, with its EOS/pad ids."""
        from genbel.trie.constraint import TrieConstraint, TrieLogitsProcessor

        cls = TrieLogitsProcessor if logits_processor else TrieConstraint
        if self.eos_token_id is None:
            raise ConfigError(Errors.E204.format(tokenizer=self.tokenizer_name))
        return cls(
            self,
            prompt_length,
            num_beams=num_beams,
            restrictions=restrictions,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )

    # ------------------------------------------------------------------ persistence
    def meta(self) -> dict:
        return {
            "format": "genbel.trie.CandidateTrie",
            "format_version": FORMAT_VERSION,
            "kb_fingerprint": self.kb_fingerprint,
            "tokenizer_name": self.tokenizer_name,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "num_names": len(self.names),
            "num_nodes": self.trie.num_nodes,
        }

    def save(self, path: str | Path) -> Path:
        """Write the trie directory atomically (see the module docstring for its files)."""

        def write(d: Path) -> None:
            self.trie._write(_mkdir(d / "trie"))
            write_json(d / "text_to_code.json", self.text_to_code)
            write_json(d / "concepts.json", self.concepts)
            write_json(d / "meta.json", self.meta())

        return atomic_dir(path, write)

    @classmethod
    def load(
        cls, path: str | Path, mmap: bool = True, *, expected_fingerprint: str | None = None
    ) -> CandidateTrie:
        """Load a directory written by :meth:`save`.

        With ``expected_fingerprint`` (``kb.fingerprint()``), a trie built for another KB is
        refused with :class:`~genbel.errors.IndexMismatchError`.
        """
        path = Path(path)
        missing = [f for f in _FILES if not (path / f).exists()]
        if missing:
            raise FormatError(Errors.E200.format(path=path, missing=", ".join(missing)))
        meta = _read_json(path / "meta.json")
        if meta.get("format_version") != FORMAT_VERSION:
            raise FormatError(
                Errors.E205.format(path=path, found=meta.get("format_version"), expected=FORMAT_VERSION)
            )
        if expected_fingerprint is not None and meta.get("kb_fingerprint") != expected_fingerprint:
            raise IndexMismatchError(
                Errors.E010.format(expected=meta.get("kb_fingerprint"), actual=expected_fingerprint)
            )
        trie = load_trie(path / "trie", mmap=mmap)
        text_to_code = _read_json(path / "text_to_code.json")
        concepts = _read_json(path / "concepts.json")
        if len(text_to_code) != meta.get("num_names") or int(trie.seq_values.max(initial=-1)) >= len(
            text_to_code
        ):
            raise FormatError(
                Errors.E201.format(path=path, reason="text_to_code.json does not match the trie's payloads")
            )
        return cls(
            trie,
            text_to_code,
            concepts,
            kb_fingerprint=meta.get("kb_fingerprint", ""),
            tokenizer_name=meta.get("tokenizer_name", ""),
            eos_token_id=meta.get("eos_token_id"),
            pad_token_id=meta.get("pad_token_id"),
        )

    def __repr__(self) -> str:
        return (
            f"CandidateTrie(names={len(self.names)}, nodes={self.trie.num_nodes}, kb={self.kb_fingerprint}, "
            f"tokenizer={self.tokenizer_name!r})"
        )


def _mkdir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(Errors.E201.format(path=path, reason=f"invalid JSON: {e}")) from e
