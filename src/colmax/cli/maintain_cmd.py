"""``colmax compact`` and ``colmax optimize``: index housekeeping (bodies of the commands)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from colmax.cli.render import out, plural

IndexDir = Annotated[
    Path, typer.Option("--index", "-i", help="The index folder.", show_default=False)
]
Wait = Annotated[
    float,
    typer.Option("--wait", min=0.0, help="Seconds to wait for another writer (0: fail at once)."),
]


def _summary(info: dict) -> str:
    return (
        f"{info['documents']:,} documents, {info['tokens']:,} tokens in {info['parts']} part(s), "
        f"{info['centroids']:,} centroids, {info['index_bytes'] / 1e6:,.1f} MB "
        f"({info['bytes_per_token']:.1f} B/token)"
    )


def compact_command(index: IndexDir, wait: Wait = 0.0) -> None:
    """Merge the index's parts and drop deleted documents for good."""
    from colmax.index import Index

    start = time.perf_counter()
    with Index.open(index, lock_timeout=wait) as idx:
        dropped = idx.compact()
        info = idx.info()
    out.print(
        f"compacted in {time.perf_counter() - start:.1f} s: dropped "
        f"{plural(dropped, 'deleted document')}; now {_summary(info)}"
    )


def optimize_command(index: IndexDir, wait: Wait = 0.0) -> None:
    """Re-train the centroids on the live documents and re-encode them (also compacts).

    Worth it after the data drifted, or after adding far more than the index first held
    (add does it by itself each time the index grows 4x).
    """
    from colmax.index import Index

    start = time.perf_counter()
    with Index.open(index, lock_timeout=wait) as idx:
        before = idx.info()
        info = idx.optimize()
    out.print(
        f"optimized in {time.perf_counter() - start:.1f} s: centroids {before['centroids']:,} -> "
        f"{info['centroids']:,}; now {_summary(info)}"
    )
