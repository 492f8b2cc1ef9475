"""A synthetic, UMLS-shaped knowledge base for scale benchmarks (issue #18: 3.4M concepts, 7M names).

The UMLS itself cannot be redistributed, so benchmarks of the KB store, the trie, the sparse and dense
indexes and the dictionary matcher at UMLS size run on a generated KB whose *shape* follows the
Metathesaurus's English subset:

* **words**: a Zipfian vocabulary learned from real biomedical names (:class:`NameStatistics`, e.g. from
  MEDIC/CTD/MeSH names): the real words with their frequencies, plus a long tail of new words made by
  splicing the start of one real word onto the end of another (UMLS English has ~2M distinct words, far
  more than any disease vocabulary), drawn with a Zipf law;
* **name lengths**: the word-count distribution of the real names (learned), with heads shared between
  names (40 % of names start with the first 1–3 words of a real name: "Malignant neoplasm of ...");
* **concepts**: about 2.06 names per concept (UMLS 2024AA ENG: ~3.4M CUIs, ~7M distinct strings): the
  preferred name plus variants of it (word order inverted with a comma, a UMLS suffix such as
  ``", NOS"`` or ``" (disorder)"``, a word dropped or replaced) and unrelated synonyms;
* **shared synonyms**: a share of synonyms (default 1 %) is copied from another concept (ambiguous names);
* **semantic types**: TUIs drawn with rough UMLS shares, mapped to semantic groups.

Generation is deterministic for a seed and streams: concepts come in blocks, each from its own random
generator ``(seed, block)``, so a 7M-name KB is written without holding it in memory
(:func:`write_synthetic_kb`: genbel JSONL, TSV, or UMLS ``MRCONSO.RRF`` + ``MRSTY.RRF``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genbel.errors import ConfigError, Errors, InputError
from genbel.io import atomic_directory, atomic_open
from genbel.kb.concept import Concept
from genbel.kb.semantic_groups import groups_of_tuis

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "tsv", "rrf")

#: UMLS-style suffixes and their rough shares among variant names
SUFFIXES = (
    ", NOS",
    " (disorder)",
    " (finding)",
    " (procedure)",
    " (substance)",
    " (morphologic abnormality)",
    ", unspecified",
    " [Ambiguous]",
    ", initial encounter",
    " of left side",
    " of right side",
)

#: semantic types with rough shares of UMLS 2024AA concepts (the long tail lumped into the listed ones)
TUI_SHARES: tuple[tuple[str, float], ...] = (
    ("T204", 0.16),  # Eukaryote
    ("T109", 0.13),  # Organic Chemical
    ("T116", 0.10),  # Amino Acid, Peptide, or Protein
    ("T121", 0.09),  # Pharmacologic Substance
    ("T047", 0.07),  # Disease or Syndrome
    ("T028", 0.05),  # Gene or Genome
    ("T061", 0.05),  # Therapeutic or Preventive Procedure
    ("T033", 0.05),  # Finding
    ("T037", 0.04),  # Injury or Poisoning
    ("T023", 0.04),  # Body Part, Organ, or Organ Component
    ("T191", 0.03),  # Neoplastic Process
    ("T059", 0.03),  # Laboratory Procedure
    ("T201", 0.03),  # Clinical Attribute
    ("T074", 0.03),  # Medical Device
    ("T007", 0.02),  # Bacterium
    ("T005", 0.01),  # Virus
    ("T184", 0.02),  # Sign or Symptom
    ("T060", 0.02),  # Diagnostic Procedure
    ("T170", 0.02),  # Intellectual Product
    ("T046", 0.01),  # Pathologic Function
)


@dataclass
class NameStatistics:
    """Word frequencies, word-count distribution and name heads learned from real names."""

    words: list[str]
    word_counts: list[int]
    #: ``length_counts[k]``: number of real names with ``k`` words (index 0 unused)
    length_counts: list[int]
    heads: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_names(cls, names: Iterable[str], max_heads: int = 200_000) -> NameStatistics:
        freq: Counter[str] = Counter()
        lengths: Counter[int] = Counter()
        heads: list[list[str]] = []
        for n in names:
            ws = n.split()
            if not ws:
                continue
            freq.update(ws)
            lengths[min(len(ws), 40)] += 1
            if len(heads) < max_heads and len(ws) > 1:
                heads.append(ws[:3])
        if not freq:
            raise InputError(Errors.E600.format(reason="no words in the names given"))
        words = [w for w, _ in freq.most_common()]
        length_counts = [0] * (max(lengths) + 1)
        for k, c in lengths.items():
            length_counts[k] = c
        return cls(words, [freq[w] for w in words], length_counts, heads)

    def to_json(self) -> dict:
        return {"words": self.words, "word_counts": self.word_counts, "length_counts": self.length_counts,
                "heads": self.heads}

    @classmethod
    def from_json(cls, d: dict) -> NameStatistics:
        return cls(list(d["words"]), [int(x) for x in d["word_counts"]], [int(x) for x in d["length_counts"]],
                   [list(h) for h in d.get("heads", [])])


@dataclass
class SyntheticKBConfig:
    """Size and shape of a synthetic KB; ``concepts * names_per_concept`` names in all (before dedup)."""

    concepts: int = 3_400_000
    names_per_concept: float = 2.06
    seed: int = 0
    #: share of words drawn from the spliced tail vocabulary instead of the real words
    new_word_share: float = 0.12
    #: size of the spliced tail vocabulary (Zipf-distributed, exponent ``zipf_s``)
    new_words: int = 1_500_000
    zipf_s: float = 1.1
    head_share: float = 0.4
    #: share of synonyms that are variants of the preferred name (the rest are fresh names)
    variant_share: float = 0.6
    shared_synonym_share: float = 0.01
    block: int = 50_000

    def check(self) -> None:
        if self.concepts < 1:
            raise ConfigError(Errors.E601.format(field="concepts", value=self.concepts, constraint=">= 1"))
        if self.names_per_concept < 1:
            raise ConfigError(Errors.E601.format(field="names_per_concept", value=self.names_per_concept,
                                                 constraint=">= 1"))
        for f in ("new_word_share", "head_share", "variant_share", "shared_synonym_share"):
            v = getattr(self, f)
            if not 0 <= v <= 1:
                raise ConfigError(Errors.E601.format(field=f, value=v, constraint="between 0 and 1"))


class SyntheticKB:
    """Streams UMLS-shaped :class:`Concept` objects (ids ``S0000001``...); deterministic per seed."""

    def __init__(self, stats: NameStatistics, config: SyntheticKBConfig | None = None) -> None:
        self.stats = stats
        self.config = config or SyntheticKBConfig()
        self.config.check()
        p = np.asarray(stats.word_counts, dtype=np.float64)
        self._real_p = p / p.sum()
        lc = np.asarray(stats.length_counts, dtype=np.float64)
        self._len_p = lc / lc.sum()
        self._tui_p = np.array([s for _, s in TUI_SHARES])
        self._tui_p /= self._tui_p.sum()
        self._tails: list[str] | None = None

    def _tail_words(self) -> list[str]:
        """The spliced vocabulary: start of a real word + end of another (fixed by the seed)."""
        if self._tails is None:
            rng = np.random.default_rng([self.config.seed, 2**31 - 1])
            real = [w for w in self.stats.words if len(w) >= 4 and w.isalpha()] or self.stats.words
            n = self.config.new_words
            a = rng.integers(0, len(real), n)
            b = rng.integers(0, len(real), n)
            out: list[str] = []
            for i, j in zip(a.tolist(), b.tolist(), strict=True):
                x, y = real[i], real[j]
                out.append(x[: max(2, len(x) // 2)] + y[len(y) // 2 :].lower())
            self._tails = out
        return self._tails

    def _words(self, rng: np.random.Generator, n: int) -> list[str]:
        real = rng.choice(len(self._real_p), size=n, p=self._real_p)
        new = rng.random(n) < self.config.new_word_share
        out = [self.stats.words[i] for i in real.tolist()]
        k = int(new.sum())
        if k:
            tails = self._tail_words()
            z = rng.zipf(self.config.zipf_s, k) - 1
            z = np.minimum(z, len(tails) - 1)
            for pos, t in zip(np.flatnonzero(new).tolist(), z.tolist(), strict=True):
                out[pos] = tails[t]
        return out

    def _fresh_names(self, rng: np.random.Generator, n: int) -> list[str]:
        nw = rng.choice(len(self._len_p), size=n, p=self._len_p)
        nw = np.maximum(nw, 1)
        words = self._words(rng, int(nw.sum()))
        heads = rng.random(n) < self.config.head_share if self.stats.heads else np.zeros(n, dtype=bool)
        head_src = rng.integers(0, max(1, len(self.stats.heads)), n)
        head_k = rng.integers(1, 4, n)
        out: list[str] = []
        pos = 0
        for i in range(n):
            k = int(nw[i])
            ws = words[pos : pos + k]
            pos += k
            if heads[i] and k > 1:
                h = self.stats.heads[int(head_src[i])][: min(int(head_k[i]), k - 1)]
                ws = h + ws[len(h) :]
            out.append(" ".join(ws))
        return out

    def _variant(self, rng: np.random.Generator, name: str) -> str:
        ws = name.split()
        kind = int(rng.integers(0, 4))
        if kind == 0 and len(ws) > 1:  # "Neoplasm, malignant" style inversion
            k = int(rng.integers(1, len(ws)))
            return " ".join(ws[k:]) + ", " + " ".join(ws[:k])
        if kind == 1:
            return name + SUFFIXES[int(rng.integers(0, len(SUFFIXES)))]
        if kind == 2 and len(ws) > 2:
            del ws[int(rng.integers(0, len(ws)))]
            return " ".join(ws)
        ws[int(rng.integers(0, len(ws)))] = self._words(rng, 1)[0]
        return " ".join(ws)

    @property
    def num_blocks(self) -> int:
        return -(-self.config.concepts // self.config.block)

    def _block_head(self, b: int) -> tuple[np.random.Generator, int, np.ndarray, list[str]]:
        """Block ``b``'s generator after its first draws: the concept count, the synonyms per concept and
        the preferred names (what the next block needs of it, without generating the whole block)."""
        cfg = self.config
        n = min(cfg.block, cfg.concepts - b * cfg.block)
        rng = np.random.default_rng([cfg.seed, b])
        extra = rng.poisson(cfg.names_per_concept - 1, n) if cfg.names_per_concept > 1 else np.zeros(n, int)
        return rng, n, extra, self._fresh_names(rng, n)

    def blocks(self, first: int = 0, stop: int | None = None) -> Iterator[list[Concept]]:
        """The concepts in blocks of ``config.block`` (each block from its own generator); blocks
        ``first`` to ``stop`` (exclusive) only when given — the same concepts as in a full run, so
        block ranges can be generated in parallel and concatenated."""
        cfg = self.config
        stop = self.num_blocks if stop is None else min(stop, self.num_blocks)
        recent: list[str] = []
        if first > 0:  # shared synonyms are drawn from the previous block's preferred names (only those drawn)
            recent = self._block_head(first - 1)[3][:1000]
        for b in range(first, stop):
            start = b * cfg.block
            rng, n, extra, prefs = self._block_head(b)
            n_syn = int(extra.sum())
            variant = rng.random(n_syn) < cfg.variant_share
            shared = rng.random(n_syn) < cfg.shared_synonym_share
            fresh = self._fresh_names(rng, int((~variant).sum()))
            tuis = rng.choice(len(TUI_SHARES), size=n, p=self._tui_p)
            second = rng.random(n) < 0.1
            tuis2 = rng.choice(len(TUI_SHARES), size=n, p=self._tui_p)
            concepts: list[Concept] = []
            s = f = 0
            for i in range(n):
                pref = prefs[i]
                syns: dict[str, None] = {}
                for _ in range(int(extra[i])):
                    if shared[s] and recent:
                        syn = recent[int(rng.integers(0, len(recent)))]
                    elif variant[s]:
                        syn = self._variant(rng, pref)
                    else:
                        syn = fresh[f]
                        f += 1
                    s += 1
                    if syn != pref:
                        syns[syn] = None
                types = [TUI_SHARES[int(tuis[i])][0]]
                if second[i] and tuis2[i] != tuis[i]:
                    types.append(TUI_SHARES[int(tuis2[i])][0])
                concepts.append(Concept(f"S{start + i + 1:07d}", pref, list(syns), semantic_types=types,
                                        semantic_groups=groups_of_tuis(types)))
            recent = prefs[:1000]
            yield concepts

    def __iter__(self) -> Iterator[Concept]:
        for block in self.blocks():
            yield from block


def _rrf_rows(c: Concept, aui: int) -> Iterator[str]:
    for j, n in enumerate(c.names):
        pref = j == 0
        yield "|".join(
            [c.id, "ENG", "P" if pref else "S", f"L{aui + j:08d}", "PF" if pref else "VO", f"S{aui + j:08d}",
             "Y" if pref else "N", f"A{aui + j:08d}", "", "", "", "SYN", "PT" if pref else "SY", c.id,
             n.replace("|", " "), "0", "N", ""]
        ) + "|\n"


def write_synthetic_kb(
    path: str | Path,
    kb: SyntheticKB,
    fmt: str = "jsonl",
    *,
    show_progress: bool = True,
) -> dict[str, int]:
    """Write ``kb`` to ``path`` as genbel JSONL, TSV (``id<TAB>name<TAB>syn|syn``) or a UMLS ``META``
    directory (``MRCONSO.RRF`` + ``MRSTY.RRF``), streaming and atomically; returns the counts."""
    if fmt not in FORMATS:
        raise ConfigError(Errors.E602.format(value=fmt, known=", ".join(FORMATS)))
    counts = {"concepts": 0, "names": 0}
    bar = tqdm(total=kb.config.concepts, unit=" concepts", desc="synthetic KB", disable=not show_progress or None)

    def count(block: list[Concept]) -> None:
        counts["concepts"] += len(block)
        counts["names"] += sum(1 + len(c.synonyms) for c in block)
        bar.update(len(block))

    try:
        if fmt == "rrf":
            with atomic_directory(path) as d:
                aui = 1
                with open(d / "MRCONSO.RRF", "w", encoding="utf-8") as conso, open(
                    d / "MRSTY.RRF", "w", encoding="utf-8"
                ) as sty:
                    for block in kb.blocks():
                        for c in block:
                            conso.writelines(_rrf_rows(c, aui))
                            aui += 1 + len(c.synonyms)
                            for t in c.semantic_types:
                                sty.write(f"{c.id}|{t}|||||\n")
                        count(block)
        else:
            with atomic_open(path) as f:
                for block in kb.blocks():
                    if fmt == "jsonl":
                        f.writelines(json.dumps(c.to_dict(), ensure_ascii=False) + "\n" for c in block)
                    else:
                        f.writelines(
                            f"{c.id}\t{c.name}\t{'|'.join(s.replace('|', ' ') for s in c.synonyms)}\n" for c in block
                        )
                    count(block)
    finally:
        bar.close()
    logger.info("synthetic KB %s: %d concepts, %d names", path, counts["concepts"], counts["names"])
    return counts
