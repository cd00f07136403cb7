"""The index on disk (format version 2, ``format.py``): damaged part, codec, manifest and SQLite
files, orphan files of writes that never committed, a failed add, the writer lock, readers.

The indexes are built from random unit vectors (``vectors=``), so nothing here encodes text.
A compressed index is made by passing a small ``train_min_tokens``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from bundled import DEFAULT_DIM

from colmax import Index
from colmax.errors import IndexCorruptError, IndexLockedError
from colmax.index.searcher import SearchParams

DIM = DEFAULT_DIM  # the bundled model's
TRAIN_MIN_TOKENS = 200
EXACT = SearchParams(nprobe=4096, rescore=True)  # every list probed, then exact MaxSim


def unit_vectors(seed: int, n_tokens: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n_tokens, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_docs(start: int, n: int) -> tuple[list[dict], list[np.ndarray]]:
    docs = [{"id": f"d{i}", "text": f"document number {i}"} for i in range(start, start + n)]
    vecs = [unit_vectors(i, 6 + i % 5) for i in range(start, start + n)]
    return docs, vecs


def add_docs(idx: Index, start: int, n: int, **kwargs):
    docs, vecs = make_docs(start, n)
    return idx.add(docs, vectors=vecs, **kwargs)


N_DOCS = 40  # four adds of ten: raw, raw, trains the codec, compressed
VECS = dict(zip([d["id"] for d in make_docs(0, N_DOCS)[0]], make_docs(0, N_DOCS)[1]))
QUERY = VECS["d7"][:4]


def build(path: Path, encoder, **settings) -> Path:
    with Index.create(path, encoder, max_parts=8, **settings) as idx:
        for start in range(0, N_DOCS, 10):
            add_docs(idx, start, 10)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, default_encoder):
    """A compressed index: a codec and three parts."""
    path = build(tmp_path_factory.mktemp("built") / "idx", default_encoder, train_min_tokens=200)
    parts, codec = live_files(path)
    assert codec is not None and len(parts) == 3
    return path


@pytest.fixture(scope="module")
def built_raw(tmp_path_factory, default_encoder):
    """An index too small for centroids: raw parts only."""
    path = build(tmp_path_factory.mktemp("built_raw") / "idx", default_encoder)
    parts, codec = live_files(path)
    assert codec is None and len(parts) == 4
    return path


@pytest.fixture()
def path(tmp_path, built):
    """A fresh, closed copy of the compressed index."""
    shutil.copytree(built, tmp_path / "idx")
    return tmp_path / "idx"


@pytest.fixture(params=["compressed", "raw"])
def any_path(request, tmp_path, built, built_raw):
    """A fresh copy of the compressed index, then of the raw one."""
    source = built if request.param == "compressed" else built_raw
    shutil.copytree(source, tmp_path / "idx")
    return tmp_path / "idx"


def live_files(path: Path) -> tuple[list[Path], Path | None]:
    """The part files and the codec file the committed state names (read from docs.sqlite)."""
    conn = sqlite3.connect(f"file:{path / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        parts = [r[0] for r in conn.execute("SELECT part_id FROM parts ORDER BY part_id")]
        codec = conn.execute("SELECT value FROM state WHERE key = 'codec'").fetchone()
    finally:
        conn.close()
    return (
        [path / "parts" / f"{p:06d}.part" for p in parts],
        path / "parts" / f"{codec[0]:06d}.codec" if codec else None,
    )


def files_on_disk(path: Path) -> set[str]:
    return {p.name for p in (path / "parts").iterdir()}


def named_files(path: Path) -> set[str]:
    parts, codec = live_files(path)
    return {p.name for p in parts} | ({codec.name} if codec else set())


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


def own_hits(idx: Index) -> dict[str, str]:
    """Each document's top hit when searched with its own vectors."""
    ids = list(VECS)
    found = idx.search_vectors([VECS[i] for i in ids], k=1, params=EXACT, with_text=False)
    return {i: hits[0].id for i, hits in zip(ids, found)}


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


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


# --------------------------------------------------------------------------- orphan files


def test_orphan_files_are_ignored_by_readers_and_removed_by_the_next_writer(any_path):
    parts = live_files(any_path)[0]
    named = named_files(any_path)
    with Index.open(any_path, readonly=True) as idx:
        before = idx.search_vectors(QUERY, k=5, params=EXACT)
    # what writes that never committed leave behind: a whole part, a codec, a temporary file
    shutil.copyfile(parts[0], any_path / "parts" / "000900.part")
    (any_path / "parts" / "000901.codec").write_bytes(b"half a codec")
    (any_path / "parts" / ".000902.part.x1y2.tmp").write_bytes(os.urandom(1000))
    (any_path / "parts" / "README").write_text("not the index's: left alone")
    orphans = {"000900.part", "000901.codec", ".000902.part.x1y2.tmp"}
    for readonly in (True, False):
        with Index.open(any_path, readonly=readonly) as idx:
            assert len(idx) == N_DOCS
            assert idx.search_vectors(QUERY, k=5, params=EXACT) == before
            assert idx.verify() == len(named)
            assert own_hits(idx) == {i: i for i in VECS}
        assert files_on_disk(any_path) == named | orphans | {"README"}
    with Index.open(any_path) as idx:
        add_docs(idx, N_DOCS, 1)
        assert not orphans & files_on_disk(any_path)
        assert files_on_disk(any_path) == named_files(any_path) | {"README"}
        assert idx.get(f"d{N_DOCS}") is not None and len(idx) == N_DOCS + 1
        assert idx.verify() == len(named_files(any_path))
        # committed numbers are never reused: the new part's is past every earlier one
        assert max(int(p.name[:6]) for p in live_files(any_path)[0]) > max(
            int(n[:6]) for n in named
        )


# --------------------------------------------------------------------------- failed adds


@pytest.mark.parametrize("n_new", [1, 30], ids=["compressed-add", "add-that-trains"])
def test_failed_add_rolls_back_its_files(tmp_path, built_raw, built, monkeypatch, n_new):
    """An add that fails after writing its files deletes them and changes nothing; with the
    raw index and 30 new documents the failed add had trained a codec and rewritten parts."""
    source = built if n_new == 1 else built_raw
    path = tmp_path / "idx"
    shutil.copytree(source, path)
    before_files = files_on_disk(path)
    written: list[set[str]] = []

    def boom(self):
        written.append(files_on_disk(path))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Index, "_on_files_written", boom)
    with Index.open(path, train_min_tokens=TRAIN_MIN_TOKENS) as idx:
        with pytest.raises(RuntimeError, match="disk on fire"):
            add_docs(idx, N_DOCS, n_new)
        new = written[0] - before_files
        assert any(n.endswith(".part") for n in new)
        if n_new == 30:
            assert any(n.endswith(".codec") for n in new)
        assert files_on_disk(path) == before_files
        assert f"d{N_DOCS}" not in idx and len(idx) == N_DOCS
        assert own_hits(idx) == {i: i for i in VECS}
        assert idx.info()["raw_parts"] == (4 if n_new == 30 else 0)
        monkeypatch.undo()
        add_docs(idx, N_DOCS, n_new)  # and the same add then goes through
        assert len(idx) == N_DOCS + n_new and idx.verify() == len(named_files(path))


# --------------------------------------------------------------------------- lock and readers

HOLD_LOCK = """
    import sys, time, filelock
    lock = filelock.FileLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
"""


def test_second_writer_gets_index_locked_error(path):
    holder = run_python(HOLD_LOCK, str(path / "write.lock"), "60")
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Index.open(path) as idx:
            with pytest.raises(IndexLockedError, match=r"another process is writing.*wait"):
                add_docs(idx, N_DOCS, 1)
            with pytest.raises(IndexLockedError):
                idx.delete(["d1"])
            with pytest.raises(IndexLockedError):
                idx.compact()
            with pytest.raises(IndexLockedError):
                idx.optimize()
            assert idx.search_vectors(QUERY, k=1, params=EXACT)[0].id == "d7"  # readers never lock
            assert len(idx) == N_DOCS
        assert files_on_disk(path) == named_files(path)
    finally:
        holder.kill()
        holder.communicate()


def test_lock_timeout_waits_for_the_other_writer(path):
    holder = run_python(HOLD_LOCK, str(path / "write.lock"), "1")
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Index.open(path, lock_timeout=60) as idx:
            idx.delete(["d1"])  # waits about a second, then goes ahead
            assert "d1" not in idx
    finally:
        holder.communicate(timeout=60)


def test_reader_sees_the_writers_commits(path):
    with (
        Index.open(path, readonly=True) as reader,
        Index.open(path) as writer,
    ):
        assert reader.search_vectors(QUERY, k=1, params=EXACT)[0].id == "d7"
        docs, vecs = make_docs(N_DOCS, 1)
        writer.add(docs, vectors=[np.concatenate([QUERY, vecs[0]])])  # d40 now matches best
        writer.delete(["d7"])
        assert len(reader) == N_DOCS
        hits = reader.search_vectors(QUERY, k=N_DOCS, params=EXACT)
        assert "d7" not in {h.id for h in hits} and hits[0].id == f"d{N_DOCS}"
        assert reader.get(f"d{N_DOCS}") is not None and reader.get("d7") is None


def test_two_writers_in_one_process_exclude_each_other(path):
    with Index.open(path) as first, Index.open(path) as second:
        with first._writing(), pytest.raises(IndexLockedError):
            second.delete(["d1"])
        assert second.delete(["d1"]) == 1


def test_readonly_index_on_a_fresh_copy(path):
    with Index.open(path, readonly=True) as idx:
        hits = idx.search_vectors(QUERY, k=3, params=EXACT)
        assert idx.verify() == len(named_files(path))
    assert hits[0].id == "d7" and np.isfinite([h.score for h in hits]).all()


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_release_drops_read_pages_from_rss_and_views_stay_valid(tmp_path):
    """Rewrites call ``release`` after each part: the file pages they read leave the process's
    RSS (so re-encoding a large index does not add its size to the writer's RSS)."""
    from colmax.index.bundle import Bundle, write_bundle

    data = np.arange(12 * 2**20, dtype=np.int32).reshape(-1, 1024)  # 48 MB
    write_bundle(tmp_path / "big.bundle", {"data": data})
    bundle = Bundle(tmp_path / "big.bundle")
    view = bundle["data"]
    before = _rss_file_mb()
    assert int(view[:, 0].sum()) == int(data[:, 0].sum())  # touches every page
    touched = _rss_file_mb()
    bundle.release()
    released = _rss_file_mb()
    assert touched - before > 40, (before, touched)
    assert touched - released > 40, (touched, released)
    np.testing.assert_array_equal(view[-3:], data[-3:])  # faulted back in from the page cache
