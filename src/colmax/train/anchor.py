"""The anchors that keep the base model's general skill while fine-tuning on one domain; both
compare the student with a frozen copy of the step-0 backbone (``student.anchor_backbone``):

* the feature anchor (``anchor_weight``): mean ``1 - cos`` between the student backbone's token
  states and the frozen copy's;
* the score anchor (``anchor_distill_weight``): KL divergence between the student's MaxSim over
  every (query, document) pair of the anchor batch and the frozen copy's MaxSim on its full
  token states (untrained MiniLM's ``maxsim-raw`` for colmax's recipe), at each Matryoshka dim.
  The feature anchor holds the backbone but leaves the projection free; this one holds what
  both together rank, so the 128-dim (and 64-dim) student keeps ranking like the 384-dim
  base model.

Both are measured on the training batch itself, or with ``anchor_text="stdlib"`` on
standard-library docstrings: general text outside the training data, so the anchors hold
MiniLM there and leave the in-domain behaviour free to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colmax.maxsim import maxsim_padded
from colmax.train import losses
from colmax.train.batches import MicroBatch
from colmax.train.config import TrainConfig
from colmax.train.data import split_sentences
from colmax.train.student import Encoded, Student, prefix_maxsim


@dataclass
class AnchorTerms:
    gap: torch.Tensor  #: the feature anchor: mean ``1 - cos`` over queries and documents
    distill: dict[int, torch.Tensor]  #: the score anchor's KL per Matryoshka dim (empty: off)
    extra_tokens: int  #: tokens encoded beyond the training batch (the general texts)


class Anchors:
    """Both anchors (either may be off). ``reference``: the frozen step-0 backbone; ``texts``:
    general text to measure on (empty: the training batch); ``distill_dims``: the dims the
    score anchor runs at (empty: off)."""

    def __init__(
        self,
        reference: nn.Module,
        texts: Sequence[str] = (),
        *,
        seed: int = 0,
        bf16: bool = False,
        distill_dims: Sequence[int] = (),
        teacher_scale: float = 2.0,
        temperature: float = 1.0,
    ) -> None:
        self.reference = reference
        self.texts = list(texts)
        self.seed = seed
        self.bf16 = bf16
        self.distill_dims = tuple(distill_dims)
        self.teacher_scale = teacher_scale
        self.temperature = temperature

    @classmethod
    def for_config(cls, reference: nn.Module, config: TrainConfig, bf16: bool) -> Anchors:
        texts: list[str] = []
        if config.anchor_text == "stdlib":
            from colmax.demo import stdlib_corpus

            texts = [doc["text"] for doc in stdlib_corpus()]
        return cls(
            reference,
            texts,
            seed=config.seed,
            bf16=bf16,
            distill_dims=config.dims if config.anchor_distill_weight > 0 else (),
            teacher_scale=config.teacher_scale,
            temperature=config.temperature,
        )

    def terms(
        self, student: Student, batch: MicroBatch, encoded: tuple[Encoded, Encoded]
    ) -> AnchorTerms:
        """Both anchors on the general texts (or on the training batch's ``encoded`` queries
        and documents)."""
        extra = 0
        if self.texts:
            encoded = self.general_batch(student, batch)
            extra = encoded[0].tokens + encoded[1].tokens
        queries, docs = encoded
        ref_q, ref_d = self._reference(queries), self._reference(docs)
        gap = (
            losses.anchor_loss(queries.hidden, ref_q, queries.mask)
            + losses.anchor_loss(docs.hidden, ref_d, docs.mask)
        ) / 2
        distill: dict[int, torch.Tensor] = {}
        if self.distill_dims:
            teacher = maxsim_padded(
                F.normalize(ref_q.float(), dim=-1),
                F.normalize(ref_d.float(), dim=-1),
                docs.mask,
                queries.mask,
            )
            logits = self.teacher_scale * losses.zscore_rows(teacher)
            for dim in self.distill_dims:
                scores = prefix_maxsim(queries, docs, dim)
                distill[dim] = losses.distillation_loss(scores, logits, self.temperature)
        return AnchorTerms(gap, distill, extra)

    def general_batch(self, student: Student, batch: MicroBatch) -> tuple[Encoded, Encoded]:
        """As many texts as the batch has queries, drawn by the batch's position (a resumed run
        draws the same), each encoded as a document and its first sentence as a query."""
        rng = np.random.default_rng([self.seed, 4, batch.epoch, batch.index])
        pick = rng.choice(len(self.texts), size=len(batch.rows), replace=False)
        texts = [self.texts[i] for i in pick]
        firsts = [split_sentences(text)[0] for text in texts]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return student.forward(firsts, queries=True), student.forward(texts, queries=False)

    def _reference(self, out: Encoded) -> torch.Tensor:
        """The frozen step-0 backbone's token states for the same input."""
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            return self.reference(input_ids=out.input_ids, attention_mask=out.attention)[0]
