"""``Index``: an embedded, exact late-interaction index in one folder (layout: ``format.py``).

One writer at a time (a file lock, taken per add/delete), any number of readers (SQLite WAL
plus read-only memory maps; readers never lock). Search is exact MaxSim over every live
document (``scan.py``); the documents' vectors are kept raw so that a compressed index can be
built from them later.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from colmax.encoder.encoder import Encoder, EncodeStats
from colmax.errors import DimensionMismatchError, IndexCorruptError, InputError, UnknownIdError
from colmax.index import format as fmt
from colmax.index.docstore import DocStore, NewRow
from colmax.index.documents import (
    AddReport,
    Document,
    PreparedDoc,
    metadata_from_json,
    prepare_documents,
)
from colmax.index.locking import locked, writer_lock
from colmax.index.model import ModelArg, as_encoder, check_model, load_recorded_model
from colmax.index.scan import DEFAULT_CHUNK_TOKENS, Layout, build_layout, search_queries
from colmax.index.vectors import VectorStore
from colmax.types import Hit, SearchResult


def _preview(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


class Index:
    """A folder of documents and their token vectors, searchable by exact MaxSim.

    Make one with :meth:`create` or :meth:`open`, not the constructor.
    """

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        encoder: Encoder | None,
        store: DocStore,
        *,
        readonly: bool,
        lock_timeout: float,
        chunk_tokens: int,
    ) -> None:
        self.path = root
        self.manifest = manifest
        self.dim: int = int(manifest["dim"])
        self._encoder = encoder
        self._encoder_mutex = threading.Lock()
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        self.chunk_tokens = chunk_tokens
        self._store = store
        self._vectors = VectorStore(root, self.dim)
        self._lock = writer_lock(root)
        self._write_mutex = threading.Lock()
        self._layout_mutex = threading.Lock()
        self._layout: Layout | None = None
        self._layout_key: tuple[int, int, int] | None = None
        self._changes = 0  # our own commits (PRAGMA data_version only counts others')
        self._closed = False

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(
        cls,
        path: str | Path,
        model: ModelArg = None,
        *,
        exist_ok: bool = False,
        lock_timeout: float = 0.0,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ) -> Index:
        """Make a new, empty index in ``path`` (a new or empty folder).

        ``model``: None for the bundled default, a bundled name or checkpoint folder, or a
        loaded :class:`Encoder`. With ``exist_ok=True`` an existing index there is opened
        instead (its model must match a given one).
        """
        root = Path(path).expanduser()
        if root.exists() and not root.is_dir():
            raise InputError(f"{root} is a file; give a folder path for the new index")
        if root.is_dir() and any(root.iterdir()):
            if fmt.looks_like_index(root):
                if exist_ok:
                    return cls.open(
                        root, model=model, lock_timeout=lock_timeout, chunk_tokens=chunk_tokens
                    )
                raise InputError(
                    f"an index already exists at {root}; open it with Index.open, pass "
                    "exist_ok=True to open it from create, or choose another folder"
                )
            raise InputError(
                f"{root} exists and is not empty; create the index in a new or empty folder"
            )
        encoder = as_encoder(model)
        root.mkdir(parents=True, exist_ok=True)
        manifest = fmt.new_manifest(encoder.describe(), encoder.dim)
        lock = writer_lock(root)
        with locked(lock, root, lock_timeout):
            if fmt.looks_like_index(root):  # another process created it meanwhile
                raise InputError(
                    f"another process created an index at {root} meanwhile; open it with Index.open"
                )
            (root / fmt.VECTORS_DIR).mkdir()
            store = DocStore(root / fmt.DOCS_DB, create=True)
            fmt.atomic_write_json(root / fmt.MANIFEST, manifest)  # last: marks it complete
        options = {"lock_timeout": lock_timeout, "chunk_tokens": chunk_tokens}
        return cls(root, manifest, encoder, store, readonly=False, **options)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: ModelArg = None,
        readonly: bool = False,
        lock_timeout: float = 0.0,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    ) -> Index:
        """Open an existing index; loads the model it records unless ``model`` is given.

        A given model must be the one the index was built with (same fingerprint and dim).
        ``lock_timeout``: seconds an add/delete waits for another writer (0 = fail at once).
        """
        root = Path(path).expanduser()
        manifest = fmt.read_manifest(root)
        if model is not None and not isinstance(model, Encoder):
            model = as_encoder(model, dim=int(manifest["dim"]))
        if model is not None:
            check_model(model, manifest, root)
        store = DocStore(root / fmt.DOCS_DB, readonly=readonly)
        try:
            VectorStore(root, int(manifest["dim"])).check(store.segment_ends())
        except BaseException:
            store.close()
            raise
        options = {"lock_timeout": lock_timeout, "chunk_tokens": chunk_tokens}
        return cls(root, manifest, model, store, readonly=readonly, **options)

    @property
    def encoder(self) -> Encoder:
        """The index's model; without one given to :meth:`open`, the recorded model is loaded
        on first use, so get/delete/info never pay for loading it."""
        with self._encoder_mutex:
            if self._encoder is None:
                self._encoder = load_recorded_model(self.manifest, self.path)
            return self._encoder

    # ------------------------------------------------------------------ writing

    def add(
        self,
        docs: Iterable[dict[str, Any]],
        *,
        batch_size: int = 256,
        progress: bool = False,
        replace: bool = False,
    ) -> AddReport:
        """Encode and store documents; returns once they are durably stored.

        All or nothing: the whole input is validated first, and the rows are committed in one
        SQLite transaction after every vector is on disk. An id already in the index is an
        error unless ``replace=True`` (the old document is then tombstoned).
        """
        self._check_writable()
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size}")
        prepared = prepare_documents(docs)
        if not prepared:
            return AddReport(0, 0, 0, 0)
        self._existing(prepared, replace)  # fail before encoding, not after
        stats = EncodeStats()
        with self._writing():
            existing = self._existing(prepared, replace)  # again, under the lock
            appender = self._vectors.appender(*self._store.append_position())
            rows: list[NewRow] = []
            bar = tqdm(total=len(prepared), desc="indexing", unit="doc", disable=not progress)
            try:
                with bar:
                    for start in range(0, len(prepared), batch_size):
                        batch = prepared[start : start + batch_size]
                        vectors = self.encoder.encode_documents(
                            [d.encode_text for d in batch], stats=stats
                        )
                        for doc, vecs in zip(batch, vectors, strict=True):
                            segment, row = appender.append(vecs)
                            rows.append(_new_row(doc, segment, row, vecs))
                        bar.update(len(batch))
                appender.sync()
                self._on_vectors_written()
                self._store.insert(rows, tombstone=list(existing.values()))
            except BaseException:
                appender.rollback()
                raise
            finally:
                self._changes += 1
        return AddReport(len(rows), len(existing), stats.tokens, stats.truncated)

    def _on_vectors_written(self) -> None:
        """Hook between the vectors' fsync and the SQLite commit (tests crash here)."""

    def _existing(self, prepared: list[PreparedDoc], replace: bool) -> dict[str, int]:
        existing = self._store.live_internal_ids([d.id for d in prepared])
        if existing and not replace:
            ids = [d.id for d in prepared if d.id in existing]
            raise InputError(
                f"{len(ids)} document id(s) are already in the index: {_preview(ids)}; pass "
                "replace=True to replace them, or delete them first"
            )
        return existing

    def delete(self, ids: Iterable[str]) -> int:
        """Tombstone documents by id; all or nothing. Returns how many were deleted."""
        self._check_writable()
        wanted = list(dict.fromkeys(self._id_list(ids)))
        if not wanted:
            return 0
        with self._writing():
            found = self._store.live_internal_ids(wanted)
            missing = [i for i in wanted if i not in found]
            if missing:
                raise UnknownIdError(
                    f"{len(missing)} id(s) are not in the index: {_preview(missing)}; nothing "
                    "was deleted. Remove them from the list and retry"
                )
            self._store.delete(list(found.values()))
            self._changes += 1
        return len(found)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._write_mutex, locked(self._lock, self.path, self.lock_timeout):
            yield

    def _check_writable(self) -> None:
        self._check_open()
        if self.readonly:
            raise InputError(
                f"the index at {self.path} was opened with readonly=True; open it without "
                "readonly to add or delete documents"
            )

    # ------------------------------------------------------------------ reading

    def get(self, id: str) -> Document | None:
        """The live document with this id, or None."""
        self._check_open()
        row = self._store.get(self._one_id(id))
        if row is None:
            return None
        return Document(row.ext_id, row.text, row.title, metadata_from_json(row.metadata))

    def contains(self, id: str) -> bool:
        self._check_open()
        return bool(self._store.live_internal_ids([self._one_id(id)]))

    def __contains__(self, id: object) -> bool:
        return isinstance(id, (str, int)) and not isinstance(id, bool) and self.contains(id)

    def __len__(self) -> int:
        self._check_open()
        return self._store.live_count()

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best live documents for ``query`` by exact MaxSim, best first."""
        if not isinstance(query, str):
            raise InputError(f"the query must be a string, not {type(query).__name__}")
        return self.search_many([query], k)[0].hits

    def search_many(self, queries: list[str], k: int = 10) -> list[SearchResult]:
        """:meth:`search` for several queries in one pass over the vectors."""
        self._check_open()
        if isinstance(queries, str):
            raise InputError("search_many takes a list of queries; for one, use search()")
        queries = list(queries)
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"query {i} is empty or not a string; give non-empty strings")
        _check_k(k)
        if not queries:
            return []
        vectors = self.encoder.encode_queries(queries)
        hits = self._search_arrays(vectors, k)
        return [SearchResult(q, h) for q, h in zip(queries, hits, strict=True)]

    def search_vectors(self, query_vectors: np.ndarray, k: int = 10) -> list[Hit]:
        """Search with an already encoded ``[query_len, dim]`` query."""
        self._check_open()
        _check_k(k)
        q = np.asarray(query_vectors)
        if q.ndim != 2 or len(q) == 0:
            raise InputError(
                f"query_vectors must be a non-empty [query_len, dim] array, not shape {q.shape}"
            )
        if q.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"the query vectors have dim {q.shape[1]} but the index at {self.path} holds "
                f"{self.dim}-dim vectors; encode the query with the index's encoder (index.encoder)"
            )
        return self._search_arrays([q], k)[0]

    def _search_arrays(self, queries: list[np.ndarray], k: int) -> list[list[Hit]]:
        found = search_queries(queries, self._current_layout(), self._vectors, k)
        rows = self._store.fetch({int(i) for ids, _ in found for i in ids})
        return [
            [
                Hit(row.ext_id, float(score), row.text, row.title, metadata_from_json(row.metadata))
                for i, score in zip(ids.tolist(), scores.tolist(), strict=True)
                if (row := rows.get(i)) is not None
            ]
            for ids, scores in found
        ]

    def _current_layout(self) -> Layout:
        """The live documents' layout, re-read only when the index changed since last time."""
        with self._layout_mutex:
            key = (self._store.data_version(), self._changes, self.chunk_tokens)
            if self._layout is None or key != self._layout_key:
                self._layout = build_layout(self._store.live_layout(), self.chunk_tokens)
                self._layout_key = key
            return self._layout

    # ------------------------------------------------------------------ housekeeping

    def info(self) -> dict[str, Any]:
        """What and how big the index is."""
        self._check_open()
        live, deleted, tokens = self._store.counts()
        segments = sorted(p for p in (self.path / fmt.VECTORS_DIR).glob(f"*{fmt.SEGMENT_SUFFIX}"))
        return {
            "path": str(self.path),
            "format": self.manifest["format"],
            "version": self.manifest["version"],
            "model": dict(self.manifest["model"]),
            "dim": self.dim,
            "dtype": self.manifest["dtype"],
            "documents": live,
            "deleted": deleted,
            "tokens": tokens,
            "segments": len(segments),
            "bytes": fmt.disk_bytes(self.path),
            "created": self.manifest.get("created"),
            "colmax_version": self.manifest.get("colmax_version"),
        }

    def verify(self) -> int:
        """Re-read every live document's vectors and check their CRC-32; returns the count.

        Raises IndexCorruptError naming the damaged documents; search never checks sums.
        """
        self._check_open()
        checked, bad = self._vectors.verify(self._store.live_locations())
        if bad:
            raise IndexCorruptError(
                f"the vectors of {len(bad)} document(s) in {self.path} fail their checksum: "
                f"{_preview(bad)}; re-add them with add(..., replace=True), or rebuild the index"
            )
        return checked

    def close(self) -> None:
        """Release the SQLite connection and the memory maps (idempotent)."""
        if not self._closed:
            self._closed = True
            self._store.close()
            self._vectors.close()
            self._layout = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} documents"
        return f"Index({str(self.path)!r}, {state})"

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"the index at {self.path} is closed; open it again with Index.open")

    @staticmethod
    def _one_id(id: object) -> str:
        if isinstance(id, bool) or not isinstance(id, (str, int)):
            raise InputError(f"ids are strings (or integers), not {type(id).__name__}")
        return str(id)

    def _id_list(self, ids: Iterable[str]) -> list[str]:
        if isinstance(ids, (str, bytes, int)):
            raise InputError("delete takes a list of ids; wrap one id in a list: [id]")
        return [self._one_id(i) for i in ids]


# --------------------------------------------------------------------------- helpers


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, not {k!r}")


def _new_row(doc: PreparedDoc, segment: int, start: int, vectors: np.ndarray) -> NewRow:
    checksum = fmt.vector_checksum(vectors)
    return NewRow(
        doc.id, doc.title, doc.text, doc.metadata_json, segment, start, len(vectors), checksum
    )


__all__ = ["AddReport", "Document", "Index"]
