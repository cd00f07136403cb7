"""Damaged index files (format version 2, ``format.py``): missing, truncated, empty or garbled
part and codec files, a swapped part, flipped bytes that only ``verify`` finds, bad or missing
manifests, damaged or missing SQLite, old formats. Each gets a clear error that says what to
do. The indexes come from ``stored_index.py`` (random unit vectors, nothing encoded).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from stored_index import N_DOCS, QUERY, VECS, live_files, named_files, own_hits

from colmax import Index
from colmax.errors import IndexCorruptError


def array_offset(file: Path, name: str) -> int:
    """Where array ``name``'s bytes start in a bundle file (``bundle.py``'s layout)."""
    with open(file, "rb") as handle:
        magic, length, _ = struct.unpack("<8sII", handle.read(16))
        header = json.loads(handle.read(length))
    assert magic == b"COLMAXB1"
    data_start = (16 + length + 63) // 64 * 64
    return data_start + header["arrays"][name]["offset"]


def flip_byte(file: Path, offset: int) -> None:
    with open(file, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_built_indexes_find_every_document(built, built_raw):
    for source in (built, built_raw):
        with Index.open(source, readonly=True) as idx:
            assert len(idx) == N_DOCS
            assert own_hits(idx) == {i: i for i in VECS}
            assert idx.verify() == len(named_files(source))


# --------------------------------------------------------------------------- damaged files


def test_missing_part_file(any_path):
    part = live_files(any_path)[0][1]
    part.unlink()
    with pytest.raises(IndexCorruptError, match=rf"{part.name} is missing.*restore.*rebuild"):
        Index.open(any_path)


def test_missing_codec_file(path):
    codec = live_files(path)[1]
    codec.unlink()
    with pytest.raises(IndexCorruptError, match=rf"{codec.name} is missing.*restore.*rebuild"):
        Index.open(path)


@pytest.mark.parametrize("which", ["part", "codec"])
def test_truncated_file(path, which):
    parts, codec = live_files(path)
    file = parts[0] if which == "part" else codec
    os.truncate(file, file.stat().st_size // 2)
    with pytest.raises(IndexCorruptError, match=rf"{file.name} is damaged.*truncated.*restore"):
        Index.open(path)


def test_empty_part_file(any_path):
    part = live_files(any_path)[0][0]
    os.truncate(part, 0)
    with pytest.raises(IndexCorruptError, match=rf"{part.name} is damaged.*empty.*restore"):
        Index.open(any_path)


@pytest.mark.parametrize(
    ("offset", "message"),
    [(0, "wrong magic bytes"), (8, "checksum"), (40, "checksum")],
    ids=["magic", "header-length", "header-text"],
)
def test_garbage_in_a_part_header(any_path, offset, message):
    part = live_files(any_path)[0][-1]
    with open(part, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xde\xad\xbe\xef" * 2)
    with pytest.raises(IndexCorruptError, match=rf"{part.name} is damaged.*{message}.*restore"):
        Index.open(any_path)


def test_garbage_in_the_codec_header(path):
    codec = live_files(path)[1]
    flip_byte(codec, 30)
    with pytest.raises(IndexCorruptError, match=rf"{codec.name} is damaged.*checksum"):
        Index.open(path)


def test_a_part_file_swapped_for_another(path):
    parts = live_files(path)[0]
    shutil.copyfile(parts[-1], parts[0])  # a valid part file, but not the one listed
    with pytest.raises(IndexCorruptError, match=rf"{parts[0].name} holds .* but the index lists"):
        Index.open(path)


def test_verify_finds_flipped_bytes_in_a_part(any_path):
    part = live_files(any_path)[0][0]
    array = "residuals" if live_files(any_path)[1] else "vectors"
    with Index.open(any_path) as idx:
        assert idx.verify() == len(named_files(any_path))
    flip_byte(part, array_offset(part, array) + 5)
    message = rf"1 file\(s\).*{part.name} \({array}\).*restore.*rebuild"
    with Index.open(any_path) as idx, pytest.raises(IndexCorruptError, match=message):
        idx.verify()  # (opening checks headers only)


def test_verify_finds_flipped_bytes_in_the_codec(path):
    """verify() says it re-reads every live file; the codec is one of them (and damage to its
    centroids would silently change every search)."""
    codec = live_files(path)[1]
    flip_byte(codec, array_offset(codec, "centroids") + 3)
    with Index.open(path) as idx, pytest.raises(IndexCorruptError, match=codec.name):
        idx.verify()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"format": "something-else", "version": 2}', "not a colmax index manifest"),
        ("[1, 2]", "not a colmax index manifest"),
    ],
)
def test_garbage_manifest(path, content, message):
    (path / "manifest.json").write_text(content)
    with pytest.raises(IndexCorruptError, match=message):
        Index.open(path)


def test_manifest_from_a_newer_colmax(path):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(version=3, colmax_version="9.0.0")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=r"format version 3.*colmax 9\.0\.0.*Upgrade"):
        Index.open(path)


def test_old_format_version_1_says_rebuild(path):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=r"format version 1, from an older.*Rebuild"):
        Index.open(path)


def test_manifest_missing_fields(path):
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["dim"]
    manifest["nbits"] = 3
    manifest["build"] = [1, 2]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        IndexCorruptError, match=r"'dim' must be.*'nbits' must be 1, 2 or 4.*'build' must be"
    ):
        Index.open(path)


def test_missing_manifest(path):
    (path / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is missing.*rebuild"):
        Index.open(path)


def test_garbage_sqlite(path):
    (path / "docs.sqlite").write_bytes(b"this is not a database" * 500)
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is damaged.*rebuild"):
        Index.open(path)


def test_damaged_sqlite_pages(path):
    data = bytearray((path / "docs.sqlite").read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # keep the header page, garble the tables
    (path / "docs.sqlite").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is damaged"):
        idx = Index.open(path)
        idx.search_vectors(QUERY)
        len(idx)


def test_missing_sqlite(path):
    (path / "docs.sqlite").unlink()
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is missing"):
        Index.open(path)


def test_sqlite_of_the_old_schema(path):
    conn = sqlite3.connect(path / "docs.sqlite")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(IndexCorruptError, match=r"schema version 1, expected 2.*rebuild"):
        Index.open(path)
