"""The demo corpus: docstrings of Python's standard library, which every machine has.

``stdlib_corpus()`` walks a fixed list of modules and makes one document per public module,
class, function or method docstring; ``run_demo()`` indexes it and answers ``DEMO_QUERIES``
(what ``colmax demo`` prints). No download, no data file.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colmax.types import Hit

STDLIB_MODULES = (
    "json", "os", "os.path", "pathlib", "re", "collections", "itertools", "functools",
    "datetime", "http.client", "sqlite3", "subprocess", "threading", "asyncio", "email",
    "csv", "zipfile", "tarfile", "gzip", "hashlib", "hmac", "secrets", "random", "statistics",
    "decimal", "fractions", "math", "string", "textwrap", "unittest", "logging", "argparse",
    "shutil", "tempfile", "socket", "urllib.parse", "urllib.request", "xml.etree.ElementTree",
    "heapq", "bisect", "array", "struct", "pickle", "copy", "inspect", "typing", "dataclasses",
    "enum", "contextlib", "difflib", "calendar", "base64", "glob", "fnmatch", "io", "time",
    "uuid", "operator", "queue", "sched", "signal", "zlib", "configparser", "pprint", "shlex",
    "platform", "locale", "gettext", "codecs", "unicodedata", "html", "mimetypes", "timeit",
    "traceback", "warnings", "weakref", "abc", "numbers", "cmath", "concurrent.futures",
    "multiprocessing", "selectors", "ssl", "smtplib", "ftplib", "imaplib", "webbrowser",
    "ipaddress", "binascii", "quopri", "filecmp", "fileinput", "stat", "linecache", "tokenize",
    "ast", "dis", "importlib", "pkgutil", "sys", "gc", "atexit", "errno", "getpass", "graphlib",
)  # fmt: skip
# Questions a programmer might ask, answered by docstrings in STDLIB_MODULES.
DEMO_QUERIES = (
    "deserialize a JSON document to a Python object",
    "compute the SHA-256 hash of bytes",
    "run a program in a subprocess and read its output",
    "create a temporary directory that is removed afterwards",
    "get the largest n elements of an iterable",
    "compare two text files line by line and show the differences",
    "find files matching a wildcard pattern",
    "generate a cryptographically secure random token",
)
MIN_CHARS = 40
MAX_CHARS = 700  # the default model keeps 256 tokens; longer docstrings are cut at a paragraph
MAX_DOCS = 3000
DEFAULT_LIMIT: int | None = None  # all (~2,500 docs, ~120k tokens): ~12 s on 2 idle cores
ADD_BATCH = 256


def stdlib_corpus(limit: int | None = None) -> list[dict[str, Any]]:
    """Documents from standard-library docstrings, in a fixed order, deduplicated.

    ``limit`` keeps that many, taken round-robin across modules so every module is covered.
    """
    per_module: list[list[dict[str, Any]]] = []
    seen_objects: set[int] = set()
    seen_texts: set[str] = set()
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # a build without sqlite3, ssl, ...: leave it out
            continue
        docs = []
        for qualname, obj in _members(module, name):
            if id(obj) in seen_objects:
                continue
            seen_objects.add(id(obj))
            text = _clean(getattr(obj, "__doc__", None))
            if text is None or text in seen_texts:
                continue
            seen_texts.add(text)
            docs.append({"id": qualname, "title": qualname, "text": text,
                         "metadata": {"module": name}})  # fmt: skip
        per_module.append(docs)
    return _round_robin(per_module, min(limit or MAX_DOCS, MAX_DOCS))


def _members(module: Any, name: str) -> list[tuple[str, Any]]:
    """The module itself, then its public classes and functions (own or in ``__all__``), then
    each class's own public methods; names sorted within a module."""
    out: list[tuple[str, Any]] = [(name, module)]
    exported = getattr(module, "__all__", None)
    names = sorted(set(exported)) if isinstance(exported, list | tuple) else sorted(vars(module))
    for attr in names:
        if attr.startswith("_"):
            continue
        obj = getattr(module, attr, None)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)) or not _from_stdlib(obj):
            continue
        if not _defined_in(obj, name, strict=exported is None):
            continue  # imported from elsewhere
        out.append((f"{name}.{attr}", obj))
        if inspect.isclass(obj):
            for meth in sorted(vars(obj)):
                member = vars(obj)[meth]
                member = getattr(member, "__func__", member)
                if meth.startswith("_") or not _from_stdlib(member):
                    continue
                if inspect.isroutine(member) or isinstance(member, property):
                    out.append((f"{name}.{attr}.{meth}", member))
    return out


def _defined_in(obj: object, name: str, *, strict: bool) -> bool:
    """Whether ``obj`` belongs to module ``name``: defined there (``strict``), or, for names in
    ``__all__``, in its package or a C accelerator (``_json``, ``posix``); not ``typing.Text``,
    which is ``str``."""
    module = getattr(obj, "__module__", None)
    if module is None or module == name:
        return True
    if strict:
        return False
    root = module.split(".")[0]
    return root == name.split(".")[0] or root.startswith("_") or root in ("posix", "nt")


def _from_stdlib(obj: object) -> bool:
    """False for what other packages patch in (torch wraps ``inspect.getfile``, transformers
    adds ``logging.Logger.warning_once``), so the corpus does not depend on what is imported."""
    module = getattr(obj, "__module__", None)
    if isinstance(obj, property):
        module = getattr(obj.fget, "__module__", None)
    return not module or module.split(".")[0] in sys.stdlib_module_names


def _clean(doc: object) -> str | None:
    """The cleaned docstring cut at a paragraph near ``MAX_CHARS``, or None when too short."""
    if not isinstance(doc, str):
        return None
    text = inspect.cleandoc(doc).strip()
    if len(text) < MIN_CHARS:
        return None
    if len(text) > MAX_CHARS:
        cut = text.rfind("\n\n", 0, MAX_CHARS)
        text = text[: cut if cut > MAX_CHARS // 3 else MAX_CHARS].rstrip()
    return text


def _round_robin(groups: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Take one from each group in turn until ``limit``; keep the original order."""
    taken = [0] * len(groups)
    total = 0
    while total < limit and any(t < len(g) for t, g in zip(taken, groups, strict=True)):
        for i, group in enumerate(groups):
            if taken[i] < len(group) and total < limit:
                taken[i] += 1
                total += 1
    return [doc for group, n in zip(groups, taken, strict=True) for doc in group[:n]]


# --------------------------------------------------------------------------- the demo run


@dataclass
class DemoReport:
    """What :func:`run_demo` did: the index, its size, timings and the answers."""

    index_dir: Path
    documents: int
    modules: int
    tokens: int
    index_seconds: float
    search_seconds: float
    results: list[tuple[str, list[Hit]]] = field(default_factory=list)


def run_demo(
    index_dir: str | Path,
    limit: int | None = DEFAULT_LIMIT,
    *,
    k: int = 3,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Index the stdlib corpus into ``index_dir`` and answer :data:`DEMO_QUERIES`, top ``k``.

    The index is created, or reused when it exists (documents are replaced by id, so running
    the demo twice gives the same results). ``on_progress(done, total)`` follows indexing.
    """
    docs = stdlib_corpus(limit)  # before the model loads: torch patches some stdlib names
    from colmax.index import Index

    start = time.perf_counter()
    tokens = done = 0
    with Index.create(index_dir, exist_ok=True) as index:
        for i in range(0, len(docs), ADD_BATCH):
            chunk = docs[i : i + ADD_BATCH]
            tokens += index.add(chunk, replace=True).tokens
            done += len(chunk)
            if on_progress is not None:
                on_progress(done, len(docs))
        index_seconds = time.perf_counter() - start
        start = time.perf_counter()
        results = index.search_many(list(DEMO_QUERIES), k=k)
        search_seconds = time.perf_counter() - start
    return DemoReport(
        index_dir=Path(index_dir),
        documents=len(docs),
        modules=len({d["metadata"]["module"] for d in docs}),
        tokens=tokens,
        index_seconds=index_seconds,
        search_seconds=search_seconds,
        results=[(r.query, list(r.hits)) for r in results],
    )
