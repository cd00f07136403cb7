"""The input side of run_peer.py: a vectors folder from bench/make_vectors.py, read back as
document and query vector arrays (float32 in memory, or the documents streamed from disk).

Runs inside each peer's own virtual environment: only numpy (imported lazily) and the standard
library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DiskDocs:
    """The document vectors as a sequence read from the ``.npy`` file one document at a time
    (float16, as stored), for engines that stream their input (``INPUT = "stream"``): nothing
    is held in memory or memory-mapped, so the build's RSS is the engine's own."""

    def __init__(self, path: Path, offsets: Any, dim: int) -> None:
        import numpy as np

        with open(path, "rb") as handle:
            np.lib.format.read_magic(handle)
            np.lib.format.read_array_header_1_0(handle)
            self._data_start = handle.tell()
        self._path, self._offsets, self._dim = path, offsets, dim
        self._row_bytes = 2 * dim

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> Any:
        import numpy as np

        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        with open(self._path, "rb") as handle:
            handle.seek(self._data_start + lo * self._row_bytes)
            raw = handle.read((hi - lo) * self._row_bytes)
        return np.frombuffer(raw, dtype=np.float16).reshape(hi - lo, self._dim)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))


def load_vectors(
    folder: Path,
    limit_docs: int,
    limit_queries: int,
    with_docs: bool = True,
    stream_docs: bool = False,
) -> dict[str, Any]:
    """The vectors folder; ``with_docs=False`` skips the document vectors (search phases), so
    that they do not count in a search process's memory; ``stream_docs=True`` gives them as a
    :class:`DiskDocs` instead of float32 arrays in memory."""
    import numpy as np

    meta = json.loads((folder / "meta.json").read_text())
    doc_lens = np.load(folder / "doc_lens.npy")
    doc_ids = json.loads((folder / "doc_ids.json").read_text())
    q_lens = np.load(folder / "query_lens.npy")
    q_ids = json.loads((folder / "query_ids.json").read_text())
    if limit_docs:
        doc_lens, doc_ids = doc_lens[:limit_docs], doc_ids[:limit_docs]
    if limit_queries:
        q_lens, q_ids = q_lens[:limit_queries], q_ids[:limit_queries]
    n_tok = int(doc_lens.sum())
    flat = np.load(folder / "doc_vectors.npy", mmap_mode="r")[:n_tok]
    dim = int(flat.shape[1])
    docs: Any = []
    if with_docs and stream_docs:
        docs = DiskDocs(folder / "doc_vectors.npy", np.concatenate([[0], np.cumsum(doc_lens)]), dim)
    elif with_docs:
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(doc_lens)])
        docs = [flat[offsets[i] : offsets[i + 1]] for i in range(len(doc_lens))]
    del flat
    qflat = np.load(folder / "query_vectors.npy")[: int(q_lens.sum())].astype(np.float32)
    qoff = np.concatenate([[0], np.cumsum(q_lens)])
    queries = [np.ascontiguousarray(qflat[qoff[i] : qoff[i + 1]]) for i in range(len(q_lens))]
    return {
        "meta": meta,
        "docs": docs,
        "doc_ids": doc_ids,
        "queries": queries,
        "query_ids": q_ids,
        "n_docs": len(doc_lens),
        "n_doc_tokens": n_tok,
        "dim": dim,
    }
