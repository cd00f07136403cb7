"""Timing and quality helpers of ``bench/encode.py``: document and single-query timings
with other processes' CPU share, when a timing counts as contended, and how close a variant's
vectors and MaxSim scores are to the reference.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _common import CpuMonitor, usable_cores
from encode_backends import Runner

# A timing is "contended" when other processes used more CPU than the cores it left free plus
# this share of the machine. At 1 thread on 2 cores a busy neighbour on the other core is
# tolerated; measured here it slows fp32 by 0-5% and bf16 by 3-8% (shared caches, memory).
CONTENDED = 0.1


def time_documents(
    runner: Runner, docs: list[str], repeats: int
) -> tuple[list[float], list[float | None], list[np.ndarray]]:
    """Wall times of ``repeats`` full runs, other processes' CPU share during each, and the
    vectors of the first run."""
    times: list[float] = []
    others: list[float | None] = []
    first: list[np.ndarray] = []
    for i in range(repeats):
        with CpuMonitor() as monitor:
            start = time.perf_counter()
            out = runner.docs(docs)
            times.append(time.perf_counter() - start)
        others.append(monitor.others)
        if i == 0:
            first = out
    return times, others, first


def query_latency(runner: Runner, queries: list[str], n: int, warmup: int = 10) -> dict[str, Any]:
    """Milliseconds per ``queries([q])`` call, one query at a time."""
    for q in queries[:warmup]:
        runner.queries([q])
    times = []
    with CpuMonitor() as monitor:
        for i in range(n):
            q = queries[i % len(queries)]
            start = time.perf_counter()
            runner.queries([q])
            times.append((time.perf_counter() - start) * 1000)
    arr = np.asarray(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
        "n": n,
        "others_cpu": monitor.others,
    }


def allowed_others(threads: int) -> float:
    """The share of the machine other processes may use without slowing a ``threads`` run."""
    cores = usable_cores()
    return max(0, cores - threads) / cores + CONTENDED


def _contended(others: float | None, threads: int) -> bool:
    return others is not None and others > allowed_others(threads)


def token_cosines(got: list[np.ndarray], ref: list[np.ndarray]) -> np.ndarray:
    if [len(g) for g in got] != [len(r) for r in ref]:
        raise AssertionError("a variant kept a different number of token vectors")
    a = np.concatenate(got).astype(np.float32)
    b = np.concatenate(ref).astype(np.float32)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def maxsim_grid(queries: list[np.ndarray], docs: list[np.ndarray]) -> np.ndarray:
    """``[n_queries, n_docs]`` MaxSim scores (sum over query tokens of the best doc token)."""
    flat = np.concatenate(docs).astype(np.float32)
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    scores = np.empty((len(queries), len(docs)), dtype=np.float32)
    for i, q in enumerate(queries):
        sims = q.astype(np.float32) @ flat.T
        scores[i] = np.maximum.reduceat(sims, starts, axis=1).sum(0)
    return scores


def quality(
    docs: list[np.ndarray],
    queries: list[np.ndarray],
    ref_docs: list[np.ndarray],
    ref_queries: list[np.ndarray],
    n_q: int,
    n_d: int,
) -> dict[str, float]:
    doc_cos = token_cosines(docs, ref_docs)
    query_cos = token_cosines(queries, ref_queries)
    got = maxsim_grid(queries[:n_q], docs[:n_d])
    ref = maxsim_grid(ref_queries[:n_q], ref_docs[:n_d])
    diff = np.abs(got - ref)
    same_top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
    return {
        "doc_cos_mean": float(doc_cos.mean()),
        "doc_cos_min": float(doc_cos.min()),
        "query_cos_mean": float(query_cos.mean()),
        "query_cos_min": float(query_cos.min()),
        "maxsim_max_abs_diff": float(diff.max()),
        "maxsim_mean_abs_diff": float(diff.mean()),
        "maxsim_mean_score": float(np.abs(ref).mean()),
        "maxsim_same_top1": same_top1,
    }


def padding_share(lengths: list[int], batch_size: int, sort: bool) -> float:
    """Fraction of the padded token grid that is padding."""
    order = sorted(lengths) if sort else lengths
    grid = sum(
        max(order[i : i + batch_size]) * len(order[i : i + batch_size])
        for i in range(0, len(order), batch_size)
    )
    return 1 - sum(lengths) / grid
