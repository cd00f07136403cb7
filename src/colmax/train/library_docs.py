"""Library docstrings as retrieval pairs, summary line -> prose: a held-out task on SciPy's,
and the ``summary`` training source on the standard library's and torch's.

Every other held-out task is Python text that colmax's training sources resemble (the anchor
and the written questions read standard-library docstrings). SciPy's docstrings are technical
text from other fields (signal processing, statistics, linear algebra, special functions) that
no source, anchor or PCA reads; on them untrained MiniLM beats the trained models, as it does
on Cranfield (docs/TRAINING.md, "Session 18"). The task: each public function or class's
one-line summary is a query, and the prose of the rest of its docstring (extended summary and
Notes; the numpydoc sections of parameters, returns, examples and references cut) is its one
relevant document, among all of them.

The ``summary`` source (:func:`summary_pairs`) is the same shape on docstrings colmax may
train on: the standard library's and torch's (a core dependency, pinned). Torch's modules
that port NumPy and SciPy APIs (``fft``, ``linalg``, ``special``, ``signal``) are left out,
so that SciPy's docstrings stay text no training source reads.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from functools import cache
from typing import Any

import numpy as np

from colmax.train.data import is_underline, overlap_ranked, split_sentences

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
#: torch's modules the ``summary`` source reads (its NumPy / SciPy ports left out)
TORCH_MODULES = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "torch.nn.utils",
    "torch.autograd",
    "torch.distributions",
    "torch.optim",
    "torch.optim.lr_scheduler",
    "torch.utils.data",
    "torch.sparse",
)
#: Google-style section headings (torch, parts of the standard library) and whether the
#: section is prose
GOOGLE_SECTIONS = {
    **dict.fromkeys(("Note", "Notes", "Warning", "Warnings", ".. note", ".. warning"), True),
    **dict.fromkeys(
        (
            "Args", "Arguments", "Keyword args", "Keyword arguments", "Kwargs", "Parameters",
            "Returns", "Return", "Return type", "Raises", "Yields", "Example", "Examples",
            "Example usage", "Shape", "Attributes", "Methods", "Inputs", "Outputs",
            "Variables", "References", "See also", "See Also",
        ),
        False,
    ),
}  # fmt: skip
MIN_SUMMARY_WORDS = 4
MIN_PROSE_WORDS = 25
_MARKUP = re.compile(r"`+|\\|\*\*?|:math:|:ref:|:func:|:class:")
_ROLES = re.compile(r":(attr|meth|mod|obj|data|exc|class|func|ref|math):")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")


def numpydoc_prose(doc: str, *, google: bool = False) -> tuple[str, str]:
    """``(summary line, prose)`` of a numpydoc docstring: the prose is every line outside the
    cut sections, without doctest or directive lines, whitespace collapsed, reST markup
    dropped. ``google`` also drops a leading call signature (C functions' docstrings), the
    non-prose sections of Google style (``Args:``, ``Example::``) and the indented bodies of
    literal blocks and directives (code, ``.. math::``), keeping those of notes and warnings."""
    lines = inspect.cleandoc(doc).split("\n")
    if google:
        lines = _google_prose_lines(lines)
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
    prose = " ".join(" ".join(kept).split())
    summary = lines[0].strip()
    if google:
        prose, summary = _ROLES.sub("", prose), _MARKUP.sub("", _ROLES.sub("", summary))
    return summary, _MARKUP.sub("", prose)


def _google_prose_lines(lines: list[str]) -> list[str]:
    """``lines`` without a leading signature, Google sections that are not prose, and the
    bodies of literal blocks and directives other than notes and warnings."""
    if lines and _SIGNATURE.match(lines[0].strip()):
        lines = inspect.cleandoc("\n".join(lines[1:])).split("\n")
    out: list[str] = []
    keep = True
    skip_deeper: int | None = None  # skipping lines indented deeper than this
    for line in lines:
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if skip_deeper is not None:
            if not stripped or indent > skip_deeper:
                continue
            skip_deeper = None
        heading = stripped.rstrip(":")
        if stripped.endswith(":") and heading in GOOGLE_SECTIONS:
            keep = GOOGLE_SECTIONS[heading]
            if heading.startswith(".."):
                out.append("")
            continue
        if not keep:
            continue
        if stripped.startswith(".. ") or stripped.endswith("::"):
            skip_deeper = indent
            if stripped.startswith(".. "):
                continue
            line = line[:-1]  # "as follows::" reads "as follows:"
        out.append(line)
    return _summary_sentence_first(out)


def _summary_sentence_first(lines: list[str]) -> list[str]:
    """``lines`` with the first sentence of the first paragraph on the first line and the rest
    of that paragraph on the next (a summary may wrap, or run on into a second sentence)."""
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    sentences = split_sentences(" ".join(line.strip() for line in lines[:end]))
    if not sentences:
        return lines
    return [sentences[0], " ".join(sentences[1:]), *lines[end:]]


@cache  # ``colmax heldout`` asks once per model
def scipy_docstrings() -> dict[str, tuple[str, str]]:
    """``{"scipy.<sub>.<name>": (summary, prose)}`` for every public callable with a summary
    of 4+ words and 25+ words of prose, sorted by name, the first of identical prose kept;
    empty without SciPy (it comes with the ``eval`` extra, through ranx)."""
    return public_docstrings([f"scipy.{sub}" for sub in SCIPY_SUBPACKAGES])


def public_docstrings(
    module_names: list[str] | tuple[str, ...], *, google: bool = False
) -> dict[str, tuple[str, str]]:
    """``{"<module>.<name>": (summary, prose)}`` for the public callables of each importable
    module (its ``__all__``, else its names) with a summary of 4+ words and 25+ words of
    prose, sorted by name, the first of identical prose kept."""
    found: dict[str, tuple[str, str]] = {}
    for module_name in module_names:
        try:
            with warnings.catch_warnings():  # scipy.odr warns that it is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in sorted(getattr(module, "__all__", dir(module))):
            entry = _entry(getattr(module, name, None), name, google)
            if entry is not None:
                found[f"{module_name}.{name}"] = entry
    return _first_of_each_prose(found)


def _first_of_each_prose(found: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    seen: set[str] = set()
    out = {}
    for key in sorted(found):
        if found[key][1] not in seen:
            seen.add(found[key][1])
            out[key] = found[key]
    return out


def _entry(obj: Any, name: str, google: bool = False) -> tuple[str, str] | None:
    doc = getattr(obj, "__doc__", None)
    if name.startswith("_") or not callable(obj) or not isinstance(doc, str) or not doc.strip():
        return None
    return _long_enough(*numpydoc_prose(doc, google=google))


def _long_enough(summary: str, prose: str) -> tuple[str, str] | None:
    if len(summary.split()) < MIN_SUMMARY_WORDS or len(prose.split()) < MIN_PROSE_WORDS:
        return None
    return summary, prose


def trainable_docstrings() -> dict[str, tuple[str, str, str]]:
    """``{id: (module, summary, prose)}`` of the docstrings the ``summary`` source reads: the
    standard library's (:func:`colmax.demo.stdlib_corpus`, ids ``stdlib:<name>``) and
    torch's (:data:`TORCH_MODULES`, ids ``torch:<name>``); identical prose kept once."""
    from colmax.train.questions import stdlib_modules

    modules, found = {}, {}
    for key, (module, text) in stdlib_modules().items():
        entry = _long_enough(*numpydoc_prose(text, google=True))
        if entry is not None:
            modules[f"stdlib:{key}"], found[f"stdlib:{key}"] = module, entry
    for key, entry in public_docstrings(TORCH_MODULES, google=True).items():
        modules[f"torch:{key}"], found[f"torch:{key}"] = key.rsplit(".", 1)[0], entry
    return {key: (modules[key], *entry) for key, entry in _first_of_each_prose(found).items()}


def summary_pairs(limit: int | None = None, seed: int = 0) -> tuple[list[Any], dict[str, str]]:
    """The ``summary`` source: each docstring's summary line -> its prose, with the other
    docstrings of its module as negatives (those sharing the most words with it first), and
    the proses by passage id (``summary:<id>``). ``limit`` keeps a seeded sample of that many.
    A module's only docstring is left out: nothing of its kind to tell it apart from."""
    from colmax.train.data import Example

    docs = trainable_docstrings()
    keys = sorted(docs)
    if limit is not None and limit < len(keys):
        picked = np.random.default_rng([seed, 11]).choice(len(keys), limit, replace=False)
        keys = [keys[i] for i in sorted(picked)]
    by_module: dict[str, list[str]] = {}
    for key, (module, _, _) in sorted(docs.items()):
        by_module.setdefault(module, []).append(key)
    words = {key: set(prose.lower().split()) for key, (_, _, prose) in docs.items()}
    examples: list[Example] = []
    passages: dict[str, str] = {}
    for key in keys:
        module, summary, prose = docs[key]
        mates = overlap_ranked(key, by_module[module], words)
        if not mates:
            continue
        ids = [f"summary:{k}" for k in (key, *mates)]
        passages.update((i, docs[k][2]) for i, k in zip(ids, (key, *mates)))
        examples.append(
            Example(ids[0], "summary", summary, prose, ids[0], (ids[0],), tuple(ids[1:]))
        )
    return examples, passages
