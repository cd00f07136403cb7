"""The one exact late-interaction score: MaxSim.

score(q, d) = sum over query vectors of the max dot product with any document vector.

Two entry points compute the same thing for two memory layouts:

* :func:`maxsim_ragged` (numpy, inference): documents are stored back to back in one
  ``[total_tokens, dim]`` matrix with ``offsets``; no padding at all.
* :func:`maxsim_padded` (torch, training and batched scoring): documents padded to a common
  length with a boolean mask; padded positions are masked with ``-inf`` before the max, so a
  pad can never win (a zero pad would beat every negative similarity).

Both compute in float32 whatever the input dtype (float16 storage has no fast CPU matmul).
"""

from __future__ import annotations

import numpy as np
import torch

from colmax.errors import DimensionMismatchError


def _as_f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def maxsim_ragged(queries: np.ndarray, doc_vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Score every query against every document of a ragged block.

    Args:
        queries: ``[n_queries, query_len, dim]`` or one query ``[query_len, dim]``.
        doc_vectors: ``[total_tokens, dim]``, the documents' vectors back to back.
        offsets: ``[n_docs + 1]`` start offsets into ``doc_vectors`` (``offsets[-1]`` = total).

    Returns:
        ``[n_queries, n_docs]`` float32 scores (``[n_docs]`` for one query). A document with
        no vectors scores ``-inf``.

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> d = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    >>> [round(float(s), 2) for s in maxsim_ragged(q, d, np.array([0, 2, 3]))]
    [1.8, 1.0]
    """
    single = queries.ndim == 2
    q = _as_f32(queries[None] if single else queries)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_docs = len(offsets) - 1
    if q.shape[-1] != doc_vectors.shape[-1]:
        raise DimensionMismatchError(
            f"queries have dim {q.shape[-1]} but documents have dim {doc_vectors.shape[-1]}; "
            "encode both with the same model and dim"
        )
    n_q, q_len, _ = q.shape
    out = np.full((n_q, n_docs), -np.inf, dtype=np.float32)
    lengths = np.diff(offsets)
    nonempty = lengths > 0
    if n_docs == 0 or not nonempty.any():
        return out[0] if single else out
    d = torch.from_numpy(_as_f32(doc_vectors[offsets[0] : offsets[-1]]))
    # [total_tokens, n_q * q_len]: reduceat then runs along contiguous rows
    sim = (d @ torch.from_numpy(q.reshape(n_q * q_len, -1)).T).numpy()
    starts = (offsets[:-1] - offsets[0])[nonempty]
    best = np.maximum.reduceat(sim, starts, axis=0)  # [n_nonempty, n_q * q_len]
    out[:, nonempty] = best.reshape(-1, n_q, q_len).sum(axis=2).T
    return out[0] if single else out


def maxsim_padded(
    queries: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Score every query against every padded document (differentiable).

    Args:
        queries: ``[n_queries, query_len, dim]``.
        docs: ``[n_docs, doc_len, dim]``.
        doc_mask: ``[n_docs, doc_len]``, true where a vector is real.
        query_mask: ``[n_queries, query_len]``, true where a query vector counts (default all).

    Returns:
        ``[n_queries, n_docs]`` scores, float32.

    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> d = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [0.0, 0.0]]])
    >>> m = torch.tensor([[True, True], [True, False]])
    >>> [[round(s, 2) for s in row] for row in maxsim_padded(q, d, m).tolist()]
    [[1.8, 1.0]]
    """
    if queries.shape[-1] != docs.shape[-1]:
        raise DimensionMismatchError(
            f"queries have dim {queries.shape[-1]} but documents have dim {docs.shape[-1]}"
        )
    sim = torch.einsum("qtd,nsd->qnts", queries.float(), docs.float())
    sim = sim.masked_fill(~doc_mask.bool()[None, :, None, :], float("-inf"))
    best = sim.max(dim=-1).values  # [q, n, t]
    if query_mask is not None:
        best = best.masked_fill(~query_mask.bool()[:, None, :], 0.0)
    return best.sum(dim=-1)


def pad_documents(docs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged ``[len_i, dim]`` arrays into a padded tensor and its mask."""
    if not docs:
        raise ValueError("no documents to pad")
    dim = docs[0].shape[-1]
    longest = max(1, max(len(d) for d in docs))
    out = torch.zeros(len(docs), longest, dim, dtype=torch.float32)
    mask = torch.zeros(len(docs), longest, dtype=torch.bool)
    for i, d in enumerate(docs):
        out[i, : len(d)] = torch.from_numpy(np.asarray(d, dtype=np.float32))
        mask[i, : len(d)] = True
    return out, mask


def ragged_offsets(docs: list[np.ndarray]) -> np.ndarray:
    """Start offsets (``[n + 1]``) of ragged arrays laid back to back."""
    return np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
