"""Batches that mix data sources in a fixed ratio (SynCABEL: half human, half synthetic).

SynCABEL up-samples the (smaller) human-annotated set so that every batch holds 50 % human and
50 % synthetic examples. :class:`MixedBatchSampler` generalises this to any number of sources with
relative shares: each batch holds exactly ``counts[i]`` examples of source ``i`` (the batch size
apportioned by the shares, largest remainder, at least one per source with a positive share). An
epoch is the number of batches in which the *largest* source (relative to its per-batch count) is
seen once; smaller sources are cycled through fresh permutations, i.e. up-sampled.

Indices refer to the concatenation of the sources in the order given (source 0 first).
With a single source and ``lengths``, batches are grouped by length (less padding, faster on CPU).
Deterministic for a seed and epoch; :meth:`batches` of one epoch can be re-created to resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from genbel.errors import ConfigError, Errors


def apportion(batch_size: int, shares: Sequence[float]) -> list[int]:
    """Split ``batch_size`` into integer counts proportional to ``shares`` (largest remainder)."""
    active = [i for i, s in enumerate(shares) if s > 0]
    if not active:
        raise ConfigError(Errors.E357.format(field="mix", reason="no source has a positive share"))
    if batch_size < len(active):
        raise ConfigError(
            Errors.E357.format(
                field="batch_size", reason=f"{batch_size} < number of mixed sources ({len(active)})"
            )
        )
    total = sum(shares[i] for i in active)
    exact = {i: batch_size * shares[i] / total for i in active}
    counts = [0] * len(shares)
    for i in active:
        counts[i] = max(1, int(math.floor(exact[i])))
    left = batch_size - sum(counts)
    order = sorted(active, key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    j = 0
    while left > 0:
        counts[order[j % len(order)]] += 1
        left -= 1
        j += 1
    while left < 0:  # the max(1, ...) floor overshot: take from the largest
        big = max(active, key=lambda i: counts[i])
        counts[big] -= 1
        left += 1
    return counts


class MixedBatchSampler:
    """Yield lists of indices; batch ``b`` holds exactly ``counts[i]`` indices of source ``i``.

    Sources of size 0 (or share 0) are ignored and their share given to the others.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        shares: Sequence[float],
        batch_size: int,
        seed: int = 0,
        lengths: Sequence[int] | None = None,
        megabatch: int = 50,
    ) -> None:
        if len(sizes) != len(shares):
            raise ConfigError(Errors.E357.format(field="mix", reason="one share per source is needed"))
        eff = [s if n > 0 else 0.0 for n, s in zip(sizes, shares)]
        self.sizes = list(sizes)
        self.counts = apportion(batch_size, eff)
        self.offsets = [int(x) for x in np.cumsum([0, *self.sizes[:-1]])]
        self.batch_size = batch_size
        self.seed = seed
        self.n_batches = max(math.ceil(n / c) for n, c in zip(self.sizes, self.counts) if c > 0)
        active = [i for i, c in enumerate(self.counts) if c > 0]
        #: group by length only for a single source (mixed batches keep their exact composition)
        self.lengths = list(lengths) if lengths is not None and len(active) == 1 else None
        self.megabatch = megabatch

    def __len__(self) -> int:
        return self.n_batches

    def _stream(self, src: int, rng: np.random.Generator) -> Iterator[int]:
        while True:
            for i in rng.permutation(self.sizes[src]):
                yield self.offsets[src] + int(i)

    def batches(self, epoch: int = 0) -> list[list[int]]:
        """All batches of one epoch (each batch shuffled, so sources are interleaved)."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.lengths is not None:
            return self._grouped(rng)
        streams = {
            i: self._stream(i, np.random.default_rng([self.seed, epoch, i]))
            for i, c in enumerate(self.counts)
            if c > 0
        }
        out: list[list[int]] = []
        for _ in range(self.n_batches):
            b: list[int] = []
            for i, s in streams.items():
                b.extend(next(s) for _ in range(self.counts[i]))
            out.append([b[j] for j in rng.permutation(len(b))])
        return out

    def _grouped(self, rng: np.random.Generator) -> list[list[int]]:
        """Single source, grouped by length: within each chunk of ``megabatch`` batches the examples
        are sorted by length before being cut into batches, then the batch order is shuffled
        (like ``group_by_length`` of transformers). Padding shrinks; the set of examples per epoch
        is the same as without grouping."""
        src = next(i for i, c in enumerate(self.counts) if c > 0)
        perm = [self.offsets[src] + int(i) for i in rng.permutation(self.sizes[src])]
        need = self.n_batches * self.batch_size
        while len(perm) < need:  # fill the last batch from a fresh permutation
            perm.extend(self.offsets[src] + int(i) for i in rng.permutation(self.sizes[src]))
        perm = perm[:need]
        chunk = self.megabatch * self.batch_size
        out: list[list[int]] = []
        for j in range(0, need, chunk):
            mb = sorted(perm[j : j + chunk], key=lambda i: self.lengths[i - self.offsets[src]])
            out.extend(mb[k : k + self.batch_size] for k in range(0, len(mb), self.batch_size))
        return [out[j] for j in rng.permutation(len(out))]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(0))
