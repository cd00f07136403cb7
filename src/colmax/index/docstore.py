"""The document table in ``docs.sqlite``: ids, texts, and where each document's vectors live.

SQLite is the index's source of truth (see ``format.py``). WAL mode lets readers in other
processes keep reading while the one writer commits; ``synchronous=FULL`` makes a commit
durable before ``add`` returns. Every SQLite error that means a damaged file becomes an
:class:`~colmax.errors.IndexCorruptError` naming the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from colmax.errors import IndexCorruptError
from colmax.index.format import SCHEMA_VERSION

SCHEMA = """
CREATE TABLE documents (
    internal_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ext_id TEXT NOT NULL,
    title TEXT,
    text TEXT NOT NULL,
    metadata TEXT,
    segment INTEGER NOT NULL,
    start INTEGER NOT NULL,
    length INTEGER NOT NULL,
    checksum INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX documents_live_ext_id ON documents(ext_id) WHERE deleted = 0;
CREATE INDEX documents_location ON documents(segment, start, length, deleted);
"""

# SQLite's default limit on ``?`` parameters is 999 in old builds.
_IN_BATCH = 500


@dataclass(frozen=True)
class NewRow:
    """A document ready to insert: its fields and where its vectors were appended."""

    ext_id: str
    title: str | None
    text: str
    metadata: str | None  # JSON text
    segment: int
    start: int
    length: int
    checksum: int


@dataclass(frozen=True)
class StoredDoc:
    """One row as read back."""

    internal_id: int
    ext_id: str
    title: str | None
    text: str
    metadata: str | None
    deleted: bool


def _batches(items: Sequence, size: int = _IN_BATCH) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class DocStore:
    """A connection to ``docs.sqlite`` with the few queries the index needs."""

    def __init__(self, path: Path, *, readonly: bool = False, create: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()  # one connection, shared by the index's threads
        if not create and not path.exists():
            raise IndexCorruptError(
                f"{path} is missing; restore it from a backup, or delete the index folder "
                "and rebuild the index"
            )
        uri = f"file:{quote(str(path))}?mode={'ro' if readonly else 'rwc'}"
        with self.guard():
            self.conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            try:
                if create:
                    self.conn.execute("PRAGMA journal_mode=WAL")
                    self.conn.executescript(
                        f"BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
                self.conn.execute("PRAGMA synchronous=FULL")
                self._check_schema()
            except BaseException:
                self.conn.close()
                raise

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Serialise use of the connection; turn 'this file is damaged' into IndexCorruptError."""
        try:
            with self._lock:
                yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "no such table" in text or "no such column" in text or "malformed" in text:
                raise self._corrupt(exc) from exc
            raise
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from exc

    def _corrupt(self, exc: Exception) -> IndexCorruptError:
        return IndexCorruptError(
            f"{self.path} is damaged ({exc}); restore it from a backup, or delete the index "
            "folder and rebuild the index"
        )

    def _check_schema(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise IndexCorruptError(
                f"{self.path} has schema version {version}, expected {SCHEMA_VERSION}; it is "
                "not this index's document store. Restore it from a backup, or rebuild the index"
            )
        self.conn.execute("SELECT internal_id, ext_id, segment, deleted FROM documents LIMIT 1")

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    # ------------------------------------------------------------------ reads

    def data_version(self) -> int:
        """Changes whenever another connection commits (PRAGMA data_version)."""
        with self.guard():
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def live_internal_ids(self, ext_ids: Sequence[str]) -> dict[str, int]:
        """``ext_id -> internal_id`` for those of ``ext_ids`` that are live documents."""
        found: dict[str, int] = {}
        with self.guard():
            for batch in _batches(list(ext_ids)):
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(
                    f"SELECT ext_id, internal_id FROM documents "
                    f"WHERE deleted = 0 AND ext_id IN ({marks})",
                    tuple(batch),
                )
                found.update(rows)
        return found

    def get(self, ext_id: str) -> StoredDoc | None:
        with self.guard():
            row = self.conn.execute(
                "SELECT internal_id, ext_id, title, text, metadata, deleted FROM documents "
                "WHERE ext_id = ? AND deleted = 0",
                (ext_id,),
            ).fetchone()
        return StoredDoc(*row[:5], bool(row[5])) if row else None

    def fetch(self, internal_ids: Iterable[int]) -> dict[int, StoredDoc]:
        """Rows by internal id (tombstones included: a hit may race a concurrent delete)."""
        out: dict[int, StoredDoc] = {}
        with self.guard():
            for batch in _batches([int(i) for i in internal_ids]):
                marks = ",".join("?" * len(batch))
                for row in self.conn.execute(
                    "SELECT internal_id, ext_id, title, text, metadata, deleted FROM documents "
                    f"WHERE internal_id IN ({marks})",
                    tuple(batch),
                ):
                    out[row[0]] = StoredDoc(*row[:5], bool(row[5]))
        return out

    def live_layout(self, page: int = 65536) -> np.ndarray:
        """``[n_live, 4]`` int64 (internal_id, segment, start, length), in on-disk order.

        Read in pages straight into numpy: a list of a million row tuples would briefly
        cost ~150 MB.
        """
        parts = [np.empty((0, 4), dtype=np.int64)]
        with self.guard():
            cursor = self.conn.execute(
                "SELECT internal_id, segment, start, length FROM documents "
                "WHERE deleted = 0 ORDER BY segment, start"
            )
            while rows := cursor.fetchmany(page):
                parts.append(np.array(rows, dtype=np.int64))
        return np.concatenate(parts)

    def append_position(self) -> tuple[int, int]:
        """(last segment, rows committed in it): where the next vectors go.

        Two index lookups, not a table scan: SQLite answers MAX(segment) from the index and
        the second query reads one segment's rows only.
        """
        with self.guard():
            segment = self.conn.execute("SELECT MAX(segment) FROM documents").fetchone()[0]
            if segment is None:
                return 0, 0
            end = self.conn.execute(
                "SELECT MAX(start + length) FROM documents WHERE segment = ?", (segment,)
            ).fetchone()[0]
        return int(segment), int(end)

    def segment_ends(self) -> dict[int, int]:
        """``segment -> rows referenced`` over all rows, tombstones included (their bytes stay)."""
        with self.guard():
            rows = self.conn.execute(
                "SELECT segment, MAX(start + length) FROM documents GROUP BY segment"
            ).fetchall()
        return {int(s): int(e) for s, e in rows}

    def counts(self) -> tuple[int, int, int]:
        """(live documents, tombstones, tokens of live documents)."""
        with self.guard():
            row = self.conn.execute(
                "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted != 0), 0), "
                "COALESCE(SUM(CASE WHEN deleted = 0 THEN length ELSE 0 END), 0) FROM documents"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def live_count(self) -> int:
        with self.guard():
            return int(
                self.conn.execute("SELECT COUNT(*) FROM documents WHERE deleted = 0").fetchone()[0]
            )

    def live_locations(
        self, page: int = 10000
    ) -> Iterator[list[tuple[int, str, int, int, int, int]]]:
        """Pages of live rows' (internal_id, ext_id, segment, start, length, checksum)."""
        last = -1
        while True:
            with self.guard():
                rows = self.conn.execute(
                    "SELECT internal_id, ext_id, segment, start, length, checksum FROM documents "
                    "WHERE internal_id > ? AND deleted = 0 ORDER BY internal_id LIMIT ?",
                    (last, page),
                ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    # ------------------------------------------------------------------ writes

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; its COMMIT (fsynced, synchronous=FULL) is the acknowledgement."""
        with self.guard():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def insert(self, rows: Sequence[NewRow], tombstone: Sequence[int] = ()) -> None:
        """Tombstone ``tombstone`` (replaced documents) and insert ``rows``, atomically."""
        with self.transaction() as conn:
            _tombstone(conn, tombstone)
            conn.executemany(
                "INSERT INTO documents (ext_id, title, text, metadata, segment, start, length, "
                "checksum, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                [
                    (
                        r.ext_id,
                        r.title,
                        r.text,
                        r.metadata,
                        r.segment,
                        r.start,
                        r.length,
                        r.checksum,
                    )
                    for r in rows
                ],
            )

    def delete(self, internal_ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            _tombstone(conn, internal_ids)


def _tombstone(conn: sqlite3.Connection, internal_ids: Sequence[int]) -> None:
    conn.executemany(
        "UPDATE documents SET deleted = 1 WHERE internal_id = ? AND deleted = 0",
        [(int(i),) for i in internal_ids],
    )
