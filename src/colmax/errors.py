"""colmax's exceptions. Every message says what went wrong and what to do about it."""

from __future__ import annotations


class ColmaxError(Exception):
    """Base class of every error colmax raises on purpose."""


class CheckpointFormatError(ColmaxError):
    """A model folder is missing a file or tensor, or holds one of the wrong shape."""


class ModelNotFoundError(ColmaxError):
    """A model name or path that colmax cannot resolve."""


class DimensionMismatchError(ColmaxError):
    """Vectors, a model and an index disagree on the vector dimension."""


class InputError(ColmaxError):
    """Bad user input: empty text, bad JSON, missing or duplicate ids, unreadable files."""


class IndexNotFoundError(ColmaxError):
    """There is no colmax index at the given path."""


class IndexCorruptError(ColmaxError):
    """An index file is missing, truncated or fails its checksum."""


class IndexLockedError(ColmaxError):
    """Another process holds the index's writer lock."""


class ModelMismatchError(ColmaxError):
    """An index was built with another model than the one given."""


class UnknownIdError(ColmaxError, KeyError):
    """A document id that is not in the index."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
