"""fast-plaid (lightonai/fast-plaid): PLAID in Rust over libtorch. ``FastPlaid.create`` /
``FastPlaid.search`` on device "cpu"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["fast-plaid", "torch", "fastkmeans"]

# FastPlaid.create / FastPlaid.search defaults in fast-plaid 1.7.0 (nbits default there is 4;
# run_peer.py passes --nbits, 2 unless given).
DEFAULTS: dict[str, Any] = {
    "nbits": 4,
    "kmeans_niters": 4,
    "max_points_per_centroid": 256,
    "n_samples_kmeans": None,  # library heuristic: min(1 + 16*sqrt(120*n_docs), n_docs) docs
    "seed": 42,
    "use_triton_kmeans": False,  # no GPU here; triton kmeans is GPU-only
    "n_ivf_probe": 8,
    "n_full_scores": 4096,
    "batch_size": "auto",
}
BUILD_KEYS = {
    "nbits",
    "kmeans_niters",
    "max_points_per_centroid",
    "n_samples_kmeans",
    "seed",
    "use_triton_kmeans",
}
BATCH = True
NOTES = (
    "FastPlaid(index, device='cpu'); create(list of float32 torch tensors); search(top_k=k, "
    "show_progress=False). One query: n_processes=1; batch (QPS): n_processes=threads (joblib "
    "threads, fast-plaid's own CPU batch path). Number of centroids: fast-plaid's heuristic "
    "2**floor(log2(16*sqrt(est_tokens)))."
)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    torch = _torch(threads)
    from fast_plaid import search

    index = search.FastPlaid(index=str(index_dir), device="cpu")
    index.create(
        documents_embeddings=[torch.from_numpy(d) for d in docs],
        kmeans_niters=params["kmeans_niters"],
        max_points_per_centroid=params["max_points_per_centroid"],
        nbits=params["nbits"],
        n_samples_kmeans=params["n_samples_kmeans"],
        seed=params["seed"],
        use_triton_kmeans=params["use_triton_kmeans"],
    )
    info: dict[str, Any] = {}
    meta = index_dir / "metadata.json"
    if meta.is_file():
        import json

        info["index_metadata"] = json.loads(meta.read_text())
    return info


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    _torch(threads)
    from fast_plaid import search

    return search.FastPlaid(index=str(index_dir), device="cpu")


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    torch = _torch(threads)
    out = handle.search(
        queries_embeddings=[torch.from_numpy(q) for q in queries],
        top_k=k,
        batch_size=params["batch_size"],
        n_full_scores=params["n_full_scores"],
        n_ivf_probe=params["n_ivf_probe"],
        show_progress=False,
        n_processes=1 if len(queries) == 1 else threads,
    )
    return [[(int(i), float(s)) for i, s in hits] for hits in out]
