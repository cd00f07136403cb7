"""ColBERT tokenization as pure functions over a tokenizer.

Queries: ``[CLS] [Q] tokens… [SEP]`` then the mask token up to ``query_length`` (query
augmentation). Documents: ``[CLS] [D] tokens… [SEP]``, cut at ``document_length``, no padding.
The marker goes after the first special token, as ColBERT and PyLate do. The tokenizer's own
truncation and padding settings are never used or changed: a private copy of its backend runs
with both off (PyLate saves tokenizers with both on), so queries and documents can be tokenized
at the same time from several threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from colmax.encoder.config import EncoderConfig
from colmax.errors import CheckpointFormatError


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the encoder needs, looked up once per tokenizer, and a private copy of the
    tokenizer's backend with truncation and padding switched off."""

    backend: Any
    query_marker: int
    document_marker: int
    mask: int
    pad: int
    skiplist: frozenset[int]


@dataclass
class TokenizedBatch:
    """Variable-length token id lists; padding happens per batch in the encoder."""

    input_ids: list[list[int]]
    attend: list[list[int]]  # 1 where the token is attended to
    truncated: int = 0  # how many texts were cut at the length limit


def special_ids(tokenizer: Any, config: EncoderConfig) -> SpecialIds:
    """Resolve markers, mask, pad and skiplist to ids; fail when a marker is unknown."""
    mask = tokenizer.mask_token_id
    if mask is None:
        raise CheckpointFormatError("the tokenizer has no mask token; query expansion needs one")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else mask
    skip: set[int] = set()
    for word in config.skiplist:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            skip.add(int(ids[0]))
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return SpecialIds(
        backend=backend,
        query_marker=_marker_id(tokenizer, config.query_marker),
        document_marker=_marker_id(tokenizer, config.document_marker),
        mask=int(mask),
        pad=int(pad),
        skiplist=frozenset(skip),
    )


def _marker_id(tokenizer: Any, marker: str) -> int:
    unk = tokenizer.unk_token_id
    for form in (marker, marker.strip()):
        token_id = tokenizer.convert_tokens_to_ids(form)
        if token_id is not None and token_id != unk:
            return int(token_id)
    raise CheckpointFormatError(
        f"marker {marker!r} is not a token of this tokenizer; the checkpoint's "
        "query/document marker settings do not match its vocabulary"
    )


# No token is longer than this many characters, so text past limit * this can never be kept;
# cutting it first keeps a 100 MB "document" from costing 100 MB of tokenization.
MAX_CHARS_PER_TOKEN = 100


def _raw_ids(ids: SpecialIds, texts: Sequence[str], limit: int) -> list[list[int]]:
    cap = limit * MAX_CHARS_PER_TOKEN
    encodings = ids.backend.encode_batch([t[:cap] for t in texts], add_special_tokens=True)
    return [list(e.ids) for e in encodings]


def _insert_marker(ids: list[int], marker: int, limit: int) -> tuple[list[int], bool]:
    """Put the marker after the first token and cut to ``limit``, keeping the final [SEP]."""
    truncated = len(ids) + 1 > limit
    if truncated:
        ids = [*ids[: limit - 2], ids[-1]]
    return [ids[0], marker, *ids[1:]], truncated


def tokenize_queries(
    tokenizer: Any, texts: Sequence[str], config: EncoderConfig, ids: SpecialIds
) -> TokenizedBatch:
    out_ids, attend, truncated = [], [], 0
    for raw in _raw_ids(ids, texts, config.query_length):
        seq, cut = _insert_marker(raw, ids.query_marker, config.query_length)
        truncated += cut
        mask = [1] * len(seq)
        if config.query_expansion:
            n_pad = config.query_length - len(seq)
            seq = seq + [ids.mask] * n_pad
            mask = mask + [int(config.attend_to_expansion_tokens)] * n_pad
        out_ids.append(seq)
        attend.append(mask)
    return TokenizedBatch(out_ids, attend, truncated)


def tokenize_documents(
    tokenizer: Any, texts: Sequence[str], config: EncoderConfig, ids: SpecialIds
) -> TokenizedBatch:
    out_ids, attend, truncated = [], [], 0
    for raw in _raw_ids(ids, texts, config.document_length):
        seq, cut = _insert_marker(raw, ids.document_marker, config.document_length)
        truncated += cut
        out_ids.append(seq)
        attend.append([1] * len(seq))
    return TokenizedBatch(out_ids, attend, truncated)


def keep_mask(input_ids: list[int], ids: SpecialIds) -> np.ndarray:
    """Which document positions keep their vector (everything but skiplist tokens)."""
    arr = np.asarray(input_ids)
    if not ids.skiplist:
        return np.ones(len(arr), dtype=bool)
    return ~np.isin(arr, np.fromiter(ids.skiplist, dtype=arr.dtype))
