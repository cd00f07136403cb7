"""Checks of what callers pass to an :class:`~colmax.index.Index` (ids, k, query vectors),
with errors that say what to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from colmax.errors import DimensionMismatchError, InputError


def preview(ids: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` ids, quoted, and how many more."""
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, not {k!r}")


def one_id(id: object) -> str:
    if isinstance(id, bool) or not isinstance(id, (str, int)):
        raise InputError(f"ids are strings (or integers), not {type(id).__name__}")
    return str(id)


def id_list(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, (str, bytes, int)):
        raise InputError("delete takes a list of ids; wrap one id in a list: [id]")
    return [one_id(i) for i in ids]


def check_query(q: np.ndarray, dim: int, root: Path) -> None:
    if q.ndim != 2 or len(q) == 0:
        raise InputError(
            f"query_vectors must be a non-empty [query_len, dim] array, not shape {q.shape}"
        )
    if q.shape[1] != dim:
        raise DimensionMismatchError(
            f"the query vectors have dim {q.shape[1]} but the index at {root} holds "
            f"{dim}-dim vectors; encode the query with the index's encoder (index.encoder)"
        )
