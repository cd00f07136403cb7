"""Teacher scores over each example's candidates, and the teacher's logits for distillation.

A teacher is a weighted mean of three component scores, each z-scored over one query's
candidates (the positive and its mined negatives) so that their scales agree:

* ``maxsim``: all-MiniLM-L6-v2's raw token vectors with MaxSim (``maxsim-raw`` in
  ``colmax eval``: no markers, no padding, no projection);
* ``bm25``: BM25 with the corpus's statistics (bm25s's Lucene formula, k1 0.9, b 0.4, the
  words of :mod:`colmax.eval.tokenize_text`), computed for any text, so that a positive that is
  a cut-down document (a title's abstract, a sentence's rest) is scored as shown;
* ``biencoder``: the same MiniLM's mean-pooled embedding, cosine.

The components are stored per example (``[n, 1 + depth]``, NaN where a list is shorter) in an
``.npz`` cache, so teachers can be recombined without encoding anything again.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

COMPONENTS = ("maxsim", "bm25", "biencoder")


class Bm25Scorer:
    """BM25 of a query against any text, with document frequencies from the corpus."""

    def __init__(
        self, corpus_texts: Sequence[str], k1: float | None = None, b: float | None = None
    ):
        from colmax.eval.methods import BM25_B, BM25_K1
        from colmax.eval.tokenize_text import tokenize

        self.k1 = BM25_K1 if k1 is None else k1
        self.b = BM25_B if b is None else b
        self._tokenize = tokenize
        df: Counter[str] = Counter()
        total = 0
        for text in corpus_texts:
            words = tokenize(text)
            total += len(words)
            df.update(set(words))
        n = max(1, len(corpus_texts))
        self.avgdl = max(1.0, total / n)
        self.idf = {w: math.log(1.0 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self._bags: dict[str, tuple[Counter[str], int]] = {}

    def _bag(self, text: str) -> tuple[Counter[str], int]:
        bag = self._bags.get(text)
        if bag is None:
            words = self._tokenize(text)
            bag = (Counter(words), len(words))
            if len(self._bags) < 50_000:
                self._bags[text] = bag
        return bag

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        words = [w for w in set(self._tokenize(query)) if w in self.idf]
        out = np.zeros(len(texts), dtype=np.float32)
        for i, text in enumerate(texts):
            tf, length = self._bag(text)
            norm = self.k1 * (1.0 - self.b + self.b * length / self.avgdl)
            out[i] = sum(self.idf[w] * tf[w] / (tf[w] + norm) for w in words if w in tf)
        return out


def component_scores(
    queries: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    width: int,
    query_embeddings: np.ndarray,
    query_tokens: list[np.ndarray],
    text_of: Callable[[str], str],
    embedding_of: Callable[[str], np.ndarray],
    tokens_of: Callable[[str], np.ndarray],
    bm25: Bm25Scorer,
) -> dict[str, np.ndarray]:
    """``[n, width]`` score arrays per component for candidate keys (NaN past a list's end).

    ``text_of`` / ``embedding_of`` / ``tokens_of`` map a candidate key to its text, bi-encoder
    embedding and raw token vectors.
    """
    from colmax.eval.neural import maxsim_rerank

    n = len(queries)
    out = {c: np.full((n, width), np.nan, dtype=np.float32) for c in COMPONENTS}
    for i, (query, keys) in enumerate(zip(queries, candidates, strict=True)):
        m = len(keys)
        if m == 0:
            continue
        out["maxsim"][i, :m] = maxsim_rerank(query_tokens[i], [tokens_of(k) for k in keys])
        emb = np.stack([embedding_of(k) for k in keys])
        out["biencoder"][i, :m] = emb @ query_embeddings[i]
        out["bm25"][i, :m] = bm25.score(query, [text_of(k) for k in keys])
    return out


def zscore(scores: np.ndarray) -> np.ndarray:
    """Per row, (x - mean) / std over the finite entries; NaN stays NaN."""
    mean = np.nanmean(scores, axis=-1, keepdims=True)
    std = np.nanstd(scores, axis=-1, keepdims=True)
    return (scores - mean) / np.maximum(std, 1e-6)


def teacher_weights(kind: str, fusion: dict[str, float]) -> dict[str, float]:
    """The component weights a teacher name stands for."""
    if kind in COMPONENTS:
        return {kind: 1.0}
    if kind == "fusion":
        weights = {c: w for c, w in fusion.items() if w}
        if not weights:
            from colmax.errors import InputError

            raise InputError("teacher 'fusion' needs a non-zero teacher_weights entry")
        return weights
    return {}


def fuse(components: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of z-scored components (rows as in ``components``); the weights are
    relative (divided by their sum), so one component alone is just its z-score."""
    total = None
    norm = sum(abs(w) for w in weights.values())
    if not norm:
        raise ValueError("no teacher components to fuse")
    for name, w in weights.items():
        part = (w / norm) * zscore(components[name])
        total = part if total is None else total + part
    return total  # type: ignore[return-value]


def save_components(path: Path, components: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` atomically (temporary name, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    with tmp.open("wb") as f:
        np.savez(f, **components)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_components(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return {c: data[c] for c in COMPONENTS}
    except (OSError, ValueError, KeyError):
        return None  # torn or stale: compute again
