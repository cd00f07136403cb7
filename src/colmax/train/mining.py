"""Hard negatives: each query's best BM25 and bi-encoder hits that are not known positives.

BM25 is bm25s with the settings and word splitting of ``colmax eval`` (k1 0.9, b 0.4,
:func:`colmax.eval.tokenize_text.tokenize`); the bi-encoder is all-MiniLM-L6-v2
(:mod:`colmax.train.minilm`). The two rankings are interleaved (BM25 first, then bi-encoder,
rank by rank), duplicates and known positives dropped, and the first ``depth`` kept. Results are
cached in a JSON file named by a hash of everything they depend on, so a second run (or the
next sitting of a long one) reads them instead of mining again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from colmax.eval.fusion import RRF_K
from colmax.train.data import Corpus, Example

RANK_DEPTH = 100  # first-stage hits per method before merging


class Bm25:
    """A bm25s index over the corpus's full texts."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        from colmax.eval.methods import BM25_B, BM25_K1
        from colmax.eval.tokenize_text import tokenize_many

        self.model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        self.model.index(tokenize_many(texts), show_progress=False)
        self.n_docs = len(texts)

    def rank(self, queries: Sequence[str], k: int) -> list[np.ndarray]:
        """Document positions, best first, per query (only documents sharing a word)."""
        from colmax.eval.tokenize_text import tokenize

        vocab = self.model.vocab_dict
        k = min(k, self.n_docs)
        out = []
        for text in queries:
            words = [w for w in tokenize(text) if w in vocab]
            if not words:
                out.append(np.empty(0, dtype=np.int64))
                continue
            docs, scores = self.model.retrieve([words], k=k, show_progress=False, n_threads=1)
            out.append(np.asarray(docs[0])[np.asarray(scores[0]) > 0].astype(np.int64))
        return out


def dense_rank(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 512) -> list[np.ndarray]:
    """Positions of the ``k`` best documents by dot product, per query, in chunks."""
    from colmax.eval.neural import top_k

    out = []
    for lo in range(0, len(queries), chunk):
        scores = queries[lo : lo + chunk] @ docs.T
        out.extend(top_k(row, k)[0].astype(np.int64) for row in scores)
    return out


def merge(rankings: Sequence[Sequence[int]], skip: set[int], depth: int) -> list[int]:
    """Interleave rankings rank by rank; drop duplicates and ``skip``; keep ``depth``."""
    seen: set[int] = set()
    out: list[int] = []
    longest = max((len(r) for r in rankings), default=0)
    for rank in range(longest):
        for ranking in rankings:
            if rank < len(ranking):
                doc = int(ranking[rank])
                if doc not in seen and doc not in skip:
                    seen.add(doc)
                    out.append(doc)
                    if len(out) == depth:
                        return out
    return out


def mine(
    examples: list[Example],
    corpus: Corpus,
    *,
    methods: Sequence[str],
    depth: int,
    bm25: Bm25 | None,
    query_embeddings: np.ndarray | None,
    doc_embeddings: np.ndarray | None,
) -> list[list[str]]:
    """Each example's ``depth`` hard negatives (corpus ids), known positives skipped."""
    queries = [e.query for e in examples]
    rankings: list[list[np.ndarray]] = []
    if "bm25" in methods:
        assert bm25 is not None
        rankings.append(bm25.rank(queries, RANK_DEPTH))
    if "biencoder" in methods:
        assert query_embeddings is not None and doc_embeddings is not None
        rankings.append(dense_rank(query_embeddings, doc_embeddings, RANK_DEPTH))
    out = []
    for i, example in enumerate(examples):
        skip = {corpus.position[d] for d in example.known if d in corpus.position}
        picked = merge([r[i] for r in rankings], skip, depth)
        out.append([corpus.ids[p] for p in picked])
    return out


def rrf_pool(rankings: Sequence[Sequence[int]], size: int, k: int = RRF_K) -> list[int]:
    """The ``size`` best positions by reciprocal rank fusion (rank counted from 1)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, 1):
            scores[int(doc)] = scores.get(int(doc), 0.0) + 1.0 / (k + rank)
    return [d for d, _ in sorted(scores.items(), key=lambda i: (-i[1], i[0]))[:size]]


# --------------------------------------------------------------------------- cache


def cache_key(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_json_cache(path: Path) -> Any | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a torn write from a killed run: compute again


def write_json_cache(path: Path, data: Any) -> None:
    """Write atomically (temporary name, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
