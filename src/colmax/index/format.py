"""The on-disk layout of a colmax index (format version 2), and the helpers that write it safely.

An index is a directory::

    INDEX/
      manifest.json      what the index is: format, version, model, dim, nbits, build
                         settings (written once)
      docs.sqlite        documents, tombstones, the live parts and codec (SQLite, WAL, FULL sync)
      parts/
        000003.codec     centroids + residual buckets (``codec.py``), one live at a time
        000004.part      an immutable batch of documents' compressed token vectors
        000009.part      (``parts.py``); raw float16 parts only while the index is too small
      write.lock         the single-writer lock (filelock); readers never take it

``manifest.json``::

    {"format": "colmax-index", "version": 2, "model": {name, fingerprint, layout, path, dim},
     "dim": 128, "nbits": 2, "build": {chunk_tokens, train_min_tokens, centroid_factor,
     max_parts, regrow, auto_optimize}, "created": "2024-...Z", "colmax_version": "0.1.0"}

``build`` holds the :class:`~colmax.index.writer.BuildSettings` given to ``Index.create``;
``Index.open`` uses them unless told otherwise for that session (never written back).

``docs.sqlite`` (``PRAGMA user_version = 2``)::

    documents(internal_id INTEGER PRIMARY KEY,  -- from a counter: never reused nor renumbered
              ext_id TEXT,        -- the caller's id; unique among live rows (partial index)
              title TEXT, text TEXT, metadata TEXT (JSON object or NULL),
              n_tokens INTEGER,   -- token vectors stored for it
              deleted INTEGER)    -- 1 = tombstone: search skips it until compaction drops it
    parts(part_id, kind, codec_id, n_docs, n_tokens, bytes)   -- the live part files
    state(key, value)             -- codec (the live codec file), next_id, next_file

Crash safety rests on one ordering. A write (add, compaction, optimize) writes new part and
codec files to temporary names, fsyncs and renames them, and only then commits one SQLite
transaction that inserts the documents and swaps the parts table; that commit is the
acknowledgement. Files are never modified after the rename. A file the parts table does not
name comes from a write that never committed (or was replaced): readers never open it and the
next writer deletes it. A named file that is missing, truncated or fails its header checksum is
corruption, reported with what to do, never silently skipped.

The documents' encoded text is ``title + "\\n" + text`` when a title is given, else ``text``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from colmax.errors import IndexCorruptError, IndexNotFoundError

FORMAT_NAME = "colmax-index"
FORMAT_VERSION = 2
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
DOCS_DB = "docs.sqlite"
PARTS_DIR = "parts"
LOCK_FILE = "write.lock"


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only once it is fully written and fsynced:
    readers see the old file or the whole new one, never a torn one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the index's other files are 0644
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write((json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def new_manifest(
    model: dict[str, Any], dim: int, nbits: int, build: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The manifest of a new, empty index."""
    from colmax import __version__

    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": dict(model),
        "dim": int(dim),
        "nbits": int(nbits),
        "build": dict(build or {}),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "colmax_version": __version__,
    }


def looks_like_index(path: Path) -> bool:
    """True if ``path`` holds any file that only an index would (complete or not)."""
    return any((path / name).exists() for name in (MANIFEST, DOCS_DB, PARTS_DIR))


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and check ``root/manifest.json``; every failure says what to do."""
    if not root.exists():
        raise IndexNotFoundError(
            f"there is no index at {root}; create one with Index.create({str(root)!r}) "
            "or check the path"
        )
    if not root.is_dir():
        raise IndexNotFoundError(
            f"{root} is a file, not an index folder; pass the folder an index was created in"
        )
    path = root / MANIFEST
    if not path.exists():
        if looks_like_index(root):
            raise IndexCorruptError(
                f"{path} is missing: the index was never finished (an interrupted create) or "
                "the file was deleted; restore it from a backup, or delete the folder and "
                "rebuild the index"
            )
        raise IndexNotFoundError(
            f"{root} is not a colmax index (it has no {MANIFEST}); pass the folder an index "
            "was created in, or create one there with Index.create"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(
            f"{path} cannot be read as JSON ({exc}); restore it from a backup, or rebuild the index"
        ) from exc
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: Any, path: Path) -> None:
    """Refuse manifests of other formats, newer versions, or with fields missing."""
    from colmax import __version__

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexCorruptError(
            f'{path} is not a colmax index manifest (expected "format": "{FORMAT_NAME}"); '
            "restore it from a backup, or rebuild the index"
        )
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise IndexCorruptError(
            f"{path} has an invalid format version {version!r}; restore it from a backup, "
            "or rebuild the index"
        )
    if version < FORMAT_VERSION:
        raise IndexCorruptError(
            f"{path.parent} uses index format version {version}, from an older colmax; this "
            f"colmax reads format version {FORMAT_VERSION}. Rebuild the index (colmax index)"
        )
    if version > FORMAT_VERSION:
        writer = manifest.get("colmax_version", "a newer colmax")
        raise IndexCorruptError(
            f"{path.parent} uses index format version {version}, written by colmax {writer}; "
            f"this colmax ({__version__}) reads format version {FORMAT_VERSION} only. Upgrade "
            f"colmax to {writer} or later (pip install -U 'colmax>={writer}')"
        )
    model = manifest.get("model")
    dim = manifest.get("dim")
    problems = []
    if not isinstance(model, dict) or not {"name", "fingerprint", "path"} <= model.keys():
        problems.append("'model' must record name, fingerprint and path")
    if not isinstance(dim, int) or dim < 1:
        problems.append(f"'dim' must be a positive integer, not {dim!r}")
    if manifest.get("nbits") not in (1, 2, 4):
        problems.append(f"'nbits' must be 1, 2 or 4, not {manifest.get('nbits')!r}")
    if not isinstance(manifest.get("build", {}), dict):
        problems.append("'build' must be an object of build settings")
    if problems:
        raise IndexCorruptError(
            f"{path} is damaged: {'; '.join(problems)}. Restore it from a backup, or rebuild "
            "the index"
        )


def disk_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (what ``info()`` reports as the index's size)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            # a file may vanish while walking (e.g. the WAL after a checkpoint)
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
