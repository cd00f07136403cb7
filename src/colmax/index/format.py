"""The on-disk layout of a colmax index (format version 1), and the helpers that write it safely.

An index is a directory::

    INDEX/
      manifest.json      what the index is: format, version, model, dim, dtype (written once)
      docs.sqlite        the documents and where their vectors live (SQLite, WAL, synchronous=FULL)
      vectors/
        000000.f16       append-only float16 token vectors, [n_tokens, dim] row-major, no header
        000001.f16       a new segment starts when the current one would pass ~256 MB
      write.lock         the single-writer lock (filelock); readers never take it

``manifest.json``::

    {"format": "colmax-index", "version": 1, "model": {name, fingerprint, layout, path, dim},
     "dim": 384, "dtype": "float16", "created": "2024-...Z", "colmax_version": "0.1.0"}

``docs.sqlite`` (``PRAGMA user_version = 1``) has one table::

    documents(internal_id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused nor renumbered
              ext_id TEXT,        -- the caller's id; unique among live rows (partial index)
              title TEXT, text TEXT, metadata TEXT (JSON object or NULL),
              segment INTEGER,    -- which vectors/NNNNNN.f16 file
              start INTEGER,      -- first row (token) of the document in that file
              length INTEGER,     -- number of rows (tokens)
              checksum INTEGER,   -- CRC-32 of the document's raw vector bytes
              deleted INTEGER)    -- 1 = tombstone: the row and its vectors stay, search skips it

    indexes: UNIQUE(ext_id) WHERE deleted = 0 (a tombstone never blocks re-adding its id),
             (segment, start, length, deleted) (covers the scan order and the append position)

Crash safety rests on one ordering. An add appends vectors to the segment, flushes and fsyncs
it, and only then inserts the rows in one SQLite transaction; the commit is the
acknowledgement. SQLite is the truth: bytes of a segment past the last row that any document
(live or tombstone) references come from an add that never committed. Readers ignore them and
the next writer truncates them (and removes whole unreferenced segment files). A referenced
segment that is missing or too short is corruption, never silently skipped.

The documents' encoded text is ``title + "\\n" + text`` when a title is given, else ``text``.
A later compressed (PLAID-style) index builds its centroids and residual codes from these raw
vectors, keyed by ``internal_id``; nothing here needs to change for that.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from colmax.errors import IndexCorruptError, IndexNotFoundError

FORMAT_NAME = "colmax-index"
FORMAT_VERSION = 1
SCHEMA_VERSION = 1
DTYPE = "float16"
MANIFEST = "manifest.json"
DOCS_DB = "docs.sqlite"
VECTORS_DIR = "vectors"
LOCK_FILE = "write.lock"
SEGMENT_SUFFIX = ".f16"
SEGMENT_BYTES = 256 * 1024 * 1024


def segment_path(root: Path, segment: int) -> Path:
    """``root/vectors/NNNNNN.f16``."""
    return root / VECTORS_DIR / f"{segment:06d}{SEGMENT_SUFFIX}"


def segment_number(path: Path) -> int | None:
    """The segment number of a ``NNNNNN.f16`` file name, or None for any other file."""
    stem = path.name.removesuffix(SEGMENT_SUFFIX)
    if path.name.endswith(SEGMENT_SUFFIX) and stem.isdigit():
        return int(stem)
    return None


def vector_checksum(vectors: np.ndarray) -> int:
    """CRC-32 of a document's raw float16 bytes (what ``Index.verify`` re-computes)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(vectors)).cast("B"))


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


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a torn one."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the index's other files are 0644
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def new_manifest(model: dict[str, Any], dim: int) -> dict[str, Any]:
    """The manifest of a new, empty index."""
    from colmax import __version__

    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": dict(model),
        "dim": int(dim),
        "dtype": DTYPE,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "colmax_version": __version__,
    }


def looks_like_index(path: Path) -> bool:
    """True if ``path`` holds any file that only an index would (complete or not)."""
    return any((path / name).exists() for name in (MANIFEST, DOCS_DB, VECTORS_DIR))


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
    if manifest.get("dtype") != DTYPE:
        problems.append(f"'dtype' must be {DTYPE!r}, not {manifest.get('dtype')!r}")
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
