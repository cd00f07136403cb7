"""Held-out technical text: a scientific library's docstrings, summary line -> prose.

Every other held-out task is Python text that colmax's training sources resemble (the anchor
and the written questions read standard-library docstrings). SciPy's docstrings are technical
text from other fields (signal processing, statistics, linear algebra, special functions) that
no source, anchor or PCA reads; on them untrained MiniLM beats the trained models, as it does
on Cranfield (docs/TRAINING.md, "Session 18"). The task: each public function or class's
one-line summary is a query, and the prose of the rest of its docstring (extended summary and
Notes; the numpydoc sections of parameters, returns, examples and references cut) is its one
relevant document, among all of them.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from functools import cache
from typing import Any

from colmax.train.data import is_underline

SCIPY_SUBPACKAGES = (
    "cluster",
    "constants",
    "fft",
    "integrate",
    "interpolate",
    "io",
    "linalg",
    "ndimage",
    "odr",
    "optimize",
    "signal",
    "sparse",
    "spatial",
    "special",
    "stats",
    "differentiate",
)
#: numpydoc sections that are not prose: names, types, code, citations
CUT_SECTIONS = frozenset(
    {
        "Parameters",
        "Returns",
        "Examples",
        "See Also",
        "References",
        "Raises",
        "Yields",
        "Attributes",
        "Methods",
        "Other Parameters",
        "Warns",
        "Warnings",
    }
)
MIN_SUMMARY_WORDS = 4
MIN_PROSE_WORDS = 25
_MARKUP = re.compile(r"`+|\\|\*\*?|:math:|:ref:|:func:|:class:")


def numpydoc_prose(doc: str) -> tuple[str, str]:
    """``(summary line, prose)`` of a numpydoc docstring: the prose is every line outside the
    cut sections, without doctest or directive lines, whitespace collapsed, reST markup
    dropped."""
    lines = inspect.cleandoc(doc).split("\n")
    kept: list[str] = []
    keep = True
    i = 1
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if is_underline(following.strip(), marks="-"):
            keep = line.strip() not in CUT_SECTIONS
            i += 2
            continue
        if keep and not line.lstrip().startswith((">>>", "..", ":")):
            kept.append(line.strip())
        i += 1
    prose = _MARKUP.sub("", " ".join(" ".join(kept).split()))
    return lines[0].strip(), prose


@cache  # ``colmax heldout`` asks once per model
def scipy_docstrings() -> dict[str, tuple[str, str]]:
    """``{"scipy.<sub>.<name>": (summary, prose)}`` for every public callable with a summary
    of 4+ words and 25+ words of prose, sorted by name, the first of identical prose kept;
    empty without SciPy (it comes with the ``eval`` extra, through ranx)."""
    found: dict[str, tuple[str, str]] = {}
    for sub in SCIPY_SUBPACKAGES:
        try:
            with warnings.catch_warnings():  # scipy.odr warns that it is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(f"scipy.{sub}")
        except ImportError:
            continue
        for name in sorted(getattr(module, "__all__", dir(module))):
            entry = _entry(getattr(module, name, None), name)
            if entry is not None:
                found[f"scipy.{sub}.{name}"] = entry
    seen: set[str] = set()
    out = {}
    for key in sorted(found):
        if found[key][1] not in seen:
            seen.add(found[key][1])
            out[key] = found[key]
    return out


def _entry(obj: Any, name: str) -> tuple[str, str] | None:
    doc = getattr(obj, "__doc__", None)
    if name.startswith("_") or not callable(obj) or not isinstance(doc, str) or not doc.strip():
        return None
    summary, prose = numpydoc_prose(doc)
    if len(summary.split()) < MIN_SUMMARY_WORDS or len(prose.split()) < MIN_PROSE_WORDS:
        return None
    return summary, prose
