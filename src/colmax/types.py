"""Typed results returned by search and rerank (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One scored document."""

    id: str
    score: float
    text: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "title": self.title,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class RerankHit:
    """A caller-given document after reranking; ``index`` is its position in the input list."""

    index: int
    score: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "score": self.score, "text": self.text}


@dataclass(frozen=True)
class SearchResult:
    """The hits for one query, best first."""

    query: str
    hits: list[Hit]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "hits": [h.to_dict() for h in self.hits]}
