"""``Index``: an embedded, compressed late-interaction index in one folder (layout: ``format.py``).

One writer at a time (a file lock, taken per add/delete/compact/optimize), any number of
readers (SQLite WAL plus read-only memory maps of immutable files; readers never lock). Token
vectors are stored as centroid + quantised residual (``codec.py``) in part files
(``parts.py``) and searched WARP-style (``searcher.py``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from colmax.encoder.encoder import Encoder
from colmax.errors import InputError
from colmax.index import format as fmt
from colmax.index.checks import check_k, check_query, one_id
from colmax.index.codec import check_nbits
from colmax.index.docstore import DocStore
from colmax.index.documents import AddReport, Document, metadata_from_json
from colmax.index.locking import locked, writer_lock
from colmax.index.model import (
    ModelArg,
    as_encoder,
    check_model,
    load_recorded_model,
    model_for_new_index,
)
from colmax.index.parts import codec_path
from colmax.index.searcher import SearchParams
from colmax.index.searcher import search as search_snapshot
from colmax.index.snapshot import Snapshot, load_snapshot
from colmax.index.verify import verify_files
from colmax.index.writer import BuildSettings
from colmax.index.writes import IndexWrites
from colmax.types import Hit, SearchResult


class Index(IndexWrites):
    """A folder of documents and their compressed token vectors, searchable by MaxSim
    (writing: :class:`~colmax.index.writes.IndexWrites`).

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
        settings: BuildSettings,
    ) -> None:
        self.path = root
        self.manifest = manifest
        self.dim: int = int(manifest["dim"])
        self.nbits: int = int(manifest["nbits"])
        self._encoder = encoder
        self._encoder_mutex = threading.Lock()
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        self.settings = settings
        self._store = store
        self._lock = writer_lock(root)
        self._write_mutex = threading.Lock()
        self._snapshot_mutex = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._snapshot_key: tuple[int, int] | None = None
        self._changes = 0  # our own commits (PRAGMA data_version only counts others')
        self._closed = False

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(
        cls,
        path: str | Path,
        model: ModelArg = None,
        *,
        dim: int | None = None,
        nbits: int = 2,
        exist_ok: bool = False,
        lock_timeout: float = 0.0,
        **build: Any,
    ) -> Index:
        """Make a new, empty index in ``path`` (a new or empty folder).

        ``model``: None for the bundled default, a bundled name or checkpoint folder, or a
        loaded :class:`Encoder` (a name or folder is not loaded until the index encodes
        text). ``dim``: keep the model's first ``dim`` dims (Matryoshka; default all).
        ``nbits``: bits per dimension of the stored residuals (1, 2
        or 4). ``build``: :class:`BuildSettings` fields (chunk_tokens, train_min_tokens,
        centroid_factor, max_parts, regrow, auto_optimize). With ``exist_ok=True`` an
        existing index there is opened instead (its model must match a given one).
        """
        root = Path(path).expanduser()
        if root.exists() and not root.is_dir():
            raise InputError(f"{root} is a file; give a folder path for the new index")
        if root.is_dir() and any(root.iterdir()):
            if fmt.looks_like_index(root):
                if exist_ok:
                    return cls.open(root, model=model, lock_timeout=lock_timeout, **build)
                raise InputError(
                    f"an index already exists at {root}; open it with Index.open, pass "
                    "exist_ok=True to open it from create, or choose another folder"
                )
            raise InputError(
                f"{root} exists and is not empty; create the index in a new or empty folder"
            )
        settings = _settings(nbits, build)
        described, encoder = model_for_new_index(model, dim)
        check_nbits(nbits, int(described["dim"]))
        root.mkdir(parents=True, exist_ok=True)
        manifest = fmt.new_manifest(described, int(described["dim"]), nbits, settings.stored())
        lock = writer_lock(root)
        with locked(lock, root, lock_timeout):
            if fmt.looks_like_index(root):  # another process created it meanwhile
                raise InputError(
                    f"another process created an index at {root} meanwhile; open it with Index.open"
                )
            (root / fmt.PARTS_DIR).mkdir()
            store = DocStore(root / fmt.DOCS_DB, create=True)
            fmt.atomic_write_json(root / fmt.MANIFEST, manifest)  # last: marks it complete
        return cls(
            root, manifest, encoder, store, readonly=False, lock_timeout=lock_timeout,
            settings=settings,
        )  # fmt: skip

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        model: ModelArg = None,
        readonly: bool = False,
        lock_timeout: float = 0.0,
        **build: Any,
    ) -> Index:
        """Open an existing index; loads the model it records unless ``model`` is given.

        A given model must be the one the index was built with (same fingerprint and dim).
        ``lock_timeout``: seconds a write waits for another writer (0 = fail at once).
        ``build``: :class:`BuildSettings` fields that override, for this session only, the
        ones the index was created with (recorded in its manifest). Every file the index lists
        is opened and its header checked, so a damaged index fails here with what to do.
        """
        root = Path(path).expanduser()
        manifest = fmt.read_manifest(root)
        if model is not None and not isinstance(model, Encoder):
            model = as_encoder(model, dim=int(manifest["dim"]))
        if model is not None:
            check_model(model, manifest, root)
        settings = _settings(int(manifest["nbits"]), build, manifest.get("build"))
        store = DocStore(root / fmt.DOCS_DB, readonly=readonly)
        index = cls(
            root, manifest, model, store, readonly=readonly, lock_timeout=lock_timeout,
            settings=settings,
        )  # fmt: skip
        try:
            index._current()
        except BaseException:
            index.close()
            raise
        return index

    @property
    def encoder(self) -> Encoder:
        """The index's model; without one given to :meth:`open`, the recorded model is loaded
        on first use, so get/delete/info never pay for loading it."""
        with self._encoder_mutex:
            if self._encoder is None:
                self._encoder = load_recorded_model(self.manifest, self.path)
            return self._encoder

    # ------------------------------------------------------------------ reading

    def get(self, id: str) -> Document | None:
        """The live document with this id, or None."""
        self._check_open()
        row = self._store.get(one_id(id))
        if row is None:
            return None
        return Document(row.ext_id, row.text, row.title, metadata_from_json(row.metadata))

    def contains(self, id: str) -> bool:
        self._check_open()
        return bool(self._store.live_internal_ids([one_id(id)]))

    def __contains__(self, id: object) -> bool:
        return isinstance(id, (str, int)) and not isinstance(id, bool) and self.contains(id)

    def __len__(self) -> int:
        self._check_open()
        return self._store.live_count()

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        nprobe: int | None = None,
        candidates: int | None = None,
        rescore: bool = False,
    ) -> list[Hit]:
        """The ``k`` best live documents for ``query``, best first.

        ``nprobe``: centroid lists probed per query token (default from ``k``); ``rescore``:
        re-score the best ``candidates`` documents by MaxSim over all their (decompressed)
        token vectors.
        """
        if not isinstance(query, str):
            raise InputError(f"the query must be a string, not {type(query).__name__}")
        params = SearchParams(nprobe, candidates, rescore)
        return self.search_many([query], k, params=params)[0].hits

    def search_many(
        self,
        queries: list[str],
        k: int = 10,
        *,
        params: SearchParams | None = None,
        threads: int = 1,
    ) -> list[SearchResult]:
        """:meth:`search` for several queries (on ``threads`` threads)."""
        self._check_open()
        if isinstance(queries, str):
            raise InputError("search_many takes a list of queries; for one, use search()")
        queries = list(queries)
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"query {i} is empty or not a string; give non-empty strings")
        check_k(k)
        if not queries:
            return []
        vectors = self.encoder.encode_queries(queries)
        hits = self._search_arrays(vectors, k, params or SearchParams(), threads)
        return [SearchResult(q, h) for q, h in zip(queries, hits, strict=True)]

    def search_vectors(
        self,
        query_vectors: np.ndarray | list[np.ndarray],
        k: int = 10,
        *,
        params: SearchParams | None = None,
        threads: int = 1,
        with_text: bool = True,
    ) -> list[Hit] | list[list[Hit]]:
        """Search with already encoded ``[query_len, dim]`` queries: one array gives one list
        of hits, a list of arrays a list of lists. ``with_text=False`` skips reading texts."""
        self._check_open()
        check_k(k)
        single = isinstance(query_vectors, np.ndarray)
        queries = [query_vectors] if single else list(query_vectors)
        for q in queries:
            check_query(np.asarray(q), self.dim, self.path)
        found = self._search_arrays(queries, k, params or SearchParams(), threads, with_text)
        return found[0] if single else found

    def _search_arrays(
        self,
        queries: list[np.ndarray],
        k: int,
        params: SearchParams,
        threads: int,
        with_text: bool = True,
    ) -> list[list[Hit]]:
        found = search_snapshot(self._current(), queries, k, params, threads)
        wanted = {int(i) for ids, _ in found for i in ids}
        rows = self._store.fetch(wanted, with_text=with_text)
        return [
            [
                Hit(row.ext_id, float(score), row.text, row.title, metadata_from_json(row.metadata))
                for i, score in zip(ids.tolist(), scores.tolist(), strict=True)
                if (row := rows.get(i)) is not None and not row.deleted
            ]
            for ids, scores in found
        ]

    def _current(self) -> Snapshot:
        """The live state, re-read only when the index changed since last time."""
        with self._snapshot_mutex:
            key = (self._store.data_version(), self._changes)
            if self._snapshot is None or key != self._snapshot_key:
                self._snapshot = load_snapshot(self.path, self._store)
                self._snapshot_key = key
            return self._snapshot

    # ------------------------------------------------------------------ housekeeping

    def info(self) -> dict[str, Any]:
        """What and how big the index is (``index_bytes``: parts + codec, everything search
        reads; ``bytes``: the whole folder, texts included)."""
        self._check_open()
        live, deleted, tokens = self._store.counts()
        snap = self._current()
        codec = snap.codec
        stored_tokens = snap.tokens
        index_bytes = sum(r.bytes for r in snap.rows)
        if snap.codec_id is not None:
            index_bytes += codec_path(self.path, snap.codec_id).stat().st_size
        return {
            "path": str(self.path),
            "format": self.manifest["format"],
            "version": self.manifest["version"],
            "model": dict(self.manifest["model"]),
            "dim": self.dim,
            "nbits": self.nbits,
            "documents": live,
            "deleted": deleted,
            "tokens": tokens,
            "parts": len(snap.parts),
            "raw_parts": sum(p.kind == "raw" for p in snap.parts),
            "centroids": codec.num_centroids if codec else 0,
            "centroids_trained_on_tokens": codec.trained_tokens if codec else 0,
            "index_bytes": index_bytes,
            "bytes_per_token": index_bytes / stored_tokens if stored_tokens else 0.0,
            "bytes": fmt.disk_bytes(self.path),
            "created": self.manifest.get("created"),
            "colmax_version": self.manifest.get("colmax_version"),
        }

    def verify(self) -> int:
        """Re-read every live file and check its checksums; returns the number of files.

        Raises IndexCorruptError naming the damaged files; search only checks headers.
        """
        self._check_open()
        return verify_files(self.path, self._store)

    def close(self) -> None:
        """Release the SQLite connection and the memory maps (idempotent)."""
        if not self._closed:
            self._closed = True
            self._store.close()
            if self._snapshot is not None:
                self._snapshot.close()
            self._snapshot = None

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


# --------------------------------------------------------------------------- helpers


def _settings(
    nbits: int, build: dict[str, Any], stored: dict[str, Any] | None = None
) -> BuildSettings:
    """The settings of this session: ``build`` over the ones the manifest recorded (of those,
    only fields this version knows)."""
    known = set(BuildSettings.__dataclass_fields__) - {"nbits"}
    unknown = set(build) - known
    if unknown:
        raise InputError(f"unknown index option(s) {sorted(unknown)}; known: {sorted(known)}")
    recorded = {k: v for k, v in (stored or {}).items() if k in known}
    return BuildSettings(nbits=nbits, **{**recorded, **build})


__all__ = ["AddReport", "Document", "Index", "SearchParams"]
