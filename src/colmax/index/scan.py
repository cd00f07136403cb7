"""Exact MaxSim over every live document, in bounded memory.

The live documents are cut into chunks of about ``chunk_tokens`` tokens, each inside one
segment and ordered by position so that reads are sequential. Each chunk is scored with
:func:`colmax.maxsim.maxsim_ragged` (the one MaxSim; it converts the float16 block to float32)
and merged into a running top-k with ``np.argpartition``. Peak memory is one chunk in float32
plus its similarity matrix, whatever the corpus size; only the per-document int arrays of
:class:`Layout` grow with the corpus.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from colmax.index.vectors import VectorStore
from colmax.maxsim import maxsim_ragged

# 65536 tokens x 384 dims is 96 MiB in float32. On a 2-core CPU 16K..128K-token chunks
# scored 1M tokens equally fast (~2 s, half of it the float16 -> float32 conversion).
DEFAULT_CHUNK_TOKENS = 65536
# Cap on the [queries * query_len, chunk_tokens] float32 similarity matrix of one pass.
SIMILARITY_BUDGET_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Layout:
    """Where the live documents' vectors are, ordered by (segment, start), cut into chunks."""

    internal_ids: np.ndarray  # [n] int64
    segments: np.ndarray  # [n] int64
    starts: np.ndarray  # [n] int64, first row in the segment
    lengths: np.ndarray  # [n] int64, rows (tokens)
    chunks: tuple[tuple[int, int], ...]  # (lo, hi) document index ranges
    chunk_tokens: int

    def __len__(self) -> int:
        return len(self.internal_ids)


def build_layout(table: np.ndarray, chunk_tokens: int) -> Layout:
    """Layout from ``DocStore.live_layout()`` rows (internal_id, segment, start, length).

    A chunk holds the documents whose first token falls in one ``chunk_tokens`` window of its
    segment, so it never exceeds ``chunk_tokens`` plus one document.
    """
    ids, segments, starts, lengths = (np.ascontiguousarray(table[:, i]) for i in range(4))
    n = len(ids)
    chunks: list[tuple[int, int]] = []
    if n:
        seg_bounds = [0, *(np.flatnonzero(segments[1:] != segments[:-1]) + 1).tolist(), n]
        for a, b in itertools.pairwise(seg_bounds):
            before = np.cumsum(lengths[a:b]) - lengths[a:b]
            window = before // max(1, chunk_tokens)
            cuts = (np.flatnonzero(window[1:] != window[:-1]) + 1 + a).tolist()
            edges = [a, *cuts, b]
            chunks.extend(itertools.pairwise(edges))
    return Layout(ids, segments, starts, lengths, tuple(chunks), chunk_tokens)


def query_groups(n_queries: int, query_len: int, chunk_tokens: int) -> Iterator[slice]:
    """Slices of queries scored in one pass, so the similarity matrix stays within budget."""
    per_query = max(1, query_len) * max(1, chunk_tokens) * 4
    size = max(1, SIMILARITY_BUDGET_BYTES // per_query)
    for start in range(0, n_queries, size):
        yield slice(start, min(start + size, n_queries))


def search_queries(
    queries: list[np.ndarray], layout: Layout, store: VectorStore, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`exact_top_k` for ``[query_len, dim]`` queries of any lengths.

    Queries share passes over the vectors, as many per pass as the similarity budget allows.
    Shorter queries are padded with zero vectors: a zero row adds max(0) = 0 to every score,
    so padding is exact, and one pass serves queries of every length (grouping by length
    instead costs one pass over the corpus per distinct length).
    """
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
    if not len(layout):
        return [empty] * len(queries)
    longest = max(len(q) for q in queries)
    dim = queries[0].shape[-1]
    stacked = np.zeros((len(queries), longest, dim), dtype=np.float32)
    for i, q in enumerate(queries):
        stacked[i, : len(q)] = q
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for part in query_groups(len(queries), longest, layout.chunk_tokens):
        found.extend(exact_top_k(stacked[part], layout, store, k))
    return found


def exact_top_k(
    queries: np.ndarray, layout: Layout, store: VectorStore, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Best ``k`` live documents per query, by exact MaxSim.

    Args:
        queries: ``[n_queries, query_len, dim]``.

    Returns:
        Per query ``(internal_ids, scores)``, best first; ties broken by lower internal id;
        documents without vectors (score ``-inf``) left out.
    """
    n_q = len(queries)
    best_s = np.empty((n_q, 0), dtype=np.float32)
    best_p = np.empty((n_q, 0), dtype=np.int64)
    for lo, hi in layout.chunks:
        lengths = layout.lengths[lo:hi]
        block = store.gather(int(layout.segments[lo]), layout.starts[lo:hi], lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        scores = maxsim_ragged(queries, block, offsets)  # [n_q, hi - lo]
        cand_s = np.concatenate([best_s, scores], axis=1)
        positions = np.broadcast_to(np.arange(lo, hi, dtype=np.int64), scores.shape)
        cand_p = np.concatenate([best_p, positions], axis=1)
        if cand_s.shape[1] > k:
            keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            cand_s = np.take_along_axis(cand_s, keep, axis=1)
            cand_p = np.take_along_axis(cand_p, keep, axis=1)
        best_s, best_p = cand_s, cand_p
    out = []
    for q in range(n_q):
        ids = layout.internal_ids[best_p[q]]
        order = np.lexsort((ids, -best_s[q]))
        finite = np.isfinite(best_s[q][order])
        out.append((ids[order][finite], best_s[q][order][finite]))
    return out
