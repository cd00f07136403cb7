"""Housekeeping writes: merging parts, compaction, re-training the codec.

Each runs under the writer lock (the caller holds it), writes replacement files, swaps them in
with one commit, then deletes what it replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from colmax.index.docstore import Commit, DocStore
from colmax.index.parts import codec_path, part_path
from colmax.index.snapshot import Snapshot
from colmax.index.writer import (
    BuildSettings,
    PartWriter,
    rewrite,
    small_parts,
    train_from_snapshot,
)

CommitFn = Callable[[Commit, dict[str, int]], None]


class Maintainer:
    def __init__(
        self, root: Path, store: DocStore, settings: BuildSettings, commit: CommitFn
    ) -> None:
        self.root, self.store, self.settings, self.commit = root, store, settings, commit

    def after_add(self, snap: Snapshot) -> None:
        """Re-train when the index outgrew its codec, else merge when small parts pile up."""
        s = self.settings
        grown = snap.codec is not None and snap.tokens >= s.regrow * snap.codec.trained_tokens
        if grown and s.auto_optimize:
            self.optimize(snap)
            return
        small = small_parts(snap)
        if len(small) > s.max_parts:
            self.rewrite(snap, small)

    def optimize(self, snap: Snapshot) -> None:
        """New centroids and buckets from the live documents; every part re-encoded."""
        if not any((~dead).any() for dead in snap.dead):
            self.rewrite(snap, list(range(len(snap.parts))))  # nothing live: just compact
            return
        codec = train_from_snapshot(snap, self.settings)
        writer = PartWriter(self.root, self.store)
        try:
            codec_id = writer.codec(codec)
            everything = list(range(len(snap.parts)))
            change = rewrite(snap, everything, writer, self.settings, (codec, codec_id))
            self.commit(change, writer.counters())
        except BaseException:
            writer.abandon()
            raise
        self._drop_files(snap, change)

    def rewrite(self, snap: Snapshot, indices: list[int]) -> int:
        """Merge parts ``indices`` without their tombstones; returns documents dropped."""
        writer = PartWriter(self.root, self.store)
        try:
            change = rewrite(snap, indices, writer, self.settings)
            self.commit(change, writer.counters())
        except BaseException:
            writer.abandon()
            raise
        self._drop_files(snap, change)
        return len(change.purge)

    def _drop_files(self, snap: Snapshot, change: Commit) -> None:
        """Delete files the commit replaced (best effort: the next writer retries)."""
        paths = [part_path(self.root, p) for p in change.drop_parts]
        if change.codec_id is not None and snap.codec_id is not None:
            paths.append(codec_path(self.root, snap.codec_id))
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
