"""Rerank caller-given documents with MaxSim; no index needed.

This is the reranking stage of a RAG pipeline: another retriever (BM25, a bi-encoder) returns
candidates, colmax orders them by late interaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from colmax.encoder.encoder import Encoder
from colmax.errors import InputError
from colmax.maxsim import maxsim_ragged, ragged_offsets
from colmax.types import RerankHit

_default_lock = threading.Lock()
_default_encoder: Encoder | None = None


def default_encoder() -> Encoder:
    """The bundled default model, loaded once per process on first use."""
    global _default_encoder
    with _default_lock:
        if _default_encoder is None:
            _default_encoder = Encoder.load()
        return _default_encoder


def rerank(
    query: str,
    documents: Sequence[str],
    top_n: int | None = None,
    *,
    encoder: Encoder | None = None,
) -> list[RerankHit]:
    """Order ``documents`` by MaxSim with ``query``, best first; ``top_n`` keeps the best n.

    Each hit carries its position in ``documents`` (``index``), so callers can map back to
    their own records.
    """
    if not isinstance(query, str) or not query.strip():
        raise InputError("the query is empty; give a non-empty string")
    if isinstance(documents, str):
        raise InputError("documents must be a list of strings, not one string")
    if len(documents) == 0:
        return []
    if top_n is not None and top_n < 1:
        raise InputError(f"top_n must be at least 1, not {top_n}")
    encoder = encoder or default_encoder()
    q = encoder.encode_queries([query])[0]
    docs = encoder.encode_documents(list(documents))
    scores = maxsim_ragged(q, np.concatenate(docs), ragged_offsets(docs))
    order = np.argsort(-scores, kind="stable")
    if top_n is not None:
        order = order[:top_n]
    return [RerankHit(index=int(i), score=float(scores[i]), text=documents[i]) for i in order]
