"""Retrieval evaluation on BEIR folders: ``colmax eval`` and ``scripts/make_results.py``.

Heavy imports (torch, ranx, bm25s) happen inside the functions that need them.
"""

from __future__ import annotations

from typing import Any

METHODS = (
    "colmax",
    "colmax-exact",
    "bm25",
    "biencoder",
    "maxsim-raw",
    "hybrid",
    "bm25>colmax",
    "biencoder>colmax",
)


def run_eval(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`colmax.eval.runner.run_eval`."""
    from colmax.eval.runner import run_eval as _run

    return _run(*args, **kwargs)


__all__ = ["METHODS", "run_eval"]
