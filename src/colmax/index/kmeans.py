"""Spherical k-means for the index's centroids, and nearest-centroid assignment.

Token vectors are unit length, so the nearest centroid is the one with the largest dot
product and one matmul per chunk assigns a chunk. The matmuls run in bfloat16 where the CPU
has fast bf16 (AMX / AVX512-BF16: about 2x float32 here); a near-tie resolved the other way
only moves a token to its second-nearest centroid, which its residual then absorbs.

Assignment costs tokens x centroids x dim, and is what indexing spends most of its time on. A
two-level assignment (coarse groups of centroids) was tried: with the small, gathered matmuls
it needs, it ran no faster than this one on 8,192 centroids, and assigned 17% of tokens to a
worse centroid, so it is not used.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ASSIGN_CHUNK = 1024  # rows per [rows, K] score block at most (4096: no faster)
SCORE_BLOCK = 2**23  # score-block elements at most: 16 MB in bf16 whatever K, so the centroid
# count (which grows with the index, up to 2**16) does not grow the memory of assignment
SUM_CHUNK = 65536  # rows converted to float32 at a time while summing clusters


def num_centroids(n_tokens: int, factor: float = 8.0) -> int:
    """``2 ** floor(log2(factor * sqrt(n_tokens)))`` (ColBERTv2/PLAID use factor 16), at most
    ``n_tokens`` and at most 2**16 (codes are stored per list, lists are addressed by uint16)."""
    if n_tokens < 1:
        raise ValueError("no tokens to cluster")
    k = 2 ** math.floor(math.log2(max(1.0, factor * math.sqrt(n_tokens))))
    return int(max(1, min(k, n_tokens, 2**16)))


def _fast_dtype() -> torch.dtype:
    from colmax.encoder.encoder import cpu_has_fast_bf16

    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def _rows(x: np.ndarray, rows: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of ``x`` (of ``x[rows]`` when ``rows`` is given) as float32."""
    return np.asarray(x[lo:hi] if rows is None else x[rows[lo:hi]], dtype=np.float32)


def block_rows(k: int) -> int:
    """Rows per assignment step for ``k`` centroids: a power of two, ``SCORE_BLOCK // k`` at
    most (measured at K = 16,384: 512 rows are as fast as 1,024), between 64 and ASSIGN_CHUNK."""
    fitting = 2 ** math.floor(math.log2(max(1, SCORE_BLOCK // max(1, k))))
    return int(min(ASSIGN_CHUNK, max(64, fitting)))


def _brute_nearest(
    x: np.ndarray, c: torch.Tensor, dtype: torch.dtype, rows: np.ndarray | None = None
) -> np.ndarray:
    n = len(x) if rows is None else len(rows)
    out = np.empty(n, dtype=np.int32)
    step = block_rows(len(c))
    block = torch.zeros((step, x.shape[1]), dtype=dtype)
    for start in range(0, n, step):
        chunk = torch.from_numpy(_rows(x, rows, start, start + step))
        # always a full block: every matmul has one shape (a short last chunk is padded), as
        # oneDNN keeps memory for each new shape it sees (measured: +1 GB for 1,200 shapes)
        block[: len(chunk)] = chunk
        best = (block @ c.T).argmax(dim=1).numpy()
        out[start : start + len(chunk)] = best[: len(chunk)]
    return out


class Assigner:
    """Nearest-centroid assignment for one set of centroids (kept converted for reuse)."""

    def __init__(self, centroids: np.ndarray) -> None:
        self.dtype = _fast_dtype()
        c32 = np.ascontiguousarray(centroids, dtype=np.float32)
        self.centroids = torch.from_numpy(c32).to(self.dtype)

    def __call__(self, vectors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """The nearest centroid of each row of ``vectors`` (of ``vectors[rows]``)."""
        with torch.inference_mode():
            return _brute_nearest(vectors, self.centroids, self.dtype, rows)


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``[n]`` int32: the centroid with the (about) largest dot product for each row."""
    return Assigner(centroids)(vectors)


def _cluster_sums(
    x: np.ndarray, assign: np.ndarray, k: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """``[k, dim]`` float32 sums of the rows of ``x`` (``x[rows]``) per cluster, ``SUM_CHUNK``
    rows at a time (``x`` may be float16: only one chunk is ever converted to float32)."""
    sums = torch.zeros((k, x.shape[1]), dtype=torch.float32)
    for lo in range(0, len(assign), SUM_CHUNK):
        chunk = torch.from_numpy(_rows(x, rows, lo, lo + SUM_CHUNK))
        sums.index_add_(0, torch.from_numpy(assign[lo : lo + SUM_CHUNK].astype(np.int64)), chunk)
    return sums.numpy()


def kmeans(
    vectors: np.ndarray,
    k: int,
    *,
    iterations: int = 8,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``[k, dim]`` float32 unit-length centroids of ``vectors`` (float16 or float32; Lloyd's
    algorithm on the sphere, initialised from ``k`` distinct random rows; an empty cluster is
    re-seeded from a random row). ``rows``: cluster only those rows, read a chunk at a time,
    so a sample of a large array costs no copy of it."""
    x = vectors if vectors.dtype in (np.float16, np.float32) else vectors.astype(np.float32)
    n = len(x) if rows is None else len(rows)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n rows, got k={k} and n={n}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(n, size=k, replace=False)
    centroids = x[picks if rows is None else rows[picks]].astype(np.float32)
    for _ in range(iterations):
        assign = Assigner(centroids)(x, rows)
        sums = _cluster_sums(x, assign, k, rows)
        empty = np.bincount(assign, minlength=k) == 0
        if empty.any():
            picks = rng.choice(n, size=int(empty.sum()), replace=False)
            sums[empty] = x[picks if rows is None else rows[picks]]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = sums / np.maximum(norms, 1e-12)
    return centroids.astype(np.float32)
