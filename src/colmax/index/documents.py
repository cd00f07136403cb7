"""Documents as the caller sees them, and the checks ``Index.add`` runs before touching disk.

Validation looks at the whole input before anything is encoded or written, so a bad record
at position 90,000 fails in a second, not after an hour of encoding, and leaves the index
unchanged. Every message names the record's position (0-based) and its id when it has one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from colmax.errors import DimensionMismatchError, InputError

ALLOWED_KEYS = frozenset({"id", "text", "title", "metadata"})


@dataclass(frozen=True)
class Document:
    """A stored document, as ``Index.get`` returns it."""

    id: str
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "title": self.title, "metadata": self.metadata}


@dataclass(frozen=True)
class AddReport:
    """What one ``Index.add`` stored: ``added`` documents, of which ``replaced`` replaced an
    existing id; their ``tokens`` (vectors) in all; how many were ``truncated`` at the
    model's document length."""

    added: int
    replaced: int
    tokens: int
    truncated: int


@dataclass(frozen=True)
class PreparedDoc:
    """A validated input record."""

    id: str
    text: str
    title: str | None
    metadata_json: str | None

    @property
    def encode_text(self) -> str:
        """What the encoder sees: the title (when given) on a line before the text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def _where(position: int, doc_id: str | None = None) -> str:
    return f"document {position}" + (f" (id {doc_id!r})" if doc_id is not None else "")


def _check_id(value: Any, position: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(
            f"{_where(position)} has an id of type {type(value).__name__}; ids must be "
            "strings (or integers, which are stored as strings)"
        )
    doc_id = str(value)
    if not doc_id.strip():
        raise InputError(f"{_where(position)} has an empty id; give every document an id")
    return doc_id


def prepare_one(record: Any, position: int) -> PreparedDoc:
    """Check one input record and normalise it."""
    if not isinstance(record, Mapping):
        raise InputError(
            f"{_where(position)} is a {type(record).__name__}, not a dict; pass dicts like "
            "{'id': 'd1', 'text': '...', 'title': '...', 'metadata': {...}}"
        )
    unknown = sorted(str(key) for key in record if key not in ALLOWED_KEYS)
    if "id" not in record:
        raise InputError(f"{_where(position)} has no 'id'; give every document a unique id")
    doc_id = _check_id(record["id"], position)
    where = _where(position, doc_id)
    if unknown:
        raise InputError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; the keys are "
            "'id', 'text', 'title' and 'metadata' (put other fields inside 'metadata')"
        )
    text = record.get("text")
    if not isinstance(text, str):
        what = "no 'text'" if text is None else f"a 'text' of type {type(text).__name__}"
        raise InputError(f"{where} has {what}; 'text' must be a non-empty string")
    if not text.strip():
        raise InputError(f"{where} has empty text; give it some text or leave it out")
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(
            f"{where} has a 'title' of type {type(title).__name__}; use a string or leave it out"
        )
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InputError(
            f"{where} has 'metadata' of type {type(metadata).__name__}; it must be a dict "
            "(a JSON object) or left out"
        )
    metadata_json = None
    if metadata:
        try:
            metadata_json = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{where} has metadata that is not JSON-serialisable ({exc}); use strings, "
                "numbers, booleans, None, lists and dicts only"
            ) from exc
    return PreparedDoc(doc_id, text, title or None, metadata_json)


def prepare_documents(docs: Iterable[Any]) -> list[PreparedDoc]:
    """Validate a whole input batch: each record, then duplicate ids across it."""
    if isinstance(docs, (str, bytes, Mapping)):
        raise InputError(
            "add() takes a list (or any iterable) of document dicts, not a single "
            f"{type(docs).__name__}; wrap one document in a list: [doc]"
        )
    try:
        records = list(docs)
    except TypeError as exc:
        raise InputError(
            f"add() takes a list of document dicts, not a {type(docs).__name__}"
        ) from exc
    prepared = [prepare_one(record, i) for i, record in enumerate(records)]
    first: dict[str, int] = {}
    for i, doc in enumerate(prepared):
        if doc.id in first:
            raise InputError(
                f"documents {first[doc.id]} and {i} both have id {doc.id!r}; ids must be "
                "unique within one add (pass each document once)"
            )
        first[doc.id] = i
    return prepared


def metadata_from_json(text: str | None) -> dict[str, Any]:
    """Stored metadata back to a dict (``{}`` when there was none)."""
    return json.loads(text) if text else {}


def next_vectors(
    given: Iterator[Any], start: int, count: int, n_docs: int, dim: int
) -> list[np.ndarray]:
    """The next ``count`` arrays of ``given`` (documents ``start..``), each checked to be a
    finite, non-empty ``[n_tokens, dim]`` array."""
    out = []
    for i in range(start, start + count):
        v = next(given, None)
        if v is None:
            raise InputError(
                f"got {i} vector arrays for {n_docs} documents; give one [n_tokens, {dim}] "
                "array per document"
            )
        shape = getattr(v, "shape", None)
        if shape is None or len(shape) != 2 or shape[0] < 1:
            raise InputError(
                f"vectors[{i}] must be a non-empty [n_tokens, {dim}] array, not shape {shape}"
            )
        if shape[1] != dim:
            raise DimensionMismatchError(
                f"vectors[{i}] has dim {shape[1]} but the index holds {dim}-dim vectors; "
                "encode with the index's model (index.encoder)"
            )
        if not np.isfinite(v).all():
            raise InputError(f"vectors[{i}] holds NaN or infinite values; nothing was added")
        out.append(v)
    return out
