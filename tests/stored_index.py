"""The stored index the storage tests share: forty documents of random unit vectors (so nothing
is encoded), built once per test module as a compressed index (``built``: a codec and three
parts) and as a raw one (``built_raw``), and handed to each test as a fresh copy (``path``,
``any_path``); plus helpers that read which files the committed state names. Registered as a
pytest plugin in conftest.py."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from bundled import DEFAULT_DIM

from colmax import Index
from colmax.index.searcher import SearchParams

DIM = DEFAULT_DIM  # the bundled model's
EXACT = SearchParams(nprobe=4096, rescore=True)  # every list probed, then exact MaxSim
TRAIN_MIN_TOKENS = 200  # small enough for 40 documents to get centroids


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
    folder = tmp_path_factory.mktemp("built") / "idx"
    path = build(folder, default_encoder, train_min_tokens=TRAIN_MIN_TOKENS)
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


def own_hits(idx: Index) -> dict[str, str]:
    """Each document's top hit when searched with its own vectors."""
    ids = list(VECS)
    found = idx.search_vectors([VECS[i] for i in ids], k=1, params=EXACT, with_text=False)
    return {i: hits[0].id for i, hits in zip(ids, found)}
