"""The residual codec (ColBERTv2 style): a token is its nearest centroid plus a residual
quantised to ``nbits`` per dimension.

Bucket cutoffs are the quantiles of the residual values of a training sample at
``i / 2**nbits`` and a bucket's weight (its decoded value) is the quantile at the bucket's
middle, shared by every dimension. Codes are packed ``8 / nbits`` dimensions per byte, the
first dimension in the high bits, so one byte decodes through one row of :meth:`byte_table`
and a query's dot product with a residual is a sum of per-byte lookups
(:meth:`query_tables`) without decompressing anything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from colmax.errors import InputError
from colmax.index.bundle import Bundle, write_bundle
from colmax.index.kmeans import Assigner, kmeans, nearest_centroid, num_centroids

NBITS = (1, 2, 4)
# Centroids are trained on a random sample of TRAIN_TOKENS_PER_CENTROID tokens per centroid,
# at most TRAIN_MAX_TOKENS (128 MB in float16): k-means costs sample x centroids x dim per
# iteration, and the cap keeps training memory flat however large the corpus grows (32 tokens
# per centroid at 16,384 centroids, which a 16M-token index gets).
TRAIN_TOKENS_PER_CENTROID = 64
TRAIN_MAX_TOKENS = 2**19
BUCKET_SAMPLE_TOKENS = 2**16  # residuals whose quantiles set the bucket cutoffs and weights


def train_sample_size(num_centroids_: int) -> int:
    """Tokens :meth:`ResidualCodec.train` samples for ``num_centroids_`` centroids."""
    return max(1, min(num_centroids_ * TRAIN_TOKENS_PER_CENTROID, TRAIN_MAX_TOKENS))


ENCODE_BLOCK = 16384  # rows per step: 8 MB float32 temporaries (65,536: no faster)


def check_nbits(nbits: int, dim: int) -> None:
    if nbits not in NBITS:
        raise InputError(f"nbits must be one of {NBITS}, not {nbits!r}")
    if dim * nbits % 8:
        raise InputError(
            f"dim {dim} times nbits {nbits} must be a multiple of 8 bits; choose nbits "
            f"{[b for b in NBITS if dim * b % 8 == 0]}"
        )


@dataclass(frozen=True)
class ResidualCodec:
    centroids: np.ndarray  # [K, dim] float32, unit length
    cutoffs: np.ndarray  # [2**nbits - 1] float32
    weights: np.ndarray  # [2**nbits] float32
    nbits: int
    trained_tokens: int  # tokens the index had when this codec was trained

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def num_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dims_per_byte(self) -> int:
        return 8 // self.nbits

    @property
    def code_bytes(self) -> int:
        """Bytes of one token's packed residual."""
        return self.dim * self.nbits // 8

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        vectors: np.ndarray,
        nbits: int = 2,
        *,
        num_centroids_: int | None = None,
        centroid_factor: float = 8.0,
        total_tokens: int | None = None,
        iterations: int = 4,  # ColBERT's default (kmeans_niters=4)
        seed: int = 0,
    ) -> ResidualCodec:
        """Fit centroids and buckets to ``vectors`` (``[n, dim]``, float16 or float32; k-means
        runs on a random sample of :func:`train_sample_size` of its rows, read in place).

        ``total_tokens``: the size of the corpus the codec is for (defaults to ``len(vectors)``),
        which sets the number of centroids unless ``num_centroids_`` is given.
        """
        n, dim = vectors.shape
        check_nbits(nbits, dim)
        total = int(total_tokens or n)
        k = num_centroids_ or num_centroids(total, centroid_factor)
        k = min(k, n)
        rng = np.random.default_rng(seed)
        limit = train_sample_size(k)
        # the sample is a list of rows, read a chunk at a time: never a copy of ``vectors``
        rows = np.sort(rng.choice(n, size=limit, replace=False)) if n > limit else None
        centroids = kmeans(vectors, k, iterations=iterations, seed=seed, rows=rows)
        centroids = centroids.astype(np.float16).astype(np.float32)  # as stored on disk
        n_sample = n if rows is None else len(rows)
        size = min(n_sample, BUCKET_SAMPLE_TOKENS)
        picks = rng.choice(n_sample, size=size, replace=False)
        probe = np.asarray(vectors[picks if rows is None else rows[picks]], dtype=np.float32)
        residuals = probe - centroids[nearest_centroid(probe, centroids)]
        levels = 2**nbits
        values = residuals.ravel()
        cutoffs = np.quantile(values, np.arange(1, levels) / levels).astype(np.float32)
        weights = np.quantile(values, (np.arange(levels) + 0.5) / levels).astype(np.float32)
        return cls(centroids, cutoffs, weights, nbits, total)

    # ------------------------------------------------------------------ coding

    def encode(self, vectors: np.ndarray | Decoded) -> tuple[np.ndarray, np.ndarray]:
        """``(codes [n] int32, packed [n, code_bytes] uint8)`` for ``[n, dim]`` vectors (or
        another codec's :class:`Decoded` tokens), ``ENCODE_BLOCK`` rows at a time so float32
        temporaries stay small."""
        codes = np.empty(len(vectors), dtype=np.int32)
        packed = np.empty((len(vectors), self.code_bytes), dtype=np.uint8)
        for lo in range(0, len(vectors), ENCODE_BLOCK):
            x = np.array(vectors[lo : lo + ENCODE_BLOCK], dtype=np.float32)  # changed below
            codes[lo : lo + len(x)] = block_codes = self._assigner(x)
            x -= self.centroids[block_codes]
            packed[lo : lo + len(x)] = self._pack(x)
        return codes, packed

    def _pack(self, residual: np.ndarray) -> np.ndarray:
        buckets = np.zeros(residual.shape, dtype=np.uint8)
        for cut in self.cutoffs:  # a few comparisons beat searchsorted on 10^8 values
            buckets += residual > cut
        per = self.dims_per_byte
        shifts = (self.nbits * np.arange(per - 1, -1, -1)).astype(np.uint8)
        grouped = buckets.reshape(len(residual), self.code_bytes, per) << shifts
        return np.bitwise_or.reduce(grouped, axis=2) if per > 1 else grouped[..., 0]

    def byte_table(self) -> np.ndarray:
        """``[256, dims_per_byte]`` float32: the decoded residual values of each byte value."""
        per, mask = self.dims_per_byte, (1 << self.nbits) - 1
        values = np.arange(256)[:, None]
        shifts = self.nbits * np.arange(per - 1, -1, -1)[None, :]
        return self.weights[(values >> shifts) & mask].astype(np.float32)

    def decode(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """``[n, dim]`` float32 approximations of the encoded vectors."""
        from colmax.index.kernels import decode_tokens

        codes = np.ascontiguousarray(codes, dtype=np.int32)
        packed = np.ascontiguousarray(packed, dtype=np.uint8)
        return decode_tokens(self.centroids, codes, packed, self._table)

    def decoded(self, codes: np.ndarray, packed: np.ndarray) -> Decoded:
        """The encoded tokens as a lazy ``[n, dim]`` array: slicing it decodes that slice only
        (re-encoding or sampling a block at a time never holds every decoded vector)."""
        return Decoded(self, codes, packed)

    def query_tables(self, query: np.ndarray) -> np.ndarray:
        """``[query_len, code_bytes, 256]`` float32: ``tables[t, j, v]`` is query token ``t``'s
        dot product with the residual dims that byte ``j`` holds when its value is ``v``."""
        q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
        # one matmul, [T * bytes, per] x [per, 256]: 20x a loop; torch's, which keeps to the
        # threads colmax sets (numpy's BLAS would start its own)
        tables = q.reshape(-1, self.dims_per_byte) @ torch.from_numpy(self._table).T
        return tables.reshape(len(q), -1, 256).numpy()

    @functools.cached_property
    def _assigner(self) -> Assigner:
        return Assigner(self.centroids)

    @functools.cached_property
    def _table(self) -> np.ndarray:
        return np.ascontiguousarray(self.byte_table())

    # ------------------------------------------------------------------ files

    def save(self, path: Path) -> int:
        arrays = {
            "centroids": self.centroids.astype(np.float16),
            "cutoffs": self.cutoffs,
            "weights": self.weights,
        }
        meta = {"kind": "codec", "nbits": self.nbits, "trained_tokens": self.trained_tokens}
        return write_bundle(path, arrays, meta)

    @classmethod
    def load(cls, path: Path) -> ResidualCodec:
        bundle = Bundle(path)
        try:
            return cls(
                np.asarray(bundle["centroids"], dtype=np.float32),
                np.array(bundle["cutoffs"], dtype=np.float32),
                np.array(bundle["weights"], dtype=np.float32),
                int(bundle.meta["nbits"]),
                int(bundle.meta["trained_tokens"]),
            )
        finally:
            bundle.close()


@dataclass(frozen=True)
class Decoded:
    """Tokens encoded by ``codec``, decoded slice by slice (see :meth:`ResidualCodec.decoded`)."""

    codec: ResidualCodec
    codes: np.ndarray
    packed: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice):
            raise TypeError("Decoded supports slices only")
        return self.codec.decode(self.codes[rows], self.packed[rows])
