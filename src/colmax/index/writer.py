"""Writing parts: ingestion of new documents, merging parts, and re-training the codec.

Each operation writes new files only (``PartWriter``), then returns a :class:`Commit` that the
index applies in one SQLite transaction; files of an abandoned operation are deleted, and any a
crash leaves behind are removed by the next writer (:func:`remove_orphans`). Memory stays
bounded by ``chunk_tokens`` (vectors being encoded) plus one part being written, whatever the
corpus size.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colmax.index.codec import ENCODE_BLOCK, ResidualCodec
from colmax.index.docstore import Commit, DocStore, PartRow
from colmax.index.format import PARTS_DIR
from colmax.index.parts import (
    MAX_PART_DOCS,
    DocBatch,
    Part,
    codec_path,
    file_number,
    part_path,
    write_compressed,
    write_raw,
)
from colmax.index.snapshot import Snapshot

MAX_PART_TOKENS = 2**23  # ~300 MB of codes in memory while one part is written


@dataclass(frozen=True)
class BuildSettings:
    """How an index turns vectors into parts (``Index.create`` options)."""

    nbits: int = 2
    chunk_tokens: int = 2**17  # vectors encoded per step (32 MB at dim 128 in float16)
    train_min_tokens: int = 2**16  # below this the index keeps raw vectors, searched exactly
    centroid_factor: float = 8.0  # centroids = 2**floor(log2(factor * sqrt(tokens)))
    max_parts: int = 8  # more small parts than this after an add: they are merged
    regrow: float = 4.0  # re-train the codec once the index has grown this much since
    auto_optimize: bool = True

    def stored(self) -> dict[str, object]:
        """What the manifest records (``nbits`` has its own field)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "nbits"}


def remove_orphans(root: Path, rows: list[PartRow], codec_id: int | None) -> int:
    """Delete files in ``parts/`` that the committed state does not name; returns how many."""
    keep = {r.part_id for r in rows} | ({codec_id} if codec_id is not None else set())
    removed = 0
    for path in (root / PARTS_DIR).iterdir():
        number = file_number(path)
        if (number is None and path.name.endswith(".tmp")) or (
            number is not None and number not in keep
        ):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def concat(batches: list[DocBatch]) -> DocBatch:
    """One batch of all ``batches``' documents, sorted by internal id (without reordering, and
    without any copy for a single batch, when they already are: the add path's always are)."""
    doc_ids = np.concatenate([b.doc_ids for b in batches])
    doc_lens = np.concatenate([b.doc_lens for b in batches]).astype(np.int32)
    if np.all(doc_ids[1:] > doc_ids[:-1]):
        if len(batches) == 1:
            return dataclasses.replace(batches[0], doc_ids=doc_ids, doc_lens=doc_lens)
        token_order = None
    else:
        order = np.argsort(doc_ids, kind="stable")
        starts = np.cumsum(doc_lens) - doc_lens
        doc_ids, doc_lens = doc_ids[order], doc_lens[order]
        new_starts = np.cumsum(doc_lens) - doc_lens
        token_order = np.repeat(starts[order] - new_starts, doc_lens) + np.arange(doc_lens.sum())

    def join(name: str) -> np.ndarray | None:
        arrays = [getattr(b, name) for b in batches]
        if arrays[0] is None:
            return None
        joined = np.concatenate(arrays)
        return joined if token_order is None else joined[token_order]

    return DocBatch(doc_ids, doc_lens, join("vectors"), join("codes"), join("packed"))


class PartWriter:
    """New files of one write operation."""

    def __init__(self, root: Path, store: DocStore) -> None:
        self.root = root
        on_disk = [file_number(p) or 0 for p in (root / PARTS_DIR).iterdir()]
        self.next_file = max([store.counter("next_file"), *(n + 1 for n in on_disk)])
        self.files: list[Path] = []
        self.rows: list[PartRow] = []

    def _number(self) -> int:
        self.next_file += 1
        return self.next_file - 1

    def codec(self, codec: ResidualCodec) -> int:
        number = self._number()
        self.files.append(codec_path(self.root, number))
        codec.save(self.files[-1])
        return number

    def part(self, batch: DocBatch, codec: ResidualCodec | None, codec_id: int | None) -> None:
        number = self._number()
        path = part_path(self.root, number)
        self.files.append(path)
        if codec is None:
            size, kind = write_raw(path, batch), "raw"
        else:
            size, kind = write_compressed(path, batch, codec, int(codec_id)), "compressed"
        self.rows.append(PartRow(number, kind, codec_id, len(batch.doc_ids), batch.n_tokens, size))

    def abandon(self) -> None:
        for path in self.files:
            with contextlib.suppress(OSError):
                path.unlink()
        self.files.clear()
        self.rows.clear()

    def counters(self) -> dict[str, int]:
        return {"next_file": self.next_file}


def _doc_chunks(part: Part, keep: np.ndarray, max_tokens: int) -> Iterator[np.ndarray]:
    """Masks over ``part``'s documents selecting runs of kept ones of ~``max_tokens`` tokens."""
    kept = np.flatnonzero(keep)
    if not len(kept):
        return
    window = np.cumsum(part.doc_lens[kept]) // max(1, max_tokens)
    for w in np.unique(window):
        mask = np.zeros(part.n_docs, dtype=bool)
        mask[kept[window == w]] = True
        yield mask


class Repacker:
    """Collects document batches and writes them as parts of at most MAX_PART_DOCS documents /
    MAX_PART_TOKENS tokens (compressed with ``codec`` when given, else raw)."""

    def __init__(self, writer: PartWriter, codec: ResidualCodec | None, codec_id: int | None):
        self.writer, self.codec, self.codec_id = writer, codec, codec_id
        self.pending: list[DocBatch] = []

    def add(self, batch: DocBatch) -> None:
        if not len(batch.doc_ids):
            return
        docs = sum(len(b.doc_ids) for b in self.pending)
        tokens = sum(b.n_tokens for b in self.pending)
        if docs + len(batch.doc_ids) > MAX_PART_DOCS or tokens + batch.n_tokens > MAX_PART_TOKENS:
            self.flush()
        self.pending.append(batch)

    def flush(self) -> None:
        if self.pending:
            self.writer.part(concat(self.pending), self.codec, self.codec_id)
            self.pending = []


def rewrite(
    snap: Snapshot,
    indices: list[int],
    writer: PartWriter,
    settings: BuildSettings,
    new_codec: tuple[ResidualCodec, int] | None = None,
) -> Commit:
    """Rewrite parts ``indices`` of ``snap`` without their tombstones (merging them), re-encoded
    with ``new_codec`` when given; returns the swap to commit."""
    codec, codec_id = new_codec or (snap.codec, snap.codec_id)
    out = Repacker(writer, codec, codec_id)
    purge: list[np.ndarray] = []
    for i in indices:
        part, dead = snap.parts[i], snap.dead[i]
        purge.append(part.doc_ids[dead])
        for mask in _doc_chunks(part, ~dead, settings.chunk_tokens):
            batch = part.batch(snap.codec, mask)
            if part.kind == "raw" or new_codec is not None:
                vectors = batch.vectors
                if vectors is None:  # compressed: decoded a block at a time while re-encoded
                    assert snap.codec is not None and codec is not None
                    vectors = snap.codec.decoded(batch.codes, batch.packed)
                if codec is not None:
                    batch.codes, batch.packed = codec.encode(vectors)
                    batch.vectors = None
                else:
                    batch.vectors = vectors.astype(np.float16)
            out.add(batch)
        part.release()
    out.flush()
    return Commit(
        add_parts=list(writer.rows),
        drop_parts=[snap.rows[i].part_id for i in indices],
        purge=np.concatenate(purge).tolist() if purge else [],
        codec_id=codec_id if new_codec is not None else None,
    )


def small_parts(snap: Snapshot) -> list[int]:
    """Parts below half the size limit, smallest first: the ones merging can still shrink
    (full parts stay as they are, so a large index is a handful of full parts plus a few
    small recent ones)."""
    small = [
        i
        for i, r in enumerate(snap.rows)
        if r.n_docs < MAX_PART_DOCS // 2 and r.n_tokens < MAX_PART_TOKENS // 2
    ]
    return sorted(small, key=lambda i: snap.rows[i].n_tokens)


def train_from_snapshot(snap: Snapshot, settings: BuildSettings, seed: int = 0) -> ResidualCodec:
    """A codec for the live documents of ``snap`` (decompressed, or raw where raw), trained on
    a random sample of documents of about what :meth:`ResidualCodec.train` samples. The sample
    is decoded a chunk at a time into one float16 array sized in advance, so memory is bounded
    by ``TRAIN_MAX_TOKENS`` plus a chunk whatever the index's size."""
    from colmax.index.codec import train_sample_size
    from colmax.index.kmeans import num_centroids

    live_tokens = sum(int(p.doc_lens[~d].sum()) for p, d in zip(snap.parts, snap.dead))
    k = num_centroids(max(live_tokens, 1), settings.centroid_factor)
    share = min(1.0, train_sample_size(k) / max(live_tokens, 1))
    rng = np.random.default_rng(seed)
    picked = [~d & (rng.random(p.n_docs) < share) for p, d in zip(snap.parts, snap.dead)]
    total = sum(int(part.doc_lens[keep].sum()) for part, keep in zip(snap.parts, picked))
    vectors = np.empty((total, snap.parts[0].dim), dtype=np.float16)
    filled = 0
    for part, keep in zip(snap.parts, picked):
        for mask in _doc_chunks(part, keep, settings.chunk_tokens):
            batch = part.batch(snap.codec, mask)
            source = batch.vectors
            if source is None:
                assert snap.codec is not None
                source = snap.codec.decoded(batch.codes, batch.packed)
            for lo in range(0, len(source), ENCODE_BLOCK):
                block = source[lo : lo + ENCODE_BLOCK]
                vectors[filled : filled + len(block)] = block
                filled += len(block)
        part.release()
    return ResidualCodec.train(
        vectors, settings.nbits, num_centroids_=min(k, len(vectors)),
        total_tokens=live_tokens, seed=seed,
    )  # fmt: skip
