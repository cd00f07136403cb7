"""xtr-warp-rs (WARP engine in Rust over libtorch): ``XTRWarp.create`` / ``load`` / ``search``
on device "cpu"."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["xtr-warp-rs", "torch"]

# XTRWarp.create / load / search defaults in xtr-warp-rs 2.1.0. The search knobs left at None
# are chosen per call by xtr_warp.hyperparams.optimize from the index density, k and query
# length (the library's documented behaviour).
DEFAULTS: dict[str, Any] = {
    "nbits": 4,
    "kmeans_niters": 4,
    "max_points_per_centroid": 256,
    "n_samples_kmeans": None,
    "seed": 42,
    "num_partitions": None,
    "mmap": True,  # load(mmap=True) default
    "bound": None,
    "nprobe": None,
    "t_prime": None,
    "max_candidates": None,
    "centroid_score_threshold": None,
    "batch_size": 8192,
}
BUILD_KEYS = {
    "nbits",
    "kmeans_niters",
    "max_points_per_centroid",
    "n_samples_kmeans",
    "seed",
    "num_partitions",
}
BATCH = True
NOTES = (
    "XTRWarp(index).create(list of float32 torch tensors, device='cpu', show_progress=False); "
    "load(device='cpu', dtype=float32, mmap=params.mmap); search(top_k=k, num_threads=threads "
    "(1 for the latency run), show_progress=False). A batch of queries is zero-padded to the "
    "longest by the library. Unset search knobs come from xtr_warp.hyperparams.optimize."
)

_SEARCH_KEYS = (
    "bound",
    "nprobe",
    "t_prime",
    "max_candidates",
    "centroid_score_threshold",
    "batch_size",
)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    torch = _torch(threads)
    from xtr_warp import XTRWarp

    XTRWarp(index=str(index_dir)).create(
        embeddings_source=[torch.from_numpy(d) for d in docs],
        device="cpu",
        kmeans_niters=params["kmeans_niters"],
        max_points_per_centroid=params["max_points_per_centroid"],
        nbits=params["nbits"],
        n_samples_kmeans=params["n_samples_kmeans"],
        seed=params["seed"],
        num_partitions=params["num_partitions"],
        show_progress=False,
    )
    info: dict[str, Any] = {}
    for name in ("metadata.json", "plan.json"):
        path = index_dir / name
        if path.is_file():
            import json

            with contextlib.suppress(ValueError):
                info[name] = json.loads(path.read_text())
    return info


def search_bytes(index_dir: Path) -> tuple[int, str]:
    """Bytes of the files a search reads: xtr-warp keeps the per-chunk ``<i>.codes.npy`` /
    ``<i>.residuals.npy`` next to the merged ``*.compacted.npy`` (for later updates); a copy of
    the index without them loads and returns identical results (checked on 500 docs)."""
    import re

    skip = re.compile(r"^\d+\.(codes|residuals)\.npy$")
    compacted = (index_dir / "codes.compacted.npy").is_file()
    total = 0
    for p in index_dir.iterdir():
        if p.is_file() and not (compacted and skip.match(p.name)):
            total += p.stat().st_size
    return (
        total,
        "excludes the per-chunk <i>.codes.npy/<i>.residuals.npy kept beside *.compacted.npy",
    )


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    torch = _torch(threads)
    from xtr_warp import XTRWarp

    w = XTRWarp(index=str(index_dir))
    w.load(device="cpu", dtype=torch.float32, mmap=params["mmap"])
    return w


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    torch = _torch(threads)
    qs = [torch.from_numpy(q) for q in queries]
    out = handle.search(
        queries_embeddings=qs[0] if len(qs) == 1 else qs,
        top_k=k,
        num_threads=threads,
        show_progress=False,
        **{key: params[key] for key in _SEARCH_KEYS},
    )
    return [[(int(i), float(s)) for i, s in hits] for hits in out]
