"""A file of named numpy arrays that is written atomically and read through one memory map.

Layout::

    b"COLMAXB1"  u32 header_length  header (JSON, UTF-8)  padding  array data (64-byte aligned)

The header names every array (dtype, shape, byte offset, CRC-32) plus free-form ``meta``, and
carries the CRC-32 of its own text in the fixed prefix, so a torn or truncated file is caught
when it is opened (header CRC, sizes) and damaged array bytes by :func:`verify_bundle`.
Files are written to a temporary name, fsynced and renamed: a reader sees the old file or the
whole new one, never a half-written one.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from colmax.errors import IndexCorruptError
from colmax.index.format import atomic_file

MAGIC = b"COLMAXB1"
_PREFIX = struct.Struct("<8sII")  # magic, header length, header CRC-32
_ALIGN = 64
_REPAIR = "restore it from a backup, or rebuild the index"


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def write_bundle(
    path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
) -> int:
    """Write ``arrays`` to ``path`` atomically (temporary file, fsync, rename); returns bytes."""
    ready = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    entries: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in ready.items():
        entries[name] = {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "offset": offset,
            "crc32": zlib.crc32(memoryview(array).cast("B")) if array.size else 0,
        }
        offset = _align(offset + array.nbytes)
    header = json.dumps({"arrays": entries, "meta": dict(meta or {})}, sort_keys=True).encode()
    data_start = _align(_PREFIX.size + len(header))
    with atomic_file(path) as out:
        out.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header)))
        out.write(header)
        for name, array in ready.items():
            out.seek(data_start + entries[name]["offset"])
            out.write(memoryview(array).cast("B") if array.size else b"")
        out.truncate(data_start + offset)
    return data_start + offset


class Bundle:
    """A bundle file opened read-only: ``bundle[name]`` is a zero-copy view into the map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise IndexCorruptError(f"{path} cannot be read ({exc}); {_REPAIR}") from exc
        self.size = size
        self.header = self._read_header()
        self.meta: dict[str, Any] = self.header["meta"]
        self._arrays: dict[str, np.ndarray] = {}

    def _corrupt(self, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"{self.path} is damaged ({what}); {_REPAIR}")

    def _read_header(self) -> dict[str, Any]:
        if self._map is None or self.size < _PREFIX.size:
            raise self._corrupt("the file is empty or truncated")
        magic, length, crc = _PREFIX.unpack_from(self._map, 0)
        if magic != MAGIC:
            raise self._corrupt("not a colmax index file: wrong magic bytes")
        raw = self._map[_PREFIX.size : _PREFIX.size + length]
        if len(raw) != length or zlib.crc32(raw) != crc:
            raise self._corrupt("its header fails its checksum: the file is torn or truncated")
        header = json.loads(raw)
        data_start = _align(_PREFIX.size + length)
        for name, entry in header["arrays"].items():
            nbytes = (
                int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(entry["dtype"]).itemsize
            )
            if data_start + entry["offset"] + nbytes > self.size:
                raise self._corrupt(f"array {name!r} runs past the end: the file is truncated")
            entry["start"] = data_start + entry["offset"]
            entry["nbytes"] = nbytes
        return header

    def __contains__(self, name: str) -> bool:
        return name in self.header["arrays"]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            entry = self.header["arrays"].get(name)
            if entry is None:
                raise self._corrupt(f"array {name!r} is missing")
            dtype = np.dtype(entry["dtype"])
            count = entry["nbytes"] // dtype.itemsize
            flat = np.frombuffer(self._map, dtype=dtype, count=count, offset=entry["start"])
            self._arrays[name] = flat.reshape(entry["shape"])
        return self._arrays[name]

    def verify(self) -> list[str]:
        """Names of the arrays whose bytes fail their CRC-32 (empty when all are intact)."""
        bad = []
        for name, entry in self.header["arrays"].items():
            data = self[name]
            crc = zlib.crc32(memoryview(np.ascontiguousarray(data)).cast("B")) if data.size else 0
            if crc != entry["crc32"]:
                bad.append(name)
        return bad

    def release(self) -> None:
        """Tell the kernel this process is done with the pages it read (``MADV_DONTNEED``): they
        leave its RSS but stay in the page cache, and views stay valid (a later read faults the
        pages back in). Rewrites call it after each part, so reading a whole index to re-encode
        it does not pile its pages onto the writer's RSS."""
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        """Drop the views and the map (views still held elsewhere keep it alive)."""
        self._arrays.clear()
        self._map = None
