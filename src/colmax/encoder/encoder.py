"""``Encoder``: text in, float16 token vectors out.

Texts are sorted by token count and batched so that almost no compute goes to padding; results
come back in input order. Queries and documents have separate methods on purpose (no
``is_query`` flag that silently defaults the wrong way).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from colmax.encoder import tokenize as tok
from colmax.encoder.checkpoints import ModelIdentity, load_checkpoint
from colmax.encoder.config import EncoderConfig
from colmax.encoder.memory import tune_malloc
from colmax.encoder.model import ColbertModel
from colmax.errors import DimensionMismatchError, InputError

log = logging.getLogger(__name__)

LENGTH_STEP = 16  # padded lengths are multiples of this (see _pad)

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class EncodeStats:
    """Counts from one encode call (filled in when passed as ``stats=``)."""

    texts: int = 0
    tokens: int = 0
    truncated: int = 0


def default_threads() -> int:
    """Torch threads for encoding: every core this process may use (measured in bench/encode.py:
    the forward pass scales with cores, hyper-threads add little)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU runs bfloat16 matmuls natively (AVX-512 BF16 or AMX)."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        return False
    if capability not in ("AVX512", "AVX512_BF16", "AMX"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return capability in ("AVX512_BF16", "AMX")
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Encoder:
    """A ColBERT encoder loaded from a local checkpoint folder or a bundled model name."""

    #: the autograd mode encoding runs under (bench/encode.py compares torch.no_grad)
    grad_mode: Any = torch.inference_mode

    def __init__(
        self,
        model: ColbertModel,
        tokenizer: object,
        config: EncoderConfig,
        identity: ModelIdentity,
        *,
        threads: int | None = None,
        precision: str = "auto",
        batch_size: int = 16,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        tune_malloc()
        full_dim = model.full_dim
        dim = config.dim or full_dim
        if not 1 <= dim <= full_dim:
            raise DimensionMismatchError(
                f"dim {dim} is not available: this model projects to {full_dim} dims, and "
                f"Matryoshka truncation can only keep 1..{full_dim} of them"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config.with_overrides(dim=dim)
        self.identity = identity
        self.threads = threads or default_threads()
        self.use_bf16 = precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16())
        self.batch_size = batch_size
        self._ids = tok.special_ids(tokenizer, self.config)
        backbone_config = getattr(getattr(model, "backbone", None), "config", None)
        self._max_positions: int | None = getattr(backbone_config, "max_position_embeddings", None)

    @classmethod
    def load(
        cls,
        name_or_path: str | Path | None = None,
        *,
        dim: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
        batch_size: int = 16,
    ) -> Encoder:
        """Load a bundled model (``None`` = the default) or a local checkpoint folder.

        ``dim`` keeps the first ``dim`` output dimensions (Matryoshka) and renormalises.
        ``precision="auto"`` runs the transformer under bfloat16 autocast where the CPU has
        native bf16 (cosine to fp32 vectors ~0.9999, see bench/encode.py), else fp32.
        ``batch_size``: texts per forward pass; 16 was fastest under bf16 at 1 and 2 threads
        in docs/bench/encode.md (length-sorted batches leave little padding either way).
        """
        ckpt = load_checkpoint(name_or_path)
        model = ColbertModel(ckpt.backbone, ckpt.projection_weight, ckpt.projection_bias)
        return cls(
            model,
            ckpt.tokenizer,
            ckpt.config.with_overrides(dim=dim),
            ckpt.identity,
            threads=threads,
            precision=precision,
            batch_size=batch_size,
        )

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return int(self.config.dim or self.model.full_dim)

    @property
    def model_name(self) -> str:
        return self.identity.name

    def describe(self) -> dict[str, object]:
        """What an index records about this encoder."""
        return {**self.identity.to_dict(), "dim": self.dim}

    # ------------------------------------------------------------------ encoding

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        stats: EncodeStats | None = None,
    ) -> list[np.ndarray]:
        """One ``[query_length, dim]`` float16 array per query (every position kept)."""
        texts = _check_texts(texts, "query")
        batch = tok.tokenize_queries(self.tokenizer, texts, self.config, self._ids)
        return self._encode(
            batch,
            keep_skiplist=True,
            batch_size=batch_size,
            progress=progress,
            stats=stats,
            what="queries",
        )

    def encode_documents(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        progress: bool = False,
        stats: EncodeStats | None = None,
    ) -> list[np.ndarray]:
        """One ``[n_tokens, dim]`` float16 array per document, punctuation vectors dropped.

        Documents longer than ``config.document_length`` tokens are cut; how many were cut is
        logged and counted in ``stats.truncated``.
        """
        texts = _check_texts(texts, "document")
        batch = tok.tokenize_documents(self.tokenizer, texts, self.config, self._ids)
        if batch.truncated:
            log.warning(
                "%d of %d documents were longer than document_length=%d tokens and were cut",
                batch.truncated,
                len(texts),
                self.config.document_length,
            )
        return self._encode(
            batch,
            keep_skiplist=False,
            batch_size=batch_size,
            progress=progress,
            stats=stats,
            what="documents",
        )

    def _encode(
        self,
        batch: tok.TokenizedBatch,
        *,
        keep_skiplist: bool,
        batch_size: int | None,
        progress: bool,
        stats: EncodeStats | None,
        what: str,
    ) -> list[np.ndarray]:
        size = batch_size or self.batch_size
        n = len(batch.input_ids)
        order = np.argsort([len(ids) for ids in batch.input_ids], kind="stable")
        out: list[np.ndarray | None] = [None] * n
        n_tokens = 0
        bar = tqdm(
            total=n,
            desc=f"encoding {what}",
            unit=what[:-1] if what else "text",
            disable=not progress,
            leave=False,
        )
        with self._runtime(), bar:
            for start in range(0, n, size):
                chunk = order[start : start + size]
                ids, attn = _pad(
                    [batch.input_ids[i] for i in chunk],
                    [batch.attend[i] for i in chunk],
                    self._ids.pad,
                    few_shapes=True,
                    max_length=self._max_positions,
                )
                vectors = self.model(ids, attn, dim=self.dim).numpy()
                for row, i in enumerate(chunk):
                    length = len(batch.input_ids[i])
                    vec = vectors[row, :length]
                    if not keep_skiplist:
                        vec = vec[tok.keep_mask(batch.input_ids[i], self._ids)]
                    out[i] = vec.astype(np.float16)
                    n_tokens += len(out[i])
                bar.update(len(chunk))
        if stats is not None:
            stats.texts += n
            stats.tokens += n_tokens
            stats.truncated += batch.truncated
        return out  # type: ignore[return-value]

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[None]:
        """inference_mode, this encoder's thread count and (where fast) bf16 autocast."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with (
                self.grad_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.use_bf16),
            ):
                yield
        finally:
            torch.set_num_threads(previous)

    # ------------------------------------------------------------------ saving

    def save(self, path: str | Path) -> Path:
        """Write this model in the PyLate / sentence-transformers layout (see ``save.py``)."""
        from colmax.encoder.save import save_pylate

        return save_pylate(self, Path(path))


def _check_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(f"pass a list of {what} texts, not one string (wrap it: [text])")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputError(f"{what} {i} is {type(text).__name__}, not str")
        if not text.strip():
            raise InputError(f"{what} {i} is empty; give it some text or leave it out")
    return out


def _pad(
    seqs: list[list[int]],
    attend: list[list[int]],
    pad_id: int,
    *,
    few_shapes: bool = False,
    max_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[rows, length]`` token ids and attention mask. ``few_shapes``: length rounded up to a
    multiple of ``LENGTH_STEP`` and rows up to a power of two (extra rows attend to one pad
    token; their output is ignored). oneDNN keeps memory for every input shape it has seen,
    so exact shapes made encoding grow by ~27 MB per 200 documents without bound; rounded, an
    encoder meets at most ~32 lengths x 5 row counts (a few % more compute on short texts).
    ``max_length``: the model's position limit, which rounding never exceeds."""
    longest = max(len(s) for s in seqs)
    rows = len(seqs)
    if few_shapes:
        if max_length is not None:  # unknown limit: exact lengths
            rounded = -(-longest // LENGTH_STEP) * LENGTH_STEP
            longest = max(longest, min(rounded, max_length))
        rows = 1 << (rows - 1).bit_length()
    ids = torch.full((rows, longest), pad_id, dtype=torch.long)
    mask = torch.zeros((rows, longest), dtype=torch.long)
    mask[len(seqs) :, 0] = 1
    for row, (s, a) in enumerate(zip(seqs, attend)):
        ids[row, : len(s)] = torch.tensor(s)
        mask[row, : len(a)] = torch.tensor(a)
    return ids, mask
