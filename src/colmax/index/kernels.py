"""The compiled loops of compressed search (numba, compiled on first use and cached on disk).

A part stores its tokens grouped by centroid (``offsets[c]:offsets[c+1]`` is centroid ``c``'s
list), each token as its packed residual plus the part-local number of its document. Scoring
never decompresses a vector: a token's dot product with query token ``t`` is
``q_t . centroid + sum_j tables[t, j, residual_byte_j]``.

All kernels release the GIL, so a thread pool runs queries in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def score_scratch(n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed work arrays for :func:`score_part` on parts of up to ``n_docs`` documents; one
    pair serves every part a query visits (the kernel leaves them zeroed again)."""
    return np.zeros((2, n_docs), dtype=np.float32), np.zeros((3, n_docs), dtype=np.int32)


# fastmath lets LLVM reorder the table sums (25% faster here); no value in these loops is ever
# NaN or infinite (first touches are tracked with stamps, not -inf), so its no-NaN/no-inf
# assumptions hold.
@njit(cache=True, nogil=True, fastmath=True)
def score_part(
    probe_centroids: np.ndarray,  # [T, P] int32
    probe_scores: np.ndarray,  # [T, P] float32, q_t . centroid
    missing: np.ndarray,  # [T] float32, the similarity assumed when t saw no token of a doc
    tables: np.ndarray,  # [T, B, 256] float32
    offsets: np.ndarray,  # [K + 1] uint32
    residuals: np.ndarray,  # [n_tokens, B] uint8
    local_doc: np.ndarray,  # [n_tokens] uint16
    scratch_f: np.ndarray,  # [2, >= n_docs] float32, zero (score_scratch)
    scratch_i: np.ndarray,  # [3, >= n_docs] int32, zero
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate MaxSim of every document that any probed list reaches.

    For each query token, the best similarity among the document's tokens in the probed lists;
    where a query token reached none of its tokens, ``missing[t]`` stands in (WARP's
    imputation). Returns ``(local document numbers ascending, scores)`` of the documents
    reached. Work is proportional to the tokens scored, not to the part's documents: the
    scratch arrays are reset only where they were written.
    """
    n_q, n_probe = probe_centroids.shape
    n_bytes = residuals.shape[1]
    best, total = scratch_f[0], scratch_f[1]
    stamp = scratch_i[0]  # t + 1 once query token t reached the doc; 0: never reached
    touched, reached = scratch_i[1], scratch_i[2]
    n_reached = 0
    missing_sum = np.float32(0.0)
    for t in range(n_q):
        n_touched = 0
        table = tables[t]
        for p in range(n_probe):
            c = probe_centroids[t, p]
            base = probe_scores[t, p]
            for i in range(offsets[c], offsets[c + 1]):
                s = base
                row = residuals[i]
                for j in range(n_bytes):
                    s += table[j, row[j]]
                d = local_doc[i]
                if stamp[d] != t + 1:
                    if stamp[d] == 0:
                        reached[n_reached] = d
                        n_reached += 1
                    stamp[d] = t + 1
                    touched[n_touched] = d
                    n_touched += 1
                    best[d] = s
                elif s > best[d]:
                    best[d] = s
        m = missing[t]
        missing_sum += m
        for x in range(n_touched):
            d = touched[x]
            total[d] += best[d] - m
    docs = np.sort(reached[:n_reached])
    scores = np.empty(n_reached, dtype=np.float32)
    for x in range(n_reached):
        d = docs[x]
        scores[x] = total[d] + missing_sum
        best[d] = 0.0
        total[d] = 0.0
        stamp[d] = 0
    return docs, scores


@njit(cache=True, nogil=True)
def tokens_of_docs(
    offsets: np.ndarray, local_doc: np.ndarray, wanted: np.ndarray, doc_lens: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(token positions, centroid of each)`` of the documents marked in ``wanted`` (a bool
    per local document), grouped by document in document order. One pass over the part."""
    n_docs = len(wanted)
    start = np.empty(n_docs, dtype=np.int64)
    total = 0
    for d in range(n_docs):
        start[d] = total
        if wanted[d]:
            total += doc_lens[d]
    positions = np.empty(total, dtype=np.int64)
    centroids = np.empty(total, dtype=np.int32)
    for c in range(len(offsets) - 1):
        for i in range(offsets[c], offsets[c + 1]):
            d = local_doc[i]
            if wanted[d]:
                positions[start[d]] = i
                centroids[start[d]] = c
                start[d] += 1
    return positions, centroids


@njit(cache=True, nogil=True)
def decode_tokens(
    centroids: np.ndarray,  # [K, dim] float32
    codes: np.ndarray,  # [n] int32
    packed: np.ndarray,  # [n, B] uint8
    byte_table: np.ndarray,  # [256, per] float32
) -> np.ndarray:
    """``[n, dim]`` float32: centroid plus decoded residual of each token."""
    n, n_bytes = packed.shape
    per = byte_table.shape[1]
    out = np.empty((n, n_bytes * per), dtype=np.float32)
    for x in range(n):
        c = codes[x]
        for j in range(n_bytes):
            v = packed[x, j]
            for i in range(per):
                out[x, j * per + i] = centroids[c, j * per + i] + byte_table[v, i]
    return out
