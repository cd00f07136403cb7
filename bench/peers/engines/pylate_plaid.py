"""PyLate's PLAID index (``pylate.indexes.PLAID``, fast-plaid backend, the default ``use_fast``),
searched through ``pylate.retrieve.ColBERT`` as PyLate documents; no model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["pylate", "fast-plaid", "torch", "sentence-transformers", "transformers"]

# pylate.indexes.PLAID defaults in pylate 1.6.0 (nbits 4 there; run_peer.py passes --nbits).
DEFAULTS: dict[str, Any] = {
    "nbits": 4,
    "kmeans_niters": 4,
    "max_points_per_centroid": 256,
    "n_samples_kmeans": None,
    "seed": 42,
    "use_triton": False,  # CPU only
    "n_ivf_probe": 8,
    "n_full_scores": 8192,
    "batch_size": 1 << 18,
    "num_threads": None,  # None = fast-plaid's default; the QPS run passes `threads`
}
BUILD_KEYS = {
    "nbits",
    "kmeans_niters",
    "max_points_per_centroid",
    "n_samples_kmeans",
    "seed",
    "use_triton",
}
BATCH = True
NOTES = (
    "indexes.PLAID(index_folder, index_name='pylate', override=True, device='cpu', "
    "show_progress=False).add_documents(ids '0'..'n-1', list of float32 numpy arrays); search: "
    "retrieve.ColBERT(index).retrieve(queries, k) (end-to-end index: calls the index directly). "
    "PyLate 1.6.0 pins fast-plaid 1.4.6 (older than the standalone fast-plaid peer). The latency "
    "run uses num_threads=None (one query: no joblib), the QPS run num_threads=threads."
)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def _index(index_dir: Path, params: dict, threads: int | None, override: bool):
    from pylate import indexes

    return indexes.PLAID(
        index_folder=str(index_dir),
        index_name="pylate",
        override=override,
        nbits=params["nbits"],
        kmeans_niters=params["kmeans_niters"],
        max_points_per_centroid=params["max_points_per_centroid"],
        n_samples_kmeans=params["n_samples_kmeans"],
        seed=params["seed"],
        use_triton=params["use_triton"],
        n_ivf_probe=params["n_ivf_probe"],
        n_full_scores=params["n_full_scores"],
        batch_size=params["batch_size"],
        num_threads=threads,
        show_progress=False,
        device="cpu",
    )


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    _torch(threads)
    index = _index(index_dir, params, params["num_threads"], override=True)
    index.add_documents(documents_ids=[str(i) for i in range(len(docs))], documents_embeddings=docs)
    return {}


class _Handle:
    def __init__(self, index_dir: Path, params: dict) -> None:
        self.index_dir, self.params, self.by_threads = index_dir, params, {}

    def retriever(self, threads: int | None):
        if threads not in self.by_threads:
            from pylate import retrieve

            index = _index(self.index_dir, self.params, threads, override=False)
            self.by_threads[threads] = retrieve.ColBERT(index=index)
        return self.by_threads[threads]


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    _torch(threads)
    handle = _Handle(index_dir, params)
    handle.retriever(params["num_threads"])
    return handle


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    _torch(threads)
    nt = params["num_threads"] if len(queries) == 1 else (params["num_threads"] or threads)
    out = handle.retriever(nt).retrieve(queries_embeddings=queries, k=k, device="cpu")
    return [[(int(r["id"]), float(r["score"])) for r in hits] for hits in out]
