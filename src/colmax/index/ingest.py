"""The add path: new documents' vectors, in chunks, to new part files.

Before the index has centroids, vectors are held raw. The codec is trained once the raw tokens
(already stored plus this add's) reach ``train_min_tokens`` and either fill the training sample
that the expected final size calls for (the index's tokens plus this add's documents at the
tokens per document seen so far) or the add ends; the number of centroids is sized for that
expected size, and every raw vector is then compressed. After that, each chunk of
``chunk_tokens`` tokens is compressed with the existing centroids as it arrives, so memory is
bounded by the training sample plus a chunk.
"""

from __future__ import annotations

import numpy as np

from colmax.index.codec import ResidualCodec, train_sample_size
from colmax.index.docstore import Commit
from colmax.index.kmeans import num_centroids
from colmax.index.parts import MAX_PART_DOCS, DocBatch
from colmax.index.snapshot import Snapshot
from colmax.index.writer import BuildSettings, PartWriter, Repacker, concat, rewrite


class Ingest:
    def __init__(
        self, snap: Snapshot, writer: PartWriter, settings: BuildSettings, expected_docs: int
    ) -> None:
        self.snap, self.writer, self.settings = snap, writer, settings
        self.expected_docs = expected_docs
        self.codec, self.codec_id = snap.codec, snap.codec_id
        self.buffer: list[DocBatch] = []
        self.raw: list[DocBatch] = []  # this add's vectors, while there is no codec
        self.docs_seen = self.tokens_seen = 0
        self.swap = Commit()  # raw parts replaced when the codec gets trained
        self.out: Repacker | None = None if self.codec is None else self._repacker()

    def _repacker(self) -> Repacker:
        return Repacker(self.writer, self.codec, self.codec_id)

    def push(self, doc_ids: list[int], vectors: list[np.ndarray]) -> None:
        lens = np.array([len(v) for v in vectors], dtype=np.int32)
        stacked = np.concatenate([np.asarray(v, dtype=np.float16) for v in vectors])
        self.buffer.append(DocBatch(np.array(doc_ids, dtype=np.int64), lens, vectors=stacked))
        self.docs_seen += len(doc_ids)
        self.tokens_seen += int(lens.sum())
        pending_tokens = sum(b.n_tokens for b in self.buffer)
        pending_docs = sum(len(b.doc_ids) for b in self.buffer)
        if pending_tokens >= self.settings.chunk_tokens or pending_docs >= MAX_PART_DOCS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        batch = concat(self.buffer)
        self.buffer = []
        if self.codec is None:
            self.raw.append(batch)
            if self._ready_to_train(final=False):
                self._train()
            return
        self._compress(batch)

    def _compress(self, batch: DocBatch) -> None:
        assert self.codec is not None and self.out is not None and batch.vectors is not None
        codes, packed = self.codec.encode(batch.vectors)
        self.out.add(DocBatch(batch.doc_ids, batch.doc_lens, codes=codes, packed=packed))

    def _raw_indices(self) -> list[int]:
        return [i for i, p in enumerate(self.snap.parts) if p.kind == "raw"]

    def _raw_tokens(self) -> int:
        stored = sum(
            int(self.snap.parts[i].doc_lens[~self.snap.dead[i]].sum()) for i in self._raw_indices()
        )
        return stored + sum(b.n_tokens for b in self.raw)

    def _expected_tokens(self) -> int:
        per_doc = self.tokens_seen / max(1, self.docs_seen)
        return int(self.snap.tokens + per_doc * max(self.expected_docs, self.docs_seen))

    def _ready_to_train(self, final: bool) -> bool:
        raw = self._raw_tokens()
        if raw < self.settings.train_min_tokens:
            return False
        k = num_centroids(max(1, self._expected_tokens()), self.settings.centroid_factor)
        return final or raw >= train_sample_size(k)

    def _train(self) -> None:
        raw_parts = self._raw_indices()
        stored_tokens = sum(int(self.snap.parts[i].doc_lens[~self.snap.dead[i]].sum())
                            for i in raw_parts)  # fmt: skip
        total = stored_tokens + sum(b.n_tokens for b in self.raw)
        dim = self.raw[0].vectors.shape[1]  # type: ignore[union-attr]
        sample = np.empty((total, dim), dtype=np.float16)
        filled = 0
        for i in raw_parts:
            vectors = self.snap.parts[i].batch(None, ~self.snap.dead[i]).vectors
            sample[filled : filled + len(vectors)] = vectors
            filled += len(vectors)
        # this add's raw batches move into the sample one at a time (each becomes a view), so
        # their vectors are never held twice
        for batch in self.raw:
            assert batch.vectors is not None
            sample[filled : filled + batch.n_tokens] = batch.vectors
            batch.vectors = sample[filled : filled + batch.n_tokens]
            filled += batch.n_tokens
        s = self.settings
        self.codec = ResidualCodec.train(
            sample, s.nbits, centroid_factor=s.centroid_factor,
            total_tokens=max(self._expected_tokens(), len(sample)),
        )  # fmt: skip
        del sample
        self.codec_id = self.writer.codec(self.codec)
        self.swap = rewrite(
            self.snap, self._raw_indices(), self.writer, s, (self.codec, self.codec_id)
        )
        self.out = self._repacker()
        for batch in self.raw:
            self._compress(batch)
        self.raw = []

    def finish(self) -> Commit:
        """Write what is pending; the commit that makes it all visible (rows not included)."""
        self._flush()
        if self.codec is None and self.raw and self._ready_to_train(final=True):
            self._train()
        if self.raw:  # still too small for centroids: keep raw parts
            out = Repacker(self.writer, None, None)
            for batch in self.raw:
                out.add(batch)
            out.flush()
        if self.out is not None:
            self.out.flush()
        return Commit(
            add_parts=list(self.writer.rows),
            drop_parts=self.swap.drop_parts,
            purge=self.swap.purge,
            codec_id=self.codec_id if self.codec_id != self.snap.codec_id else None,
        )
