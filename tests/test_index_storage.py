"""The index on disk beyond damaged files (those are in test_index_damage.py): orphan files of
writes that never committed, a failed add, the writer lock, readers, releasing read pages.

The indexes come from ``stored_index.py``: random unit vectors (``vectors=``), so nothing here
encodes text; a small ``train_min_tokens`` makes a compressed index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from stored_index import (
    EXACT,
    N_DOCS,
    QUERY,
    TRAIN_MIN_TOKENS,
    VECS,
    add_docs,
    files_on_disk,
    live_files,
    make_docs,
    named_files,
    own_hits,
)

from colmax import Index
from colmax.errors import IndexLockedError


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


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
