"""Encoder settings, resolved once from a checkpoint's files.

Precedence, applied by :func:`resolve`: explicit argument, then the checkpoint's own files, then
the ColBERT/PyLate defaults below. Nothing here loads weights.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from typing import Any

# ColBERT's defaults (ColBERTConfig), used only when a checkpoint does not say.
DEFAULT_QUERY_LENGTH = 32
DEFAULT_DOCUMENT_LENGTH = 180
DEFAULT_QUERY_MARKER = "[unused0]"
DEFAULT_DOCUMENT_MARKER = "[unused1]"
PUNCTUATION = tuple(string.punctuation)


@dataclass(frozen=True)
class EncoderConfig:
    """How text becomes token vectors. Lengths count every token, markers included."""

    query_marker: str = DEFAULT_QUERY_MARKER
    document_marker: str = DEFAULT_DOCUMENT_MARKER
    query_length: int = DEFAULT_QUERY_LENGTH
    document_length: int = DEFAULT_DOCUMENT_LENGTH
    #: pad queries with the mask token up to ``query_length`` (ColBERT's query augmentation)
    query_expansion: bool = True
    #: whether the expansion (mask) tokens get attention 1 (jina: yes; colbertv2.0: no)
    attend_to_expansion_tokens: bool = False
    #: words whose document vectors are dropped (punctuation)
    skiplist: tuple[str, ...] = PUNCTUATION
    #: output dim; a Matryoshka truncation of the projection when below its full size
    dim: int | None = None

    def with_overrides(self, **overrides: Any) -> EncoderConfig:
        """A copy with every override that is not None applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def from_stanford(metadata: dict[str, Any]) -> EncoderConfig:
    """Settings from a Stanford ColBERT ``artifact.metadata`` (or the config keys it merges)."""
    mask_punctuation = bool(metadata.get("mask_punctuation", True))
    return EncoderConfig(
        query_marker=str(metadata.get("query_token_id", DEFAULT_QUERY_MARKER)),
        document_marker=str(metadata.get("doc_token_id", DEFAULT_DOCUMENT_MARKER)),
        query_length=int(metadata.get("query_maxlen", DEFAULT_QUERY_LENGTH)),
        document_length=int(metadata.get("doc_maxlen", DEFAULT_DOCUMENT_LENGTH)),
        query_expansion=True,
        attend_to_expansion_tokens=bool(metadata.get("attend_to_mask_tokens", False)),
        skiplist=PUNCTUATION if mask_punctuation else (),
        dim=int(metadata["dim"]) if metadata.get("dim") is not None else None,
    )


def from_sentence_transformers(st_config: dict[str, Any]) -> EncoderConfig:
    """Settings from PyLate's ``config_sentence_transformers.json``."""
    skiplist = st_config.get("skiplist_words")
    return EncoderConfig(
        query_marker=str(st_config.get("query_prefix", DEFAULT_QUERY_MARKER)),
        document_marker=str(st_config.get("document_prefix", DEFAULT_DOCUMENT_MARKER)),
        query_length=int(st_config.get("query_length", DEFAULT_QUERY_LENGTH)),
        document_length=int(st_config.get("document_length", DEFAULT_DOCUMENT_LENGTH)),
        query_expansion=bool(st_config.get("do_query_expansion", True)),
        attend_to_expansion_tokens=bool(st_config.get("attend_to_expansion_tokens", False)),
        skiplist=PUNCTUATION if skiplist is None else tuple(skiplist),
    )


def to_sentence_transformers(config: EncoderConfig) -> dict[str, Any]:
    """The inverse of :func:`from_sentence_transformers` (what :meth:`Encoder.save` writes)."""
    return {
        "similarity_fn_name": "MaxSim",
        "query_prefix": config.query_marker,
        "document_prefix": config.document_marker,
        "query_length": config.query_length,
        "document_length": config.document_length,
        "do_query_expansion": config.query_expansion,
        "attend_to_expansion_tokens": config.attend_to_expansion_tokens,
        "skiplist_words": list(config.skiplist),
        "model_type": "ColBERT",
    }
