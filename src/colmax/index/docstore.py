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
    internal_id INTEGER PRIMARY KEY,
    ext_id TEXT NOT NULL,
    title TEXT,
    text TEXT NOT NULL,
    metadata TEXT,
    n_tokens INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX documents_live_ext_id ON documents(ext_id) WHERE deleted = 0;
CREATE INDEX documents_deleted ON documents(deleted);
CREATE TABLE parts (
    part_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    codec_id INTEGER,
    n_docs INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# SQLite's default limit on ``?`` parameters is 999 in old builds.
_IN_BATCH = 500


@dataclass(frozen=True)
class NewRow:
    """A document ready to insert, with the internal id its part files already use."""

    internal_id: int
    ext_id: str
    title: str | None
    text: str
    metadata: str | None  # JSON text
    n_tokens: int


@dataclass(frozen=True)
class PartRow:
    """A row of the ``parts`` table: a live part file."""

    part_id: int
    kind: str  # "compressed" or "raw"
    codec_id: int | None
    n_docs: int
    n_tokens: int
    bytes: int


@dataclass
class Commit:
    """Everything one write transaction changes; applied atomically by :meth:`DocStore.commit`."""

    rows: Sequence[NewRow] = ()
    tombstone: Sequence[int] = ()  # internal ids to mark deleted
    purge: Sequence[int] = ()  # tombstoned internal ids no part holds any more: drop the rows
    add_parts: Sequence[PartRow] = ()
    drop_parts: Sequence[int] = ()
    codec_id: int | None = None  # a new codec, when one was trained


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
        self.conn.execute("SELECT internal_id, ext_id, n_tokens, deleted FROM documents LIMIT 1")
        self.conn.execute("SELECT part_id, kind, codec_id FROM parts LIMIT 1")

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

    def fetch(self, internal_ids: Iterable[int], *, with_text: bool = True) -> dict[int, StoredDoc]:
        """Rows by internal id (tombstones included: a hit may race a concurrent delete).
        ``with_text=False`` reads ids only (title, text and metadata come back empty)."""
        out: dict[int, StoredDoc] = {}
        columns = "title, text, metadata" if with_text else "NULL, '', NULL"
        with self.guard():
            for batch in _batches([int(i) for i in internal_ids]):
                marks = ",".join("?" * len(batch))
                for row in self.conn.execute(
                    f"SELECT internal_id, ext_id, {columns}, deleted FROM documents "
                    f"WHERE internal_id IN ({marks})",
                    tuple(batch),
                ):
                    out[row[0]] = StoredDoc(*row[:5], bool(row[5]))
        return out

    def parts(self) -> tuple[list[PartRow], int | None]:
        """The live parts and the current codec id (None before centroids are trained),
        read in one transaction so they are consistent."""
        with self.guard():
            self.conn.execute("BEGIN")
            try:
                rows = self.conn.execute(
                    "SELECT part_id, kind, codec_id, n_docs, n_tokens, bytes FROM parts "
                    "ORDER BY part_id"
                ).fetchall()
                codec = self.conn.execute("SELECT value FROM state WHERE key = 'codec'").fetchone()
            finally:
                self.conn.execute("COMMIT")
        return [PartRow(*r) for r in rows], (int(codec[0]) if codec else None)

    def deleted_ids(self) -> np.ndarray:
        """Internal ids of all tombstones (sorted int64)."""
        with self.guard():
            rows = self.conn.execute(
                "SELECT internal_id FROM documents WHERE deleted != 0 ORDER BY internal_id"
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def counter(self, key: str) -> int:
        """The next value of a monotonic counter (``next_id``, ``next_file``); not reserved
        until a commit moves it (only the writer, under the lock, asks)."""
        with self.guard():
            row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 1

    def counts(self) -> tuple[int, int, int]:
        """(live documents, tombstones, tokens of live documents)."""
        with self.guard():
            row = self.conn.execute(
                "SELECT COALESCE(SUM(deleted = 0), 0), COALESCE(SUM(deleted != 0), 0), "
                "COALESCE(SUM(CASE WHEN deleted = 0 THEN n_tokens ELSE 0 END), 0) FROM documents"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def live_count(self) -> int:
        with self.guard():
            return int(
                self.conn.execute("SELECT COUNT(*) FROM documents WHERE deleted = 0").fetchone()[0]
            )

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

    def commit(self, change: Commit, counters: dict[str, int] | None = None) -> None:
        """Apply ``change`` (and move ``counters``) in one transaction."""
        with self.transaction() as conn:
            _tombstone(conn, change.tombstone)
            conn.executemany(
                "INSERT INTO documents (internal_id, ext_id, title, text, metadata, n_tokens, "
                "deleted) VALUES (?, ?, ?, ?, ?, ?, 0)",
                [
                    (r.internal_id, r.ext_id, r.title, r.text, r.metadata, r.n_tokens)
                    for r in change.rows
                ],
            )
            conn.executemany(
                "DELETE FROM documents WHERE internal_id = ? AND deleted != 0",
                [(int(i),) for i in change.purge],
            )
            conn.executemany(
                "DELETE FROM parts WHERE part_id = ?", [(int(p),) for p in change.drop_parts]
            )
            conn.executemany(
                "INSERT INTO parts (part_id, kind, codec_id, n_docs, n_tokens, bytes) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (p.part_id, p.kind, p.codec_id, p.n_docs, p.n_tokens, p.bytes)
                    for p in change.add_parts
                ],
            )
            updates = dict(counters or {})
            if change.codec_id is not None:
                updates["codec"] = change.codec_id
            conn.executemany(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(updates.items()),
            )

    def delete(self, internal_ids: Sequence[int]) -> None:
        with self.transaction() as conn:
            _tombstone(conn, internal_ids)


def _tombstone(conn: sqlite3.Connection, internal_ids: Sequence[int]) -> None:
    conn.executemany(
        "UPDATE documents SET deleted = 1 WHERE internal_id = ? AND deleted = 0",
        [(int(i),) for i in internal_ids],
    )
