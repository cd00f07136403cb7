"""The order training examples are seen in: which examples form each micro-batch, and which of
their mined negatives it shows.

The plan of epoch ``e`` is a pure function of (seed, e), and the negatives drawn for a batch
are seeded by its position, so a position ``(epoch, index)`` is all a checkpoint has to
remember for a resumed run to see exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colmax.errors import InputError


@dataclass(frozen=True)
class MicroBatch:
    """Which examples one forward pass sees, and where it sits in the run."""

    epoch: int
    index: int
    source: str
    rows: tuple[int, ...]  # positions in examples[source]


class BatchPlan:
    """Micro-batches per epoch: each source's examples shuffled and repeated ``mix`` times
    (a fractional weight adds a seeded sample), cut into batches of one source each, and the
    batches shuffled together. Batches smaller than 2 are dropped (nothing to contrast)."""

    def __init__(
        self, sizes: dict[str, int], mix: dict[str, float], batch_size: int, seed: int
    ) -> None:
        self.sizes = {s: n for s, n in sizes.items() if mix.get(s, 0) > 0 and n > 0}
        if not self.sizes:
            raise InputError("no training examples: every source is empty or has weight 0")
        self.mix = mix
        self.batch_size = batch_size
        self.seed = seed
        self._cache: dict[int, list[MicroBatch]] = {}

    def epoch(self, epoch: int) -> list[MicroBatch]:
        if epoch not in self._cache:
            self._cache = {epoch: self._build(epoch)}
        return self._cache[epoch]

    def _build(self, epoch: int) -> list[MicroBatch]:
        rng = np.random.default_rng([self.seed, 2, epoch])
        batches: list[tuple[str, tuple[int, ...]]] = []
        for source in sorted(self.sizes):
            n, weight = self.sizes[source], self.mix[source]
            whole = int(weight)
            parts = [rng.permutation(n) for _ in range(whole)]
            extra = round((weight - whole) * n)
            if extra:
                parts.append(rng.permutation(n)[:extra])
            order = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
            for lo in range(0, len(order), self.batch_size):
                chunk = order[lo : lo + self.batch_size]
                if len(chunk) >= 2:
                    batches.append((source, tuple(int(i) for i in chunk)))
        if not batches:
            raise InputError(
                "every micro-batch would hold fewer than 2 examples; add data or raise mix"
            )
        shuffled = rng.permutation(len(batches))
        return [MicroBatch(epoch, k, *batches[j]) for k, j in enumerate(shuffled)]

    def at(self, position: tuple[int, int]) -> tuple[MicroBatch, tuple[int, int]]:
        """The micro-batch at ``(epoch, index)`` and the position after it."""
        epoch, index = position
        plan = self.epoch(epoch)
        if index >= len(plan):
            epoch, index = epoch + 1, 0
            plan = self.epoch(epoch)
        return plan[index], (epoch, index + 1)


def sample_negatives(
    candidates: list[list[str]], rows: tuple[int, ...], n: int, seed: int, batch: MicroBatch
) -> list[list[int]]:
    """For each row, ``n`` distinct positions in its candidate list (seeded by the batch's
    position, so a resumed run draws the same ones). Short lists repeat their candidates."""
    rng = np.random.default_rng([seed, 3, batch.epoch, batch.index])
    out = []
    for row in rows:
        m = len(candidates[row])
        if m == 0:
            raise InputError(f"example {row} has no mined negatives; raise mine_depth")
        out.append(rng.choice(m, size=n, replace=m < n).tolist())
    return out
