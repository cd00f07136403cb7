"""Validation on the held-out training queries: nDCG@10 of the student's MaxSim.

* :meth:`Validator.rerank` (during training, cheap): each query's pool from
  :mod:`colmax.train.prepare` re-ranked; the pool's documents are encoded once per call.
* :meth:`Validator.full_corpus` (at the end): exact MaxSim over every document.

Both take an :class:`~colmax.encoder.encoder.Encoder` (the trainer wraps its model in one).
Vectors are encoded once at the full dim; each Matryoshka dim is a prefix, renormalised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from colmax.train.data import Corpus

if TYPE_CHECKING:
    from colmax.encoder.encoder import Encoder


def ndcg_at_10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    """nDCG@10 by :func:`colmax.eval.metrics.evaluate` (only that metric: less to load)."""
    from colmax.eval.metrics import evaluate

    return evaluate(qrels, run, ("ndcg@10",))["ndcg@10"]


def truncate(vectors: list[np.ndarray], dim: int) -> list[np.ndarray]:
    """The first ``dim`` dims of each array, rows L2-normalised (Matryoshka), float16 like
    the encoder's output (MaxSim computes in float32 block by block)."""
    out = []
    for v in vectors:
        x = v[:, :dim].astype(np.float32)
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out.append(x.astype(np.float16))
    return out


class Validator:
    def __init__(
        self,
        queries: dict[str, str],
        qrels: dict[str, dict[str, int]],
        pool: dict[str, list[str]],
        corpus: Corpus,
        *,
        dims: Sequence[int],
    ) -> None:
        self.qids = [q for q in queries if pool.get(q)]
        self.texts = [queries[q] for q in self.qids]
        self.qrels = qrels
        self.pool = pool
        self.corpus = corpus
        self.dims = list(dims)
        self.pool_docs = sorted({d for q in self.qids for d in pool[q]})

    def rerank(self, encoder: Encoder) -> dict[str, float]:
        """``{"ndcg@10@<dim>": ...}`` over the re-ranking pools, per Matryoshka dim."""
        from colmax.eval.neural import maxsim_rerank

        if not self.qids:
            return {}
        queries, docs = self._encode(encoder, self.pool_docs)
        where = {d: i for i, d in enumerate(self.pool_docs)}
        out = {}
        for dim in self.dims:
            q_dim, d_dim = truncate(queries, dim), truncate(docs, dim)
            run = {}
            for qid, q in zip(self.qids, q_dim):
                cands = self.pool[qid]
                scores = maxsim_rerank(q, [d_dim[where[d]] for d in cands])
                run[qid] = {d: float(s) for d, s in zip(cands, scores)}
            out[f"ndcg@10@{dim}"] = round(ndcg_at_10(self._qrels(), run), 5)
        return out

    def full_corpus(self, encoder: Encoder, *, k: int = 100) -> dict[str, float]:
        """Exact MaxSim over the whole corpus: nDCG@10 and recall@100 per Matryoshka dim."""
        from colmax.eval.metrics import evaluate
        from colmax.eval.neural import maxsim_top_k

        if not self.qids:
            return {}
        queries, docs = self._encode(encoder, self.corpus.ids)
        out = {}
        for dim in self.dims:
            found = maxsim_top_k(truncate(queries, dim), truncate(docs, dim), k)
            run = {
                qid: {self.corpus.ids[i]: float(s) for i, s in zip(ids.tolist(), sc.tolist())}
                for qid, (ids, sc) in zip(self.qids, found)
            }
            scores = evaluate(self._qrels(), run, ("ndcg@10", "recall@100"))
            out[f"ndcg@10@{dim}"] = round(scores["ndcg@10"], 5)
            out[f"recall@100@{dim}"] = round(scores["recall@100"], 5)
        return out

    def _qrels(self) -> dict[str, dict[str, int]]:
        return {q: self.qrels[q] for q in self.qids}

    def _encode(
        self, encoder: Encoder, doc_ids: list[str]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        queries = encoder.encode_queries(self.texts)
        texts = [self.corpus.text(d, "full") for d in doc_ids]
        quiet = logging.getLogger("colmax.encoder.encoder")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "documents were cut" is expected here
        try:
            docs = encoder.encode_documents(texts)
        finally:
            quiet.setLevel(level)
        return queries, docs
