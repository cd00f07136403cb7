"""Read documents and queries from files: JSONL, a BEIR folder, TSV, or a folder of text files.

Everything streams: a JSONL file is read line by line, a folder file by file. Every problem
raises :class:`~colmax.errors.InputError` naming the file and, where there is one, the line.
Documents come out as ``{"id", "text", "title", "metadata"}`` dicts, ready for ``Index.add``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from colmax.errors import InputError

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
# Keys of a JSONL record that colmax reads itself; any other key goes into metadata.
_ID_KEYS = ("id", "_id")
_TEXT_KEYS = ("text", "contents")
_KNOWN_KEYS = {*_ID_KEYS, *_TEXT_KEYS, "title", "metadata"}


# --------------------------------------------------------------------------- documents


def read_documents(path: str | Path, *, skip_empty: bool = False) -> Iterator[dict[str, Any]]:
    """Stream documents from a JSONL file, a BEIR folder, a TSV file or a folder of text files.

    * JSONL: one object per line with ``id`` (or BEIR's ``_id``), ``text``, optional ``title``
      and ``metadata`` (an object); other keys are kept in ``metadata``.
    * a BEIR folder: its ``corpus.jsonl``.
    * TSV (``.tsv``): ``id<TAB>text[<TAB>title]`` per line (MS MARCO's collection.tsv).
    * a folder of ``.txt`` / ``.md`` files (searched recursively): one document per file, id =
      the relative path without its suffix, title = the first markdown heading or the file name.
    * a single ``.txt`` / ``.md`` file: one document.

    ``skip_empty`` leaves out documents with empty text (logged) instead of failing; BEIR
    corpora such as Cranfield hold a few. The path is checked at once; the rest as it streams.
    """
    p = _existing(path)
    if p.is_dir():
        corpus = p / "corpus.jsonl"
        if corpus.is_file():
            return _checked_documents(_jsonl_documents(corpus), skip_empty)
        return _checked_documents(_folder_documents(p), skip_empty)
    if p.suffix.lower() == ".tsv":
        return _checked_documents(_tsv_records(p, with_title=True), skip_empty)
    if p.suffix.lower() in TEXT_SUFFIXES and not _looks_like_jsonl(p):
        return _checked_documents(iter([_file_document(p, p.parent)]), skip_empty)
    return _checked_documents(_jsonl_documents(p), skip_empty)


def _checked_documents(
    records: Iterator[tuple[str, dict[str, Any]]], skip_empty: bool
) -> Iterator[dict[str, Any]]:
    """Check ids are unique and texts non-empty; ``where`` names the file and line of each."""
    seen: dict[str, str] = {}
    skipped = 0
    for where, doc in records:
        if not doc["text"].strip():
            if skip_empty:
                skipped += 1
                continue
            raise InputError(
                f"{where}: document {doc['id']!r} has empty text; give it some text, remove it, "
                "or pass skip_empty=True (CLI: --skip-empty) to leave such documents out"
            )
        first = seen.get(doc["id"])
        if first is not None:
            raise InputError(
                f"{where}: duplicate id {doc['id']!r} (first seen at {first}); ids must be unique"
            )
        seen[doc["id"]] = where
        yield doc
    if skipped:
        log.warning("left out %d documents with empty text", skipped)


def _jsonl_documents(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, obj in _jsonl_objects(path):
        doc_id = _record_id(obj, where)
        text = _record_text(obj, where, required=True)
        title = obj.get("title")
        if title is not None and not isinstance(title, str):
            raise InputError(f"{where}: 'title' must be a string, not {type(title).__name__}")
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise InputError(
                f"{where}: 'metadata' must be a JSON object, not {type(metadata).__name__}"
            )
        extra = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
        yield (
            where,
            {
                "id": doc_id,
                "text": text,
                "title": title or None,
                "metadata": {**extra, **metadata},
            },
        )


def _folder_documents(folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    files = [
        f
        for f in sorted(folder.rglob("*"))
        if f.is_file()
        and f.suffix.lower() in TEXT_SUFFIXES
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    ]
    if not files:
        raise InputError(
            f"{folder} holds no corpus.jsonl and no {'/'.join(TEXT_SUFFIXES)} files; give a "
            "JSONL file, a BEIR folder or a folder of text files"
        )
    for f in files:
        yield str(f), _file_document(f, folder)[1]


def _file_document(path: Path, root: Path) -> tuple[str, dict[str, Any]]:
    text = _decode(path.read_bytes(), path)
    rel = path.relative_to(root)
    title = path.stem
    if path.suffix.lower() in (".md", ".markdown"):
        for line in text.splitlines():
            match = _HEADING.match(line)
            if match:
                title = match.group(1)
                break
    doc = {
        "id": rel.with_suffix("").as_posix(),
        "text": text.strip(),
        "title": title,
        "metadata": {"path": rel.as_posix()},
    }
    return str(path), doc


# --------------------------------------------------------------------------- queries


def read_queries(path: str | Path) -> Iterator[dict[str, str]]:
    """Stream ``{"id", "text"}`` queries from BEIR's queries.jsonl (or its folder), any JSONL
    with ``id``/``_id`` and ``text`` (or ``query``), a ``.tsv`` of ``id<TAB>text``, or a text
    file with one query per line (id = the line number; blank lines are skipped)."""
    p = _existing(path)
    if p.is_dir():
        p = p / "queries.jsonl"
        if not p.is_file():
            raise InputError(f"{p.parent} has no queries.jsonl")
    if p.suffix.lower() == ".tsv":
        records = ((w, {"id": d["id"], "text": d["text"]}) for w, d in _tsv_records(p))
    elif p.suffix.lower() in JSONL_SUFFIXES or _looks_like_jsonl(p):
        records = (
            (w, {"id": _record_id(o, w), "text": _record_text(o, w, keys=("text", "query"))})
            for w, o in _jsonl_objects(p)
        )
    else:
        records = ((w, {"id": str(n), "text": line}) for w, n, line in _text_lines(p))
    return _unique_queries(records)


def read_texts(path: str | Path) -> list[str]:
    """Texts for reranking: JSONL objects with ``text`` (or JSON strings), or one text per line."""
    p = _existing(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give a JSONL file or a text file with one per line")
    if p.suffix.lower() not in JSONL_SUFFIXES and not _looks_like_jsonl(p):
        return [line for _, _, line in _text_lines(p)]
    texts = []
    for where, value in _jsonl_values(p):
        if isinstance(value, str):
            text = value
        elif isinstance(value, dict):
            text = _record_text(value, where, required=True)
        else:
            raise InputError(f"{where}: expected an object with 'text' or a JSON string")
        if not text.strip():
            raise InputError(f"{where}: empty text")
        texts.append(text)
    return texts


def _unique_queries(records: Iterator[tuple[str, dict[str, str]]]) -> Iterator[dict[str, str]]:
    seen: dict[str, str] = {}
    for where, query in records:
        if not query["text"].strip():
            raise InputError(f"{where}: query {query['id']!r} has empty text")
        if query["id"] in seen:
            raise InputError(
                f"{where}: duplicate query id {query['id']!r} (first seen at {seen[query['id']]})"
            )
        seen[query["id"]] = where
        yield query


# --------------------------------------------------------------------------- line readers


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    return p


def _raw_lines(path: Path) -> Iterator[tuple[str, int, str]]:
    """(where, line number, decoded line) for every line, decoded strictly as UTF-8."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    any_content = False
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}, line {number}"
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{where}: not valid UTF-8 (byte {raw[exc.start]:#04x} at column "
                    f"{exc.start + 1}); save the file as UTF-8"
                ) from exc
            if line.strip():
                any_content = True
            yield where, number, line
    if not any_content:
        raise InputError(f"{path} is empty")


def _text_lines(path: Path) -> Iterator[tuple[str, int, str]]:
    for where, number, line in _raw_lines(path):
        if line.strip():
            yield where, number, line.strip()


def _jsonl_values(path: Path) -> Iterator[tuple[str, Any]]:
    for where, _, line in _raw_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: bad JSON ({exc.msg} at column {exc.colno}); each line must hold one "
                "JSON object"
            ) from exc
        yield where, value


def _jsonl_objects(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, value in _jsonl_values(path):
        if not isinstance(value, dict):
            raise InputError(
                f'{where}: expected a JSON object like {{"id": ..., "text": ...}}, '
                f"got {type(value).__name__}"
            )
        yield where, value


def _tsv_records(path: Path, with_title: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, _, line in _raw_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or len(parts) > (3 if with_title else 2):
            raise InputError(
                f"{where}: expected id<TAB>text{'[<TAB>title]' if with_title else ''}, "
                f"got {len(parts)} tab-separated fields"
            )
        doc_id = parts[0].strip()
        if not doc_id:
            raise InputError(f"{where}: missing id (the first field is empty)")
        title = parts[2].strip() if len(parts) == 3 else None
        yield where, {"id": doc_id, "text": parts[1], "title": title or None, "metadata": {}}


def _record_id(obj: dict[str, Any], where: str) -> str:
    value = next((obj[k] for k in _ID_KEYS if k in obj), None)
    if value is None:
        raise InputError(f'{where}: missing id; give each record an "id" (or BEIR\'s "_id")')
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{where}: id must be a string, not {type(value).__name__}")
    value = str(value)
    if not value.strip():
        raise InputError(f"{where}: the id is empty")
    return value


def _record_text(
    obj: dict[str, Any], where: str, *, required: bool = True, keys: tuple[str, ...] = _TEXT_KEYS
) -> str:
    value = next((obj[k] for k in keys if k in obj), None)
    if value is None:
        if required:
            raise InputError(f'{where}: missing "text"')
        return ""
    if not isinstance(value, str):
        raise InputError(f'{where}: "text" must be a string, not {type(value).__name__}')
    return value


def _decode(data: bytes, path: Path) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}, line {line}: not valid UTF-8 (byte {data[exc.start]:#04x}); save the "
            "file as UTF-8"
        ) from exc


def _looks_like_jsonl(path: Path) -> bool:
    """True when the first non-blank character of the file is ``{``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head.startswith(b"{")
