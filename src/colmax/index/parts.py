"""Part files: immutable batches of documents' token vectors, the unit of writing.

Every ``add`` writes one or more new parts (never modifies one); compaction and ``optimize``
write replacement parts. Which parts are live is recorded in ``docs.sqlite``, in the same
transaction that makes their documents visible, so an uncommitted part is just an orphan file
that the next writer removes.

Two kinds, both :mod:`bundle` files (``parts/NNNNNN.part``):

* ``compressed``: tokens grouped by centroid, for :func:`kernels.score_part`.
  ``doc_ids [n_docs] int64`` (internal ids, ascending), ``doc_lens [n_docs] int32``,
  ``offsets [K + 1] uint32`` (centroid ``c``'s tokens are ``offsets[c]:offsets[c + 1]``),
  ``residuals [n_tokens, dim * nbits / 8] uint8``, ``local_doc [n_tokens] uint16`` (index into
  ``doc_ids``; so a part holds at most 65,535 documents). Within a list, tokens are in
  document order. Bytes per token: ``dim * nbits / 8 + 2`` plus the per-part offsets.
* ``raw``: float16 vectors in document order (``doc_ids``, ``doc_lens``, ``vectors``), searched
  exactly. Only an index too small to train centroids on holds raw parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colmax.index.bundle import Bundle, write_bundle
from colmax.index.codec import ResidualCodec
from colmax.index.format import PARTS_DIR

MAX_PART_DOCS = 65535
PART_SUFFIX = ".part"
CODEC_SUFFIX = ".codec"


def part_path(root: Path, part_id: int) -> Path:
    return root / PARTS_DIR / f"{part_id:06d}{PART_SUFFIX}"


def codec_path(root: Path, codec_id: int) -> Path:
    return root / PARTS_DIR / f"{codec_id:06d}{CODEC_SUFFIX}"


def file_number(path: Path) -> int | None:
    """The number of a ``NNNNNN.part`` / ``NNNNNN.codec`` file, else None."""
    stem = path.name.split(".")[0]
    return int(stem) if stem.isdigit() and path.suffix in (PART_SUFFIX, CODEC_SUFFIX) else None


@dataclass
class DocBatch:
    """Documents' token vectors or codes, in document order, ready to become a part."""

    doc_ids: np.ndarray  # [n_docs] int64, ascending
    doc_lens: np.ndarray  # [n_docs] int32
    vectors: np.ndarray | None = None  # [n_tokens, dim] float16 (raw)
    codes: np.ndarray | None = None  # [n_tokens] int32 (compressed)
    packed: np.ndarray | None = None  # [n_tokens, code_bytes] uint8 (compressed)

    @property
    def n_tokens(self) -> int:
        return int(self.doc_lens.sum())


def write_compressed(path: Path, batch: DocBatch, codec: ResidualCodec, codec_id: int) -> int:
    """Write a compressed part from document-ordered codes; returns its size in bytes."""
    assert batch.codes is not None and batch.packed is not None
    n_docs = len(batch.doc_ids)
    if n_docs > MAX_PART_DOCS:
        raise ValueError(f"a part holds at most {MAX_PART_DOCS} documents, not {n_docs}")
    local = np.repeat(np.arange(n_docs, dtype=np.uint16), batch.doc_lens)
    order = np.argsort(batch.codes, kind="stable")  # stable: document order within a list
    counts = np.bincount(batch.codes, minlength=codec.num_centroids)
    offsets = np.zeros(codec.num_centroids + 1, dtype=np.uint32)
    np.cumsum(counts, out=offsets[1:])
    arrays = {
        "doc_ids": batch.doc_ids.astype(np.int64),
        "doc_lens": batch.doc_lens.astype(np.int32),
        "offsets": offsets,
        "residuals": batch.packed[order],
        "local_doc": local[order],
    }
    meta = {"kind": "compressed", "codec": codec_id, "nbits": codec.nbits, "dim": codec.dim}
    return write_bundle(path, arrays, meta)


def write_raw(path: Path, batch: DocBatch) -> int:
    assert batch.vectors is not None
    arrays = {
        "doc_ids": batch.doc_ids.astype(np.int64),
        "doc_lens": batch.doc_lens.astype(np.int32),
        "vectors": batch.vectors.astype(np.float16),
    }
    return write_bundle(path, arrays, {"kind": "raw", "dim": int(batch.vectors.shape[1])})


class Part:
    """One part file, memory-mapped."""

    def __init__(self, path: Path, part_id: int) -> None:
        self.id = part_id
        self.path = path
        self.bundle = Bundle(path)
        self.kind: str = self.bundle.meta["kind"]
        self.doc_ids: np.ndarray = self.bundle["doc_ids"]
        self.doc_lens: np.ndarray = self.bundle["doc_lens"]

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    @property
    def dim(self) -> int:
        return int(self.bundle.meta["dim"])

    @property
    def n_tokens(self) -> int:
        return int(self.doc_lens.sum())

    def local_of(self, internal_ids: np.ndarray) -> np.ndarray:
        """Local numbers of those ``internal_ids`` held here (others dropped)."""
        pos = np.searchsorted(self.doc_ids, internal_ids)
        pos = np.minimum(pos, max(self.n_docs - 1, 0))
        return pos[self.doc_ids[pos] == internal_ids] if self.n_docs else pos[:0]

    def batch(self, codec: ResidualCodec | None, keep: np.ndarray | None = None) -> DocBatch:
        """This part's documents (those where ``keep`` is True) back in document order: codes
        for a compressed part, vectors for a raw one. Used by compaction and ``optimize``."""
        from colmax.index.kernels import tokens_of_docs

        keep = np.ones(self.n_docs, dtype=bool) if keep is None else keep
        doc_ids, doc_lens = self.doc_ids[keep], self.doc_lens[keep]
        if self.kind == "raw":
            starts = np.concatenate([[0], np.cumsum(self.doc_lens)])
            token_keep = np.repeat(keep, self.doc_lens)
            assert len(token_keep) == starts[-1]
            return DocBatch(
                doc_ids, doc_lens, vectors=np.asarray(self.bundle["vectors"])[token_keep]
            )
        b = self.bundle
        positions, codes = tokens_of_docs(b["offsets"], b["local_doc"], keep, self.doc_lens)
        packed = np.asarray(self.bundle["residuals"])[positions]
        return DocBatch(doc_ids, doc_lens, codes=codes, packed=packed)

    def release(self) -> None:
        """Drop the pages this process read from the part's file (see :meth:`Bundle.release`)."""
        self.bundle.release()

    def close(self) -> None:
        self.bundle.close()
