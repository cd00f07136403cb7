"""colmax: late-interaction (ColBERT-style) neural search that runs well on a CPU.

Public names load lazily so that ``import colmax`` stays fast and imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Encoder",
    "Hit",
    "Index",
    "RerankHit",
    "SearchResult",
    "__version__",
    "rerank",
]

_LAZY = {
    "Encoder": ("colmax.encoder.encoder", "Encoder"),
    "Index": ("colmax.index.index", "Index"),
    "Hit": ("colmax.types", "Hit"),
    "RerankHit": ("colmax.types", "RerankHit"),
    "SearchResult": ("colmax.types", "SearchResult"),
    "rerank": ("colmax.search.rerank", "rerank"),
}

if TYPE_CHECKING:  # pragma: no cover
    from colmax.encoder.encoder import Encoder
    from colmax.index.index import Index
    from colmax.search.rerank import rerank
    from colmax.types import Hit, RerankHit, SearchResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'colmax' has no attribute {name!r}")
