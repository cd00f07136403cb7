"""Search over a :class:`Snapshot`: WARP-style candidate scoring, optional exact re-scoring.

Per query: score every centroid (one matmul), probe each query token's ``nprobe`` best lists,
and score the tokens found there straight from their packed residuals (``kernels.score_part``).
A document a query token did not reach gets that token's lowest probed centroid score instead
(an estimate of its best similarity among the unprobed lists). With ``rescore=True`` the best
``candidates`` documents are decompressed whole and scored by plain MaxSim, which removes the
estimate. Raw parts (an index too small to have centroids) are always scored exactly.

Parameters are chosen per call from ``k`` and the index's size and never stored.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from colmax.errors import InputError
from colmax.index.codec import ResidualCodec
from colmax.index.kernels import score_part, score_scratch, tokens_of_docs
from colmax.index.parts import Part
from colmax.index.snapshot import Snapshot
from colmax.maxsim import maxsim_ragged

PROBE_TOKENS = 2048
Found = tuple[np.ndarray, np.ndarray]  # (internal ids, scores), best first


@dataclass(frozen=True)
class SearchParams:
    """Knobs of one search; ``None`` means "choose from k and the index size"."""

    nprobe: int | None = None  # lists probed per query token
    candidates: int | None = None  # documents re-scored exactly (rescore=True)
    rescore: bool = False

    def resolve(self, k: int, num_centroids: int, tokens: int) -> tuple[int, int]:
        """``(nprobe, candidates)`` for this call.

        Default nprobe: 16 lists per query token for k <= 20 (32 beyond), raised on small
        indexes until a query token scores about PROBE_TOKENS tokens (cheap there, and short
        lists make the missing-similarity estimate coarse).
        """
        for name in ("nprobe", "candidates"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise InputError(f"{name} must be a whole number of at least 1, not {value!r}")
        per_list = max(1.0, tokens / max(1, num_centroids))
        nprobe = self.nprobe or max(16 if k <= 20 else 32, math.ceil(PROBE_TOKENS / per_list))
        candidates = self.candidates or max(4 * k, 64)
        return int(min(nprobe, max(1, num_centroids))), int(max(candidates, k))


def search(
    snap: Snapshot, queries: list[np.ndarray], k: int, params: SearchParams, threads: int = 1
) -> list[Found]:
    """Best ``k`` live documents for each ``[query_len, dim]`` query."""
    codec = snap.codec
    qs = [np.ascontiguousarray(q, dtype=np.float32) for q in queries]
    nprobe, candidates = params.resolve(k, codec.num_centroids if codec else 1, snap.tokens)
    keep = candidates if params.rescore else k
    centroid_scores: list[np.ndarray | None] = [None] * len(qs)
    if codec is not None and qs:
        stacked = torch.from_numpy(np.concatenate(qs))
        scores = (stacked @ torch.from_numpy(codec.centroids).T).numpy()
        centroid_scores = np.split(scores, np.cumsum([len(q) for q in qs])[:-1])

    def one(i: int) -> Found:
        found = _candidates(snap, qs[i], centroid_scores[i], nprobe, keep)
        if params.rescore:
            found = _rescore(snap, qs[i], found)
        return _top(snap, found, k)

    if threads > 1 and len(qs) > 1:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(len(qs))))
    return [one(i) for i in range(len(qs))]


# (part index, local doc numbers, scores)
_PartFound = list[tuple[int, np.ndarray, np.ndarray]]


def _candidates(
    snap: Snapshot, q: np.ndarray, cs: np.ndarray | None, nprobe: int, keep: int
) -> _PartFound:
    probe = tables = missing = None
    if cs is not None and snap.codec is not None:
        top = torch.topk(torch.from_numpy(cs), nprobe, dim=1, sorted=False)
        probe = top.indices.numpy().astype(np.int32)
        probe_scores = top.values.numpy()
        missing = probe_scores.min(axis=1)
        tables = snap.codec.query_tables(q)
    out: _PartFound = []
    scratch = score_scratch(max((p.n_docs for p in snap.parts if p.kind != "raw"), default=0))
    for i, (part, dead) in enumerate(zip(snap.parts, snap.dead)):
        if part.kind == "raw":
            docs = np.arange(part.n_docs, dtype=np.int32)
            scores = _exact(q, np.asarray(part.bundle["vectors"]), part.doc_lens)
        else:
            b = part.bundle
            docs, scores = score_part(
                probe, probe_scores, missing, tables,
                b["offsets"], b["residuals"], b["local_doc"], *scratch,
            )  # fmt: skip
        live = ~dead[docs]
        docs, scores = docs[live], scores[live]
        if len(docs) > keep:
            best = np.argpartition(-scores, keep - 1)[:keep]
            docs, scores = docs[best], scores[best]
        out.append((i, docs, scores))
    return _merge_top(out, keep)


def _merge_top(found: _PartFound, keep: int) -> _PartFound:
    """Only the ``keep`` best over all parts."""
    if not found:
        return found
    scores = np.concatenate([s for _, _, s in found])
    if len(scores) <= keep:
        return found
    cut = np.partition(-scores, keep - 1)[keep - 1]
    out = []
    for i, docs, s in found:
        mask = -s <= cut
        out.append((i, docs[mask], s[mask]))
    return out


def _exact(q: np.ndarray, vectors: np.ndarray, lens: np.ndarray) -> np.ndarray:
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return maxsim_ragged(q[None], vectors, offsets)[0].astype(np.float32)


def decode_docs(
    part: Part, codec: ResidualCodec, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(local doc numbers sorted, their decompressed vectors back to back)``."""
    wanted = np.zeros(part.n_docs, dtype=np.bool_)
    wanted[local] = True
    b = part.bundle
    positions, centroids = tokens_of_docs(b["offsets"], b["local_doc"], wanted, part.doc_lens)
    vectors = codec.decode(centroids, np.asarray(part.bundle["residuals"])[positions])
    return np.flatnonzero(wanted), vectors


def _rescore(snap: Snapshot, q: np.ndarray, found: _PartFound) -> _PartFound:
    out: _PartFound = []
    for i, docs, scores in found:
        part = snap.parts[i]
        if part.kind == "raw" or not len(docs) or snap.codec is None:
            out.append((i, docs, scores))
            continue
        local, vectors = decode_docs(part, snap.codec, docs)
        out.append((i, local.astype(np.int32), _exact(q, vectors, part.doc_lens[local])))
    return out


def _top(snap: Snapshot, found: _PartFound, k: int) -> Found:
    """Internal ids and scores, best first, ties by lower id."""
    from_parts = [(p, d, s) for p, d, s in found if len(d)]
    if not from_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    ids = np.concatenate(
        [np.asarray(snap.parts[p].doc_ids, dtype=np.int64)[d] for p, d, _ in from_parts]
    )
    scores = np.concatenate([s for _, _, s in from_parts])
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]
