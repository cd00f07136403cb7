"""Fusing two ranked runs (the ``hybrid`` method: BM25 + colmax).

* ``rrf`` (the default): reciprocal rank fusion, score = sum over runs of 1 / (60 + rank),
  rank counted from 1 (Cormack et al., 2009). Needs no score calibration, so it is robust
  when BM25 and MaxSim scores live on unrelated scales.
* ``weighted``: each run's scores min-max normalised to [0, 1] per query, then
  ``weight * colmax + (1 - weight) * bm25``; a document missing from a run gets 0 there.
"""

from __future__ import annotations

Run = dict[str, dict[str, float]]
FUSIONS = ("rrf", "weighted")
RRF_K = 60


def rrf(runs: list[Run], k: int = RRF_K) -> Run:
    fused: Run = {}
    for run in runs:
        for qid, hits in run.items():
            ranked = sorted(hits.items(), key=lambda item: -item[1])
            out = fused.setdefault(qid, {})
            for rank, (doc, _) in enumerate(ranked, 1):
                out[doc] = out.get(doc, 0.0) + 1.0 / (k + rank)
    return fused


def _min_max(hits: dict[str, float]) -> dict[str, float]:
    if not hits:
        return {}
    lo, hi = min(hits.values()), max(hits.values())
    if hi <= lo:
        return {d: 1.0 for d in hits}
    return {d: (s - lo) / (hi - lo) for d, s in hits.items()}


def weighted(runs: list[Run], weights: list[float]) -> Run:
    fused: Run = {}
    for run, w in zip(runs, weights, strict=True):
        for qid, hits in run.items():
            out = fused.setdefault(qid, {})
            for doc, s in _min_max(hits).items():
                out[doc] = out.get(doc, 0.0) + w * s
    return fused


def fuse(colmax_run: Run, bm25_run: Run, how: str = "rrf", weight: float = 0.5) -> Run:
    """Fuse colmax and BM25 runs; ``weight`` is colmax's share in ``weighted``."""
    if how == "rrf":
        return rrf([colmax_run, bm25_run])
    if how == "weighted":
        return weighted([colmax_run, bm25_run], [weight, 1.0 - weight])
    raise ValueError(f"unknown fusion {how!r}; choose one of {', '.join(FUSIONS)}")


def truncate(run: Run, k: int) -> Run:
    """Each query's ``k`` best documents."""
    return {q: dict(sorted(h.items(), key=lambda i: -i[1])[:k]) for q, h in run.items()}
