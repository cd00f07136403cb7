"""The index on disk: damaged files, crashed adds, the writer lock, readers beside a writer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from colmax import Index
from colmax.errors import IndexCorruptError, IndexLockedError
from colmax.index.format import segment_path

DOCS = [
    {"id": "cat", "text": "The cat sat on the warm mat and purred all afternoon."},
    {"id": "paris", "text": "Paris is the capital and largest city of France."},
    {"id": "python", "text": "Python is a popular programming language for data science."},
    {"id": "banana", "text": "Bananas are yellow fruit rich in potassium."},
    {"id": "everest", "text": "Mount Everest is the highest mountain above sea level."},
]
QUERY = "what is the capital of France"


@pytest.fixture(scope="module")
def built(tmp_path_factory, default_encoder):
    path = tmp_path_factory.mktemp("built") / "idx"
    with Index.create(path, default_encoder) as idx:
        idx.add(DOCS)
    return path


@pytest.fixture(scope="module")
def qvec(default_encoder):
    return default_encoder.encode_queries([QUERY])[0]


@pytest.fixture()
def path(tmp_path, built):
    """A fresh, closed copy of the built index."""
    shutil.copytree(built, tmp_path / "idx")
    return tmp_path / "idx"


def committed_bytes(path) -> int:
    return segment_path(path, 0).stat().st_size


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# --------------------------------------------------------------------------- damaged files


def test_missing_segment_file(path, default_encoder):
    segment_path(path, 0).unlink()
    with pytest.raises(IndexCorruptError, match=r"000000\.f16 is missing.*restore"):
        Index.open(path, model=default_encoder)


def test_truncated_segment_file(path, default_encoder):
    os.truncate(segment_path(path, 0), committed_bytes(path) // 2)
    with pytest.raises(IndexCorruptError, match=r"000000\.f16 is truncated.*restore"):
        Index.open(path, model=default_encoder)


def test_segment_truncated_while_open_fails_at_search(path, default_encoder, qvec):
    with Index.open(path, model=default_encoder) as idx:
        os.truncate(segment_path(path, 0), 100)
        with pytest.raises(IndexCorruptError, match="truncated"):
            idx.search_vectors(qvec)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot be read as JSON"),
        ('{"format": "something-else", "version": 1}', "not a colmax index manifest"),
        ("[1, 2]", "not a colmax index manifest"),
    ],
)
def test_garbage_manifest(path, default_encoder, content, message):
    (path / "manifest.json").write_text(content)
    with pytest.raises(IndexCorruptError, match=message):
        Index.open(path, model=default_encoder)


def test_manifest_from_a_newer_colmax(path, default_encoder):
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(version=2, colmax_version="9.0.0")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=r"format version 2.*colmax 9\.0\.0.*Upgrade"):
        Index.open(path, model=default_encoder)


def test_manifest_missing_fields(path, default_encoder):
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["dim"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="'dim' must be"):
        Index.open(path, model=default_encoder)


def test_missing_manifest(path, default_encoder):
    (path / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match=r"manifest\.json is missing"):
        Index.open(path, model=default_encoder)


def test_garbage_sqlite(path, default_encoder):
    (path / "docs.sqlite").write_bytes(b"this is not a database" * 500)
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is damaged"):
        Index.open(path, model=default_encoder)


def test_damaged_sqlite_pages(path, default_encoder, qvec):
    data = bytearray((path / "docs.sqlite").read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)  # keep the header page, garble the tables
    (path / "docs.sqlite").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is damaged"):
        idx = Index.open(path, model=default_encoder)
        idx.search_vectors(qvec)
        len(idx)


def test_missing_sqlite(path, default_encoder):
    (path / "docs.sqlite").unlink()
    with pytest.raises(IndexCorruptError, match=r"docs\.sqlite is missing"):
        Index.open(path, model=default_encoder)


def test_verify_finds_flipped_bytes(path, default_encoder):
    with Index.open(path, model=default_encoder) as idx:
        assert idx.verify() == len(DOCS)
    with open(segment_path(path, 0), "r+b") as handle:
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with (
        Index.open(path, model=default_encoder) as idx,
        pytest.raises(IndexCorruptError, match=r"1 document.*'cat'.*replace=True"),
    ):
        idx.verify()


# --------------------------------------------------------------------------- crashed adds


def test_bytes_past_the_committed_end_are_ignored_then_truncated(path, default_encoder, qvec):
    with Index.open(path, model=default_encoder) as idx:
        before = idx.search_vectors(qvec, k=len(DOCS))
    with open(segment_path(path, 0), "ab") as handle:
        handle.write(os.urandom(1000))  # half a vector and more: an add that never committed
    with Index.open(path, model=default_encoder) as idx:
        assert len(idx) == len(DOCS)
        assert idx.search_vectors(qvec, k=len(DOCS)) == before
        idx.add([{"id": "new", "text": "A new document after the crash."}])
        assert committed_bytes(path) == idx.info()["tokens"] * idx.dim * 2
        assert idx.verify() == len(DOCS) + 1
        assert idx.search_vectors(qvec, k=1)[0].id == "paris"


def test_add_killed_between_vectors_and_commit(path, default_encoder, qvec):
    """A real crash: a process fsyncs its vectors, then dies before the SQLite commit."""
    with Index.open(path, model=default_encoder) as idx:
        before = idx.search_vectors(qvec, k=len(DOCS))
        rows = idx.info()["tokens"]
    good = committed_bytes(path)
    crash = run_python(
        """
        import os, sys
        from colmax import Index
        idx = Index.open(sys.argv[1])
        idx._vectors.max_rows = int(sys.argv[2])  # roll over to a new segment mid-add
        Index._on_vectors_written = lambda self: os._exit(17)
        idx.add([{"id": f"new{i}", "text": f"Crash test document {i}."} for i in range(6)])
        """,
        str(path),
        str(rows + 12),
    )
    _, err = crash.communicate(timeout=120)
    assert crash.returncode == 17, err
    assert committed_bytes(path) > good  # vectors of the lost add, past the committed end
    assert segment_path(path, 1).exists()  # and a whole new segment nobody references
    with Index.open(path, model=default_encoder) as idx:
        assert len(idx) == len(DOCS) and "new0" not in idx
        assert idx.search_vectors(qvec, k=len(DOCS)) == before
        assert idx.verify() == len(DOCS)
        report = idx.add([{"id": "after", "text": "Written after the crash."}])
        assert committed_bytes(path) == good + report.tokens * idx.dim * 2
        assert not segment_path(path, 1).exists()
        assert idx.verify() == len(DOCS) + 1


def test_failed_add_rolls_back_its_vectors(path, default_encoder, monkeypatch):
    good = committed_bytes(path)

    def boom(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Index, "_on_vectors_written", boom)
    with Index.open(path, model=default_encoder) as idx:
        with pytest.raises(RuntimeError, match="disk on fire"):
            idx.add([{"id": "new", "text": "Never stored."}])
        assert committed_bytes(path) == good and "new" not in idx and len(idx) == len(DOCS)


# --------------------------------------------------------------------------- lock and readers

HOLD_LOCK = """
    import sys, time, filelock
    lock = filelock.FileLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
"""


def test_second_writer_gets_index_locked_error(path, default_encoder, qvec):
    holder = run_python(HOLD_LOCK, str(path / "write.lock"), "60")
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Index.open(path, model=default_encoder) as idx:
            with pytest.raises(IndexLockedError, match=r"another process is writing.*wait"):
                idx.add([{"id": "new", "text": "Blocked."}])
            with pytest.raises(IndexLockedError):
                idx.delete(["cat"])
            assert idx.search_vectors(qvec, k=1)[0].id == "paris"  # readers never lock
            assert len(idx) == len(DOCS)
    finally:
        holder.kill()
        holder.communicate()


def test_lock_timeout_waits_for_the_other_writer(path, default_encoder):
    holder = run_python(HOLD_LOCK, str(path / "write.lock"), "1")
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Index.open(path, model=default_encoder, lock_timeout=60) as idx:
            idx.delete(["cat"])  # waits about a second, then goes ahead
            assert "cat" not in idx
    finally:
        holder.communicate(timeout=60)


def test_reader_sees_the_writers_commits(path, default_encoder, qvec):
    with (
        Index.open(path, model=default_encoder, readonly=True) as reader,
        Index.open(path, model=default_encoder) as writer,
    ):
        assert reader.search_vectors(qvec, k=1)[0].id == "paris"
        writer.add([{"id": "lyon", "text": "Lyon is a city in France, but not the capital."}])
        writer.delete(["paris"])
        assert len(reader) == len(DOCS)
        hits = reader.search_vectors(qvec, k=len(DOCS) + 1)
        assert "paris" not in {h.id for h in hits} and hits[0].id == "lyon"
        assert reader.get("lyon") is not None


def test_two_writers_in_one_process_exclude_each_other(path, default_encoder):
    with (
        Index.open(path, model=default_encoder) as first,
        Index.open(path, model=default_encoder) as second,
    ):
        with first._writing(), pytest.raises(IndexLockedError):
            second.delete(["cat"])
        assert second.delete(["cat"]) == 1


def test_readonly_index_on_a_fresh_copy_reads_vectors(path, default_encoder, qvec):
    with Index.open(path, model=default_encoder, readonly=True) as idx:
        hits = idx.search_vectors(qvec, k=3)
    assert hits[0].id == "paris" and np.isfinite([h.score for h in hits]).all()
