"""Segment files of raw float16 token vectors: append (writer) and memory-mapped reads.

Segments are append-only and headerless, so a write is one sequential ``write`` + ``fsync``
and a read is a zero-copy slice of a read-only ``np.memmap``. Where a document's vectors are
lives in SQLite (``docs.sqlite``); this module never decides what is committed, it is told the
committed end of each segment (``DocStore.segment_ends``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from colmax.errors import IndexCorruptError
from colmax.index.format import (
    SEGMENT_BYTES,
    VECTORS_DIR,
    fsync_dir,
    segment_number,
    segment_path,
    vector_checksum,
)


def _restore_advice() -> str:
    return "restore the index folder from a backup, or delete it and rebuild the index"


class VectorStore:
    """Reads vectors by (segment, row range); hands out :class:`Appender` for writes."""

    def __init__(self, root: Path, dim: int, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = root
        self.dir = root / VECTORS_DIR
        self.dim = dim
        self.row_bytes = dim * np.dtype(np.float16).itemsize
        self.max_rows = max(1, segment_bytes // self.row_bytes)
        self._maps: dict[int, np.memmap] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def check(self, ends: dict[int, int]) -> None:
        """Every segment SQLite references exists and holds at least the rows referenced."""
        if ends and not self.dir.is_dir():
            raise IndexCorruptError(f"{self.dir} is missing; {_restore_advice()}")
        for segment, end in sorted(ends.items()):
            self._check_size(segment, end)

    def _check_size(self, segment: int, end: int) -> int:
        """The file's size in whole rows; raises if it has fewer than ``end``."""
        path = segment_path(self.root, segment)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexCorruptError(
                f"vector segment {path} is missing but the index's documents refer to it; "
                f"{_restore_advice()}"
            ) from None
        if size < end * self.row_bytes:
            raise IndexCorruptError(
                f"vector segment {path} is truncated: it has {size} bytes but the index's "
                f"documents need {end * self.row_bytes}; {_restore_advice()}"
            )
        return size // self.row_bytes

    def _map(self, segment: int, stop: int) -> np.memmap:
        """A read-only map of ``segment`` covering at least ``stop`` rows (remapped on growth)."""
        with self._lock:
            mm = self._maps.get(segment)
            if mm is None or len(mm) < stop:
                rows = self._check_size(segment, stop)
                mm = np.memmap(
                    segment_path(self.root, segment),
                    dtype=np.float16,
                    mode="r",
                    shape=(rows, self.dim),
                )
                self._maps[segment] = mm
            return mm

    def rows(self, segment: int, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of a segment, a view into the map (no copy)."""
        if stop <= start:
            return np.empty((0, self.dim), dtype=np.float16)
        return self._map(segment, stop)[start:stop]

    def gather(self, segment: int, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The vectors of documents laid back to back (ordered by start), in one array.

        Documents that touch form one run and are read as one slice; a chunk without
        tombstones in between is a single zero-copy view.
        """
        ends = starts + lengths
        breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
        run_starts = np.concatenate([[0], breaks])
        run_stops = np.concatenate([breaks, [len(starts)]])
        mm = self._map(segment, int(ends.max()) if len(ends) else 0)
        if len(run_starts) == 1:
            return mm[int(starts[0]) : int(ends[-1])]
        runs = zip(run_starts.tolist(), run_stops.tolist(), strict=True)
        return np.concatenate([mm[int(starts[a]) : int(ends[b - 1])] for a, b in runs])

    def verify(
        self, pages: Iterable[list[tuple[int, str, int, int, int, int]]]
    ) -> tuple[int, list[str]]:
        """Re-checksum documents given as pages of (internal_id, ext_id, segment, start,
        length, checksum); returns how many were checked and the ext ids that failed."""
        checked, bad = 0, []
        for page in pages:
            for _, ext_id, segment, start, length, checksum in page:
                if vector_checksum(self.rows(segment, start, start + length)) != checksum:
                    bad.append(ext_id)
                checked += 1
        return checked, bad

    def close(self) -> None:
        with self._lock:
            self._maps.clear()  # the mmaps close when their last view goes

    def appender(self, segment: int, row: int) -> Appender:
        """Start appending at ``row`` of ``segment``, the committed end (``DocStore.
        append_position``); the caller holds the writer lock."""
        return Appender(self, segment, row)


class Appender:
    """One writer's appends: clean up crash leftovers, append, fsync, or roll back.

    Leftovers are bytes past the committed end of the last segment and whole segment files
    after it: an add that crashed before its SQLite commit.
    """

    def __init__(self, store: VectorStore, segment: int, row: int) -> None:
        self.store = store
        store.dir.mkdir(exist_ok=True)
        self.first_segment = segment
        self.first_row = row
        self._drop_leftovers()
        self.segment = self.first_segment
        self.row = self.first_row
        self._handle: BinaryIO | None = None
        self._new_files = False

    def _drop_leftovers(self) -> None:
        for path in self.store.dir.iterdir():
            number = segment_number(path)
            if number is not None and number > self.first_segment:
                path.unlink()
        path = segment_path(self.store.root, self.first_segment)
        if path.exists() and path.stat().st_size > self.first_row * self.store.row_bytes:
            os.truncate(path, self.first_row * self.store.row_bytes)

    def _open(self) -> BinaryIO:
        if self._handle is None:
            path = segment_path(self.store.root, self.segment)
            if not path.exists():
                self._new_files = True
            handle = open(path, "ab")  # noqa: SIM115 - closed in sync()/rollback()
            size = handle.tell()
            if size != self.row * self.store.row_bytes:
                handle.close()
                raise IndexCorruptError(
                    f"vector segment {path} has {size} bytes where "
                    f"{self.row * self.store.row_bytes} were expected; another process may "
                    "be writing without the lock. Check for it, then retry"
                )
            self._handle = handle
        return self._handle

    def append(self, vectors: np.ndarray) -> tuple[int, int]:
        """Write one document's ``[n, dim]`` vectors; returns its (segment, start row)."""
        n = len(vectors)
        if self.row > 0 and self.row + n > self.store.max_rows:
            self._finish_file()
            self.segment += 1
            self.row = 0
        data = np.ascontiguousarray(vectors, dtype=np.float16)
        if n:
            self._open().write(memoryview(data).cast("B"))
        start = self.row
        self.row += n
        return self.segment, start

    def _finish_file(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def sync(self) -> None:
        """Make every appended byte durable (before the SQLite commit that references it)."""
        self._finish_file()
        if self._new_files:
            fsync_dir(self.store.dir)
            self._new_files = False

    def rollback(self) -> None:
        """Undo this appender's writes (an add that failed before its commit)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):  # else the next writer truncates them
            self._drop_leftovers()
