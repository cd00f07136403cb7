"""Crash safety (``format.py``): a write's files are fsynced before the one SQLite commit that
acknowledges it, so a writer killed at any moment loses at most the write in flight.

Real crashes, of real processes: this file is also a script, ``python FILE zygote``, a process
that imports colmax once and then forks a fresh writer process per command (see the bottom),
so a crash costs milliseconds, not seconds of imports. Documents carry random unit vectors
(``vectors=``), so nothing is encoded; ``SETTINGS`` makes a tiny index train its codec, merge
parts and re-train early.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from bundled import DEFAULT_DIM

from colmax import Index
from colmax.index.searcher import SearchParams

DIM = DEFAULT_DIM  # the bundled model's
SETTINGS = {"train_min_tokens": 200, "max_parts": 3, "regrow": 1.5}
EXACT = SearchParams(nprobe=4096, candidates=8, rescore=True)  # all lists, then exact MaxSim
KILLED = -signal.SIGKILL  # the exit code of a process ended by SIGKILL


def batch(b: int) -> tuple[list[dict], list[np.ndarray]]:
    """Batch ``b``: 3-7 documents of 4-12 random unit token vectors, the same every time."""
    rng = np.random.default_rng(1000 + b)
    docs, vecs = [], []
    for i in range(3 + b % 5):
        docs.append({"id": f"b{b:03d}-{i}", "text": f"batch {b}, document {i}"})
        v = rng.standard_normal((int(rng.integers(4, 13)), DIM)).astype(np.float32)
        vecs.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return docs, vecs


def add_batches(idx: Index, batches) -> None:
    docs, vecs = [], []
    for b in batches:
        d, v = batch(b)
        docs += d
        vecs += v
    idx.add(docs, vectors=vecs)


def ids_of(batches) -> list[str]:
    return [d["id"] for b in batches for d in batch(b)[0]]


def files_on_disk(path: Path) -> set[str]:
    return {p.name for p in (path / "parts").iterdir()}


def named_files(path: Path) -> set[str]:
    """The part and codec files the committed state names (read from docs.sqlite)."""
    conn = sqlite3.connect(f"file:{path / 'docs.sqlite'}?mode=ro", uri=True)
    try:
        parts = {f"{r[0]:06d}.part" for r in conn.execute("SELECT part_id FROM parts")}
        codec = conn.execute("SELECT value FROM state WHERE key = 'codec'").fetchone()
    finally:
        conn.close()
    return parts | ({f"{codec[0]:06d}.codec"} if codec else set())


def check_contents(idx: Index, batches) -> None:
    """The live documents are exactly those of ``batches``, each found by its own vectors."""
    docs = [d for b in batches for d in batch(b)[0]]
    vecs = [v for b in batches for v in batch(b)[1]]
    assert len(idx) == len(docs) == idx.info()["documents"]
    for doc in docs:
        got = idx.get(doc["id"])
        assert got is not None and got.text == doc["text"], doc["id"]
    if not docs:
        return
    found = idx.search_vectors(vecs, k=3, params=EXACT, with_text=False, threads=2)
    for doc, hits in zip(docs, found):
        scores = {h.id: h.score for h in hits}
        assert hits[0].id == doc["id"] or np.isclose(scores.get(doc["id"], -1), hits[0].score), (
            doc["id"],
            hits,
        )


class Zygote:
    """The parent's end of ``python FILE zygote``: start a writer process, read its lines."""

    def __init__(self) -> None:
        self.err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.strip()))
        self.lines.put((time.monotonic(), "eof"))

    def start(self, *command: str) -> int:
        """Fork a process running ``command`` (a mode at the bottom); returns its pid."""
        self.proc.stdin.write(" ".join(command) + "\n")
        self.proc.stdin.flush()
        return int(self.expect("started")[1].split()[1])

    def next(self, timeout: float = 120.0) -> tuple[float, str]:
        """The next line a writer process (or, ``exit CODE``, the zygote) printed."""
        return self.lines.get(timeout=timeout)

    def expect(self, word: str) -> tuple[float, str]:
        """The next line, which must start with ``word``."""
        when, line = self.next()
        assert line.split()[:1] == [word], f"expected {word!r}, got {line!r}\n{self.stderr()}"
        return when, line

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def close(self) -> None:
        self.proc.stdin.close()  # the zygote ends once its writer process (if any) has
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


# --------------------------------------------------------------------------- a crash mid-write


@pytest.mark.parametrize(
    ("before", "crash"),
    [
        (range(1), "add 1 9"),  # a raw index; the lost add trained a codec, rewrote the raw part
        (range(10), "add 10 12"),  # a compressed index
        (range(10), "optimize"),  # a new codec and re-encoded parts, never committed
        (range(10), "compact"),
    ],
    ids=["add-that-trains", "add", "optimize", "compact"],
)
def test_a_write_killed_between_its_files_and_its_commit(
    tmp_path, default_encoder, zygote, before, crash
):
    """The child fsyncs a write's new files, then dies (``os._exit``) before the SQLite commit:
    the index opens as it was, and the next writer removes the dead write's files."""
    path = tmp_path / "idx"
    with Index.create(path, default_encoder, **SETTINGS) as idx:
        add_batches(idx, before)
        if crash == "compact":
            idx.delete(ids_of([3]))
        hits_before = idx.search_vectors(batch(5)[1][0], k=10, params=EXACT)
        info_before = idx.info()
    kept = [b for b in before if crash != "compact" or b != 3]
    files_before = files_on_disk(path)
    assert files_before == named_files(path)

    zygote.start("crash", str(path), *crash.split())
    assert zygote.expect("exit")[1] == "exit 17", zygote.stderr()
    lost = files_on_disk(path) - files_before  # the dead write's files, fsynced but unnamed
    assert any(name.endswith(".part") for name in lost), lost
    if crash in ("add 1 9", "optimize"):
        assert any(name.endswith(".codec") for name in lost), lost
    assert named_files(path) == files_before

    new = list(range(*map(int, crash.split()[1:]))) if "add" in crash else []
    with Index.open(path, **SETTINGS) as idx:
        check_contents(idx, kept)
        assert not any(idx.contains(i) for i in ids_of(new))
        assert idx.search_vectors(batch(5)[1][0], k=10, params=EXACT) == hits_before
        info = idx.info()
        for key in ("documents", "deleted", "parts", "raw_parts", "centroids", "index_bytes"):
            assert info[key] == info_before[key], key
        assert idx.verify() == len(files_before)
        assert files_on_disk(path) == files_before | lost  # opening and reading delete nothing

        add_batches(idx, [30])  # the next write removes the dead write's files
        assert files_on_disk(path) == named_files(path)  # (a lost file's number may be reused)
        if new:
            add_batches(idx, new)  # the lost add's ids are free
        check_contents(idx, [*kept, 30, *new])
        assert idx.verify() == len(named_files(path))


# --------------------------------------------------------------------------- SIGKILL, anywhere

ROUNDS = 12
PER_ROUND = 6  # batches a writer is given; it is killed at a random time before it finishes


def test_sigkill_at_random_times_never_loses_an_acknowledged_document(
    tmp_path, default_encoder, zygote
):
    """A writer process adds small batches, printing each batch number as soon as add() returns
    (the acknowledgement), and is SIGKILLed at a random moment, over and over on one index.
    The small SETTINGS put codec training, merges and re-training (optimize) in the runs. After
    every kill: the index opens and verifies, holds every acknowledged document (by get and by
    search), and nothing else but, all or nothing, the batch that was in flight."""
    path = tmp_path / "idx"
    Index.create(path, default_encoder, **SETTINGS).close()
    rng = random.Random(int(os.environ.get("COLMAX_KILL_SEED", "20240611")))  # to vary/replay
    present: list[int] = []  # batches that must be in the index
    next_batch = 0
    durations = [0.1]  # seconds per add, measured as the rounds go
    trained_on: set[int] = set()
    killed_in_flight = 0
    for _ in range(ROUNDS):
        pid = zygote.start("ingest", str(path), str(next_batch), str(PER_ROUND))
        start = zygote.expect("ready")[0]
        kill_at = start + rng.uniform(0.0, PER_ROUND * np.mean(durations[-12:]))
        acked: list[int] = []
        last_ack, code = start, None
        while code is None:
            try:
                when, line = zygote.next(timeout=min(120.0, max(0.0, kill_at - time.monotonic())))
            except queue.Empty:
                os.kill(pid, signal.SIGKILL)
                durations.append(2 * (kill_at - last_ack))  # that add takes longer than this
                kill_at = float("inf")
                continue
            word, *rest = line.split()
            if word == "acked":
                acked.append(int(rest[0]))
                durations.append(when - last_ack)
                last_ack = when
            elif word == "exit":
                code = int(rest[0])
            else:
                assert word == "done", f"{line}\n{zygote.stderr()}"
        assert code in (0, KILLED), zygote.stderr()
        assert acked == list(range(next_batch, next_batch + len(acked)))
        present += acked
        in_flight = next_batch + len(acked) if len(acked) < PER_ROUND else None

        with Index.open(path, **SETTINGS) as idx:
            if in_flight is not None:
                killed_in_flight += 1
                flight = [idx.contains(i) for i in ids_of([in_flight])]
                assert all(flight) or not any(flight), "an add was half committed"
                if all(flight):  # committed, killed before it printed: acknowledged, not lost
                    present.append(in_flight)
            check_contents(idx, present)
            assert idx.verify() == len(named_files(path))
            trained_on.add(idx.info()["centroids_trained_on_tokens"])
        next_batch += len(acked) + (in_flight is not None)

    assert killed_in_flight >= ROUNDS // 2  # most kills landed inside an add
    assert len(trained_on - {0}) >= 2  # the codec was trained, then re-trained
    with Index.open(path, **SETTINGS) as idx:
        add_batches(idx, [next_batch])  # a clean write: merges, and removes the dead writes' files
        assert files_on_disk(path) == named_files(path)
        check_contents(idx, [*present, next_batch])
        info = idx.info()
        assert info["raw_parts"] == 0 and info["centroids"] > 0
        assert info["parts"] <= SETTINGS["max_parts"]
        assert idx.verify() == len(named_files(path))


# --------------------------------------------------------------------------- the writer processes


def say(line: str) -> None:
    """One line to the parent in one write(2), so a kill never leaves half of one."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def _crash(path: str, mode: str, *args: str) -> None:
    """Write with the commit replaced by ``os._exit(17)``: files written, nothing committed."""
    from colmax.index.docstore import DocStore

    def die(*_args, **_kwargs):
        os._exit(17)

    idx = Index.open(path, **SETTINGS)
    Index._on_files_written = die  # add's hook between the files' fsync and the commit
    DocStore.commit = die  # compact's and optimize's commit
    if mode == "add":
        add_batches(idx, range(int(args[0]), int(args[1])))
    else:
        getattr(idx, mode)()
    raise AssertionError(f"{mode} finished without committing")


def _ingest(path: str, first: str, count: str) -> None:
    """Add batches one by one, acknowledging each on stdout once add() returned."""
    idx = Index.open(path, **SETTINGS)
    say("ready")
    for b in range(int(first), int(first) + int(count)):
        add_batches(idx, [b])
        say(f"acked {b}")
    idx.close()
    say("done")


def _warm_up() -> None:
    """Load the compiled kernel that merges read parts with (numba: a second or so) here, once,
    not in every writer process. Only numpy runs: no torch thread pool exists before a fork."""
    from colmax.index.codec import ResidualCodec
    from colmax.index.parts import DocBatch, Part, write_compressed

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):  # only speed
        zeros = np.zeros(4, dtype=np.float32)
        codec = ResidualCodec(np.eye(2, DIM, dtype=np.float32), zeros[:3], zeros, 2, 1)
        one = np.ones(1, dtype=np.int64)
        batch = DocBatch(one, one.astype(np.int32), codes=one.astype(np.int32) - 1,
                         packed=np.zeros((1, codec.code_bytes), dtype=np.uint8))  # fmt: skip
        write_compressed(Path(tmp) / "000001.part", batch, codec, 1)
        part = Part(Path(tmp) / "000001.part", 1)
        part.batch(codec)
        part.close()


def _zygote() -> None:
    """Fork a writer process per line of stdin (``MODE ARGS...``), report its exit code.

    This process only imports (it starts no thread pools and opens no index), so each fork
    starts clean; the writer prints ``started PID`` and its own lines, then the zygote prints
    ``exit CODE`` (negative: the signal that ended it).
    """
    _warm_up()
    modes = {"crash": _crash, "ingest": _ingest}
    for line in sys.stdin:
        mode, *args = line.split()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                say(f"started {os.getpid()}")
                modes[mode](*args)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        say(f"exit {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    assert sys.argv[1:] == ["zygote"], sys.argv
    _zygote()
