"""The training losses, on score matrices (MaxSim is computed by :mod:`colmax.maxsim`).

Scores come as ``[n_queries, n_docs]`` where query ``i``'s own documents are the block
``i * group : (i + 1) * group`` with its positive first (``group`` = 1 + negatives). With
``in_batch=True`` every other document in the matrix is a negative as well.

* ``ce``: softmax cross-entropy of the positive against all negatives (listwise; what ColBERTv2
  and PyLate's contrastive loss do);
* ``pairwise``: the ColBERT paper's loss: for each (positive, negative) pair, cross-entropy of
  the softmax over the two scores, i.e. ``softplus(s_neg - s_pos)``, averaged over pairs;
* ``hinge``: the margin form, ``max(0, margin - s_pos + s_neg)`` averaged over pairs;
* :func:`distillation_loss`: KL(teacher || student) between softmaxes over a query's own
  candidates, the teacher's logits given;
* :func:`anchor_loss`: a feature anchor, mean ``1 - cos`` between the student backbone's token
  states and a frozen reference's (the backbone before training) on the same tokens. It keeps
  what the base model knows outside the training domain (function-space, unlike freezing
  layers or interpolating weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def own_block_mask(n_queries: int, group: int, device: torch.device | None = None) -> torch.Tensor:
    """``[n_queries, n_queries * group]``: true where a document belongs to the query."""
    rows = torch.arange(n_queries, device=device)[:, None]
    cols = torch.arange(n_queries * group, device=device)[None, :]
    return (cols // group) == rows


def retrieval_loss(
    scores: torch.Tensor,
    group: int,
    *,
    kind: str = "ce",
    in_batch: bool = True,
    temperature: float = 1.0,
    margin: float = 1.0,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of each query's positive against its negatives (see the module docstring).

    ``exclude`` (``[n_queries, n_docs]``, optional): true where a document must not count as
    a negative for that query (another of its known positives that sits in the batch).
    """
    n_q, n_docs = scores.shape
    if n_docs != n_q * group:
        raise ValueError(f"scores have {n_docs} columns, expected {n_q} queries x {group}")
    scores = scores.float()
    targets = torch.arange(n_q, device=scores.device) * group
    negatives_ok = torch.ones_like(scores, dtype=torch.bool)
    if not in_batch:
        negatives_ok = own_block_mask(n_q, group, scores.device)
    negatives_ok[torch.arange(n_q), targets] = False
    if exclude is not None:
        negatives_ok &= ~exclude.bool()
    if kind == "ce":
        allowed = negatives_ok.clone()
        allowed[torch.arange(n_q), targets] = True
        logits = (scores / temperature).masked_fill(~allowed, float("-inf"))
        return F.cross_entropy(logits, targets)
    positive = scores[torch.arange(n_q), targets][:, None]
    if kind == "pairwise":
        per_pair = F.softplus((scores - positive) / temperature)
    elif kind == "hinge":
        per_pair = F.relu(margin - positive + scores)
    else:
        raise ValueError(f"unknown loss {kind!r}; choose ce, pairwise or hinge")
    return (per_pair * negatives_ok).sum() / negatives_ok.sum().clamp(min=1)


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student / temperature)), averaged over queries.

    ``student`` and ``teacher`` are ``[n_queries, n_candidates]`` over the same candidates.
    """
    log_p_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher.float(), dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


def zscore_rows(scores: torch.Tensor) -> torch.Tensor:
    """Per row, ``(x - mean) / std``: a teacher's scores on the scale of ``colmax.train.teacher``'s
    z-scored components (no gradient flows to a teacher, so this is not differentiated)."""
    mean = scores.mean(dim=-1, keepdim=True)
    std = scores.std(dim=-1, unbiased=False, keepdim=True)
    return (scores - mean) / std.clamp(min=1e-6)


def own_scores(scores: torch.Tensor, group: int) -> torch.Tensor:
    """``[n_queries, group]``: each query's scores for its own documents (positive first)."""
    n_q = scores.shape[0]
    return scores.reshape(n_q, n_q, group)[torch.arange(n_q), torch.arange(n_q)]


def anchor_loss(hidden: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(hidden, reference)`` over the ``[n, len]`` positions where ``mask``."""
    cos = F.cosine_similarity(hidden.float(), reference.float(), dim=-1)
    weight = mask.float()
    return ((1.0 - cos) * weight).sum() / weight.sum().clamp(min=1.0)
