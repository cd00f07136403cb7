"""Full checksum verification of an index's live files (search and open only check headers)."""

from __future__ import annotations

from pathlib import Path

from colmax.errors import IndexCorruptError
from colmax.index.bundle import Bundle
from colmax.index.checks import preview
from colmax.index.docstore import DocStore
from colmax.index.parts import codec_path
from colmax.index.snapshot import load_snapshot


def verify_files(root: Path, store: DocStore) -> int:
    """Re-read every live part and the codec and check their checksums; returns how many files.

    Raises IndexCorruptError naming the damaged files.
    """
    snap = load_snapshot(root, store)
    try:
        bad = [f"{p.path.name} ({', '.join(n)})" for p in snap.parts if (n := p.bundle.verify())]
        if snap.codec_id is not None:
            codec_file = Bundle(codec_path(root, snap.codec_id))
            try:
                if names := codec_file.verify():
                    bad.append(f"{codec_file.path.name} ({', '.join(names)})")
            finally:
                codec_file.close()
    finally:
        snap.close()
    if bad:
        raise IndexCorruptError(
            f"{len(bad)} file(s) in {root} fail their checksums: {preview(bad)}; "
            "restore the index folder from a backup, or rebuild the index"
        )
    return len(snap.parts) + (snap.codec_id is not None)
