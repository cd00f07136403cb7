"""The write half of :class:`~colmax.index.index.Index`: add, delete, compact and optimize.

Each call takes the folder's writer lock (and a thread mutex), so one writer at a time
changes an index; readers never wait. Every change is all or nothing: files are written and
fsynced first, then one SQLite commit makes them visible (``docstore.py``), and files no
commit names are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import filelock
import numpy as np
from tqdm.auto import tqdm

from colmax.encoder.encoder import EncodeStats
from colmax.encoder.memory import release_free_memory
from colmax.errors import InputError, UnknownIdError
from colmax.index.checks import id_list, preview
from colmax.index.docstore import Commit, DocStore, NewRow
from colmax.index.documents import AddReport, PreparedDoc, next_vectors, prepare_documents
from colmax.index.ingest import Ingest
from colmax.index.locking import locked
from colmax.index.maintenance import Maintainer
from colmax.index.snapshot import Snapshot, load_snapshot
from colmax.index.writer import BuildSettings, PartWriter, remove_orphans

_log = logging.getLogger(__name__)


class IndexWrites:
    """Writing methods of :class:`~colmax.index.index.Index`: a mixin, whose attributes below
    are set by ``Index.__init__``; it also uses Index's ``encoder``, ``info()`` and
    ``_check_open()``."""

    path: Path
    dim: int
    readonly: bool
    lock_timeout: float
    settings: BuildSettings
    _store: DocStore
    _lock: filelock.FileLock
    _write_mutex: threading.Lock
    _changes: int

    def add(
        self,
        docs: Iterable[dict[str, Any]],
        *,
        vectors: Iterable[np.ndarray] | None = None,
        batch_size: int = 256,
        progress: bool = False,
        replace: bool = False,
    ) -> AddReport:
        """Encode and store documents; returns once they are durably stored.

        All or nothing: the whole input is validated first, vectors are written to new files
        (fsynced) as they are encoded, and one SQLite commit makes every document visible. An
        id already in the index is an error unless ``replace=True`` (the old document is then
        tombstoned). ``vectors``: the documents' ``[n_tokens, dim]`` token vectors, already
        encoded (by this index's model), instead of encoding the texts; any iterable, consumed
        one batch at a time (a generator keeps memory bounded).
        """
        self._check_writable()
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size}")
        prepared = prepare_documents(docs)
        given = iter(vectors) if vectors is not None else None
        if not prepared:
            return AddReport(0, 0, 0, 0)
        self._existing(prepared, replace)  # fail before encoding, not after
        stats = EncodeStats()
        with self._writing():
            existing = self._existing(prepared, replace)  # again, under the lock
            snap = self._writer_snapshot()
            writer = PartWriter(self.path, self._store)
            ingest = Ingest(snap, writer, self.settings, len(prepared))
            next_id = self._store.counter("next_id")
            rows: list[NewRow] = []
            bar = tqdm(total=len(prepared), desc="indexing", unit="doc", disable=not progress)
            try:
                with bar:
                    for start in range(0, len(prepared), batch_size):
                        batch = prepared[start : start + batch_size]
                        if given is not None:
                            vecs = next_vectors(given, start, len(batch), len(prepared), self.dim)
                            stats.tokens += sum(len(v) for v in vecs)
                        else:
                            texts = [d.encode_text for d in batch]
                            vecs = self.encoder.encode_documents(texts, stats=stats)
                        ids = list(range(next_id, next_id + len(batch)))
                        next_id += len(batch)
                        ingest.push(ids, list(vecs))
                        rows.extend(_new_row(i, d, v) for i, d, v in zip(ids, batch, vecs))
                        bar.update(len(batch))
                if given is not None and next(given, None) is not None:
                    raise InputError(
                        f"got more vector arrays than the {len(prepared)} documents; give one "
                        "array per document"
                    )
                change = ingest.finish()
                change.rows, change.tombstone = rows, list(existing.values())
                self._on_files_written()
                self._commit(change, {"next_id": next_id, **writer.counters()})
            except BaseException:
                writer.abandon()
                raise
            finally:
                snap.close()
            self._after_add()
        return AddReport(len(rows), len(existing), stats.tokens, stats.truncated)

    def _on_files_written(self) -> None:
        """Hook between the files' fsync and the SQLite commit (tests crash here)."""

    def _existing(self, prepared: list[PreparedDoc], replace: bool) -> dict[str, int]:
        existing = self._store.live_internal_ids([d.id for d in prepared])
        if existing and not replace:
            ids = [d.id for d in prepared if d.id in existing]
            raise InputError(
                f"{len(ids)} document id(s) are already in the index: {preview(ids)}; pass "
                "replace=True to replace them, or delete them first"
            )
        return existing

    def delete(self, ids: Iterable[str]) -> int:
        """Tombstone documents by id; all or nothing. Returns how many were deleted."""
        self._check_writable()
        wanted = list(dict.fromkeys(id_list(ids)))
        if not wanted:
            return 0
        with self._writing():
            found = self._store.live_internal_ids(wanted)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise UnknownIdError(
                    f"{len(missing)} id(s) are not in the index: {preview(missing)}; nothing "
                    "was deleted. Remove them from the list and retry"
                )
            self._store.delete(list(found.values()))
            self._changes += 1
        return len(found)

    def compact(self) -> int:
        """Merge every part into as few as possible and drop deleted documents' vectors and
        rows; returns how many deleted documents were dropped."""
        self._check_writable()
        with self._writing():
            snap = self._writer_snapshot()
            try:
                return self._maintainer().rewrite(snap, list(range(len(snap.parts))))
            finally:
                snap.close()

    def optimize(self) -> dict[str, Any]:
        """Re-train the centroids and buckets on the live documents and re-encode everything
        (also compacts). Worth it after the data drifted or grew well past what the centroids
        were trained on; ``add`` does it by itself when the index grew ``regrow`` times."""
        self._check_writable()
        with self._writing():
            snap = self._writer_snapshot()
            try:
                self._maintainer().optimize(snap)
            finally:
                snap.close()
        return self.info()

    def _after_add(self) -> None:
        """Merge / re-train after a committed add. The add is stored whatever happens here,
        so a failure is logged (with what to do), not raised."""
        try:
            snap = self._writer_snapshot()
            try:
                self._maintainer().after_add(snap)
            finally:
                snap.close()
        except Exception as exc:  # the documents are committed; never report the add failed
            _log.warning(
                "the documents were added, but merging or re-training the index at %s failed "
                "(%s); run `colmax optimize --index %s` to retry",
                self.path, exc, self.path,
            )  # fmt: skip

    def _maintainer(self) -> Maintainer:
        return Maintainer(self.path, self._store, self.settings, self._commit)

    def _commit(self, change: Commit, counters: dict[str, int]) -> None:
        try:
            self._store.commit(change, counters)
        finally:
            self._changes += 1

    def _writer_snapshot(self) -> Snapshot:
        """The committed state, with files no commit names removed (a crashed write's)."""
        snap = load_snapshot(self.path, self._store)
        remove_orphans(self.path, snap.rows, snap.codec_id)
        return snap

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            with self._write_mutex, locked(self._lock, self.path, self.lock_timeout):
                yield
        finally:
            release_free_memory()  # a write's freed buffers would stay in the process

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise InputError(
                f"the index at {self.path} was opened with readonly=True; open it without "
                "readonly to change it"
            )


def _new_row(internal_id: int, doc: PreparedDoc, vectors: np.ndarray) -> NewRow:
    return NewRow(internal_id, doc.id, doc.title, doc.text, doc.metadata_json, len(vectors))
