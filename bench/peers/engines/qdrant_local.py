"""qdrant-client in local mode (no server: the pure-Python/numpy engine inside qdrant-client),
a multivector collection with the MAX_SIM comparator. Local mode has no HNSW: every query is an
exact MaxSim against every stored document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = ["qdrant-client", "numpy"]

DEFAULTS: dict[str, Any] = {
    "mode": "disk",  # "disk": QdrantClient(path=...) (sqlite persistence); "memory": ":memory:"
    "distance": "Cosine",  # vectors are unit length, so Cosine == Dot
    "upsert_batch": 256,  # documents per upsert call
}
BUILD_KEYS = {"mode", "distance", "upsert_batch"}
BATCH = False  # no batch API that parallelises in local mode: QPS uses client threads
NOTES = (
    "QdrantClient(path=index_dir) (mode=disk) or ':memory:'; create_collection(VectorParams("
    "size=dim, distance, multivector_config=MultiVectorConfig(comparator=MAX_SIM))); upsert "
    "PointStruct(id=i, vector=tokens.tolist()) in batches; query_points(query=q.tolist(), "
    "limit=k). Local mode keeps every point in memory as float64 numpy arrays and scores "
    "exhaustively (no index); mode=memory is rebuilt inside the search process (its build time "
    "is then part of that process, index_bytes is null)."
)

COLLECTION = "docs"


def _client(index_dir: Path, params: dict):
    from qdrant_client import QdrantClient

    if params["mode"] == "memory":
        return QdrantClient(location=":memory:")
    return QdrantClient(path=str(index_dir))


def _fill(client: Any, docs: list[np.ndarray], params: dict) -> None:
    from qdrant_client import models

    client.create_collection(
        collection_name=COLLECTION,
        vectors_config=models.VectorParams(
            size=int(docs[0].shape[1]),
            distance=getattr(models.Distance, params["distance"].upper()),
            multivector_config=models.MultiVectorConfig(
                comparator=models.MultiVectorComparator.MAX_SIM
            ),
        ),
    )
    step = params["upsert_batch"]
    for lo in range(0, len(docs), step):
        client.upsert(
            collection_name=COLLECTION,
            points=[
                models.PointStruct(id=i, vector=docs[i].tolist())
                for i in range(lo, min(lo + step, len(docs)))
            ],
        )


def build(docs: list[np.ndarray], index_dir: Path, params: dict, threads: int) -> dict:
    if params["mode"] == "memory":
        return {"note": "memory mode: nothing persisted; the search process rebuilds"}
    client = _client(index_dir, params)
    _fill(client, docs, params)
    client.close()
    return {}


class _Memory:
    docs: list[np.ndarray] | None = None


def load(index_dir: Path, params: dict, threads: int, n_docs: int) -> Any:
    client = _client(index_dir, params)
    if params["mode"] == "memory":
        if _Memory.docs is None:
            raise RuntimeError("memory mode needs the documents (run_peer.py passes them)")
        _fill(client, _Memory.docs, params)
    return client


def search(handle: Any, queries: list[np.ndarray], k: int, params: dict, threads: int):
    out = []
    for q in queries:
        res = handle.query_points(collection_name=COLLECTION, query=q.tolist(), limit=k)
        out.append([(int(p.id), float(p.score)) for p in res.points])
    return out
