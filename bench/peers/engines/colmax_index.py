"""colmax itself (runs in the repository's own venv, not a peer venv): ``Index.create`` +
``add(vectors=...)``, then ``search_vectors`` with ``SearchParams``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["colmax", "numba", "torch"]
DEFAULTS: dict[str, Any] = {
    "nbits": 2,
    "centroid_factor": 8.0,
    "nprobe": None,  # None: chosen per call from k and the index size
    "candidates": None,
    "rescore": False,
}
BUILD_KEYS = {"nbits", "centroid_factor"}
BATCH = True
INPUT = "stream"  # run_peer.py passes the documents read from disk one at a time (float16)
NOTES = (
    "colmax.Index.create(dir, the bundled model by name with dim=128, nbits; no weights are "
    "loaded, nothing is encoded) then add(records, vectors=docs) in one "
    "call (centroids trained on the vectors, 2 threads for the build), the documents streamed "
    "from the vectors file as float16 (colmax consumes any iterable in bounded chunks, so they "
    "are not held in memory; the peers' APIs take them in memory as float32, so their "
    "rss_start_mb includes 760 MB of input); search_vectors(queries, k, "
    "params=SearchParams(nprobe, candidates, rescore), threads=threads, with_text=False). "
    "nprobe None = colmax's per-call default."
)


def _threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    _threads(threads)
    from colmax.index import Index

    path = index_dir / "colmax"
    with Index.create(  # records the bundled model by name: its weights are never loaded
        path, None, dim=docs[0].shape[1], nbits=params["nbits"],
        centroid_factor=params["centroid_factor"],
    ) as idx:  # fmt: skip
        records = [{"id": str(i), "text": str(i)} for i in range(len(docs))]
        idx.add(records, vectors=docs)  # default batches of 256 documents
        info = idx.info()
    return {"centroids": info["centroids"], "colmax_index_bytes": info["index_bytes"]}


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    _threads(threads)
    from colmax.index import Index

    return Index.open(index_dir / "colmax", readonly=True)  # the model loads only to encode text


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    from colmax.index import SearchParams

    p = SearchParams(params["nprobe"], params["candidates"], params["rescore"])
    found = handle.search_vectors(list(queries), k, params=p, threads=threads, with_text=False)
    return [[(int(h.id), float(h.score)) for h in hits] for hits in found]
