"""The embedded index: ``Index``, ``Document`` and ``AddReport``.

Names load lazily so that the storage modules (``format``, ``docstore``, ``vectors``) can be
imported without pulling in torch through the encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["AddReport", "Document", "Index", "SearchParams"]

_LAZY = {
    "Index": ("colmax.index.index", "Index"),
    "Document": ("colmax.index.documents", "Document"),
    "AddReport": ("colmax.index.documents", "AddReport"),
    "SearchParams": ("colmax.index.searcher", "SearchParams"),
}

if TYPE_CHECKING:  # pragma: no cover
    from colmax.index.documents import AddReport, Document
    from colmax.index.index import Index
    from colmax.index.searcher import SearchParams


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'colmax.index' has no attribute {name!r}")
