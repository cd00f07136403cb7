"""What a reader searches: the live parts and codec as of one SQLite commit, memory-mapped.

A writer never changes a file a snapshot holds: it writes new files and swaps the parts table.
It may delete replaced files after its commit; an open map keeps a deleted file readable, and a
reader that loses the race (a file vanishes between reading the table and opening it) simply
reads the table again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colmax.errors import IndexCorruptError
from colmax.index.codec import ResidualCodec
from colmax.index.docstore import DocStore, PartRow
from colmax.index.parts import Part, codec_path, part_path

_RETRIES = 5


@dataclass
class Snapshot:
    codec: ResidualCodec | None
    codec_id: int | None
    parts: list[Part]
    rows: list[PartRow]
    dead: list[np.ndarray]  # per part: [n_docs] bool, tombstoned documents
    tokens: int = field(default=0)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def load_snapshot(root: Path, store: DocStore) -> Snapshot:
    """The current state; retried if a writer swaps files while it is being read."""
    for attempt in range(_RETRIES):
        rows, codec_id = store.parts()
        try:
            return _open(root, rows, codec_id, store.deleted_ids())
        except FileNotFoundError as exc:
            if rows == store.parts()[0] or attempt == _RETRIES - 1:
                raise IndexCorruptError(
                    f"{exc.filename} is missing but the index lists it; restore the index "
                    "folder from a backup, or rebuild the index"
                ) from exc
    raise AssertionError("unreachable")


def _open(root: Path, rows: list[PartRow], codec_id: int | None, deleted: np.ndarray) -> Snapshot:
    codec = ResidualCodec.load(codec_path(root, codec_id)) if codec_id is not None else None
    parts: list[Part] = []
    try:
        for row in rows:
            part = Part(part_path(root, row.part_id), row.part_id)
            parts.append(part)
            if part.n_docs != row.n_docs or part.n_tokens != row.n_tokens:
                raise IndexCorruptError(
                    f"{part.path} holds {part.n_docs} documents / {part.n_tokens} tokens but the "
                    f"index lists {row.n_docs} / {row.n_tokens}; restore the index folder from a "
                    "backup, or rebuild the index"
                )
            if part.kind == "compressed" and row.codec_id != codec_id:
                raise IndexCorruptError(
                    f"{part.path} was encoded with codec {row.codec_id}, but the index's codec "
                    f"is {codec_id}; restore the index folder from a backup, or rebuild the index"
                )
    except BaseException:
        for part in parts:
            part.close()
        raise
    dead = [np.isin(p.doc_ids, deleted) for p in parts]
    tokens = sum(r.n_tokens for r in rows)
    return Snapshot(codec, codec_id, parts, rows, dead, tokens)
