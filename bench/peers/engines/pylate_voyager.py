"""PyLate's Voyager index (HNSW over every token vector, ``pylate.indexes.Voyager``): token-level
candidates, then exact MaxSim rerank of the candidate documents with their stored vectors,
through ``pylate.retrieve.ColBERT`` as PyLate documents; no model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["pylate", "voyager", "torch", "sentence-transformers", "transformers"]

# pylate.indexes.Voyager / retrieve.ColBERT defaults in pylate 1.6.0.
DEFAULTS: dict[str, Any] = {
    "M": 64,
    "ef_construction": 200,
    "ef_search": 200,
    "add_batch_size": 2000,  # Voyager.add_documents(batch_size=2000)
    "k_token": 100,  # retrieve.ColBERT default_k_token (raised to k when k is larger)
    "retrieve_batch_size": 50,  # retrieve.ColBERT default_batch_size
    # not PyLate options (adapter switches; defaults = PyLate as shipped):
    "cache_mappings": False,  # True: load the id-mapping pickles once, not on every call
    "query_threads": None,  # None: voyager query num_threads = the run's thread count
}
BUILD_KEYS = {"M", "ef_construction", "add_batch_size"}
BATCH = True
NOTES = (
    "indexes.Voyager(index_folder, index_name='pylate', override=True, embedding_size=dim, M, "
    "ef_construction, ef_search).add_documents(ids '0'..'n-1', list of float32 numpy arrays); "
    "search: retrieve.ColBERT(index).retrieve(queries, k, device='cpu'). As shipped, PyLate "
    "reloads its id-mapping pickles (one entry per token vector) on every call; "
    "cache_mappings=true loads them once. voyager's Index.query defaults to all cores "
    "(num_threads=-1); the adapter passes the run's thread count (1 for latency) instead. "
    "Voyager's add_items uses all cores during the build."
)


def _torch(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


class _QueryThreads:
    """Proxy for a voyager.Index whose query() gets a fixed num_threads."""

    def __init__(self, index: Any, threads: int) -> None:
        self._index, self._threads = index, threads

    def query(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("num_threads", self._threads)
        return self._index.query(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def _index(index_dir: Path, params: dict, dim: int, override: bool):
    from pylate import indexes

    return indexes.Voyager(
        index_folder=str(index_dir),
        index_name="pylate",
        override=override,
        embedding_size=dim,
        M=params["M"],
        ef_construction=params["ef_construction"],
        ef_search=params["ef_search"],
    )


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    _torch(threads)
    index = _index(index_dir, params, docs[0].shape[1], override=True)
    index.add_documents(
        documents_ids=[str(i) for i in range(len(docs))],
        documents_embeddings=docs,
        batch_size=params["add_batch_size"],
    )
    return {"dim": int(docs[0].shape[1])}


class _Handle:
    def __init__(self, retriever: Any, index: Any) -> None:
        self.retriever, self.index = retriever, index


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    _torch(threads)
    from pylate import retrieve
    from voyager import Index

    with (index_dir / "pylate" / "index.voyager").open("rb") as f:
        dim = Index.load(f).num_dimensions
    index = _index(index_dir, params, dim, override=False)
    index.index = _QueryThreads(index.index, params["query_threads"] or threads)
    if params["cache_mappings"]:
        d2e, e2d = (
            index._load_documents_ids_to_embeddings(),
            index._load_embeddings_to_documents_ids(),
        )
        index._load_documents_ids_to_embeddings = lambda: d2e
        index._load_embeddings_to_documents_ids = lambda: e2d
    return _Handle(retrieve.ColBERT(index=index), index)


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    _torch(threads)
    out = handle.retriever.retrieve(
        queries_embeddings=queries,
        k=k,
        k_token=params["k_token"],
        device="cpu",
        batch_size=params["retrieve_batch_size"],
    )
    return [[(int(r["id"]), float(r["score"])) for r in hits] for hits in out]
