"""The single-writer lock: held by add/delete (and create) only; readers never take it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import filelock

from colmax.errors import IndexLockedError
from colmax.index.format import LOCK_FILE


def writer_lock(root: Path) -> filelock.FileLock:
    """The lock object for an index folder (not thread-local: ``Index`` adds a thread mutex)."""
    return filelock.FileLock(root / LOCK_FILE, thread_local=False)


@contextlib.contextmanager
def locked(lock: filelock.FileLock, root: Path, timeout: float) -> Iterator[None]:
    """Hold the writer lock, or say who has it and what to do."""
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        waited = f"for {timeout:g} s " if timeout > 0 else ""
        raise IndexLockedError(
            f"another process is writing to {root} (it holds {root / LOCK_FILE}) and did "
            f"not finish {waited}; wait for it to finish and retry, or open the index with "
            "lock_timeout=SECONDS to wait for it"
        ) from None
    try:
        yield
    finally:
        lock.release()
