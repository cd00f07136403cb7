"""The feature anchor (``anchor_weight``): mean ``1 - cos`` between the student backbone's token
states and those of a frozen copy of the step-0 backbone (``student.anchor_backbone``).

It is measured on the training batch itself, or with ``anchor_text="stdlib"`` on
standard-library docstrings: general text outside the training data, so the anchor holds
MiniLM's states there and leaves the in-domain ones free to move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from colmax.train import losses
from colmax.train.data import MicroBatch, split_sentences
from colmax.train.student import Encoded, Student


class FeatureAnchor:
    """``reference``: the frozen step-0 backbone; ``texts``: general text to measure on (empty:
    the training batch)."""

    def __init__(
        self, reference: nn.Module, texts: Sequence[str] = (), *, seed: int = 0, bf16: bool = False
    ) -> None:
        self.reference = reference
        self.texts = list(texts)
        self.seed = seed
        self.bf16 = bf16

    @classmethod
    def for_config(
        cls, reference: nn.Module, anchor_text: str, seed: int, bf16: bool
    ) -> FeatureAnchor:
        texts: list[str] = []
        if anchor_text == "stdlib":
            from colmax.demo import stdlib_corpus

            texts = [doc["text"] for doc in stdlib_corpus()]
        return cls(reference, texts, seed=seed, bf16=bf16)

    def gap(
        self, student: Student, batch: MicroBatch, encoded: tuple[Encoded, Encoded]
    ) -> tuple[torch.Tensor, int]:
        """The mean gap over queries and documents, and the tokens encoded for it beyond the
        training batch's ``encoded`` (queries, documents)."""
        extra = 0
        if self.texts:
            encoded = self.general_batch(student, batch)
            extra = encoded[0].tokens + encoded[1].tokens
        return (self._gap(encoded[0]) + self._gap(encoded[1])) / 2, extra

    def general_batch(self, student: Student, batch: MicroBatch) -> tuple[Encoded, Encoded]:
        """As many texts as the batch has queries, drawn by the batch's position (a resumed run
        draws the same), each encoded as a document and its first sentence as a query."""
        rng = np.random.default_rng([self.seed, 4, batch.epoch, batch.index])
        pick = rng.choice(len(self.texts), size=len(batch.rows), replace=False)
        texts = [self.texts[i] for i in pick]
        firsts = [split_sentences(text)[0] for text in texts]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return student.forward(firsts, queries=True), student.forward(texts, queries=False)

    def _gap(self, out: Encoded) -> torch.Tensor:
        """How far the student's token states moved from the initial backbone's."""
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            reference = self.reference(input_ids=out.input_ids, attention_mask=out.attention)[0]
        return losses.anchor_loss(out.hidden, reference, out.mask)
