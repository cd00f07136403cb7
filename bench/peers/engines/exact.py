"""Not a peer: exhaustive exact MaxSim in numpy over the float16 input vectors (the reference
every approximate engine is trying to reproduce). Runs in any peer venv (numpy only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["numpy"]
DEFAULTS: dict[str, Any] = {}
BUILD_KEYS: set[str] = set()
BATCH = False
NOTES = (
    "index = the document token vectors as one float16 [tokens, dim] .npy (2*dim bytes/token) "
    "+ doc lengths; search: float32 matmul per block of tokens, max per document "
    "(np.maximum.reduceat), sum over query tokens, argpartition top-k. Exact scores."
)


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    np.save(index_dir / "vectors.npy", np.concatenate(docs).astype(np.float16))
    np.save(index_dir / "doclens.npy", np.array([len(d) for d in docs], dtype=np.int64))
    return {}


class _Index:
    def __init__(self, index_dir: Path) -> None:
        self.vectors = np.load(index_dir / "vectors.npy").astype(np.float32)
        lens = np.load(index_dir / "doclens.npy")
        self.starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        self.n = len(lens)


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    return _Index(index_dir)


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    out = []
    for q in queries:
        sims = handle.vectors @ q.T  # [tokens, q_len]
        per_doc = np.maximum.reduceat(sims, handle.starts, axis=0)  # [docs, q_len]
        scores = per_doc.sum(axis=1)
        kk = min(k, handle.n)
        top = np.argpartition(-scores, kk - 1)[:kk]
        top = top[np.argsort(-scores[top], kind="stable")]
        out.append([(int(i), float(scores[i])) for i in top])
    return out
