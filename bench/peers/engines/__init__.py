"""Peer engines for run_peer.py: one module per engine, each with the same small interface.

A module defines:

* ``PACKAGES``: distribution names whose versions go into the result (first = the engine).
* ``DEFAULTS``: every parameter the adapter passes, at the engine's documented default unless
  ``NOTES`` says otherwise. ``--params`` overrides them.
* ``BUILD_KEYS``: the parameters that change the index (the rest only change search).
* ``NOTES``: what the adapter does that a reader should know.
* ``BATCH``: True when ``search`` with many queries parallelises by itself over ``threads``;
  False when run_peer.py should run ``threads`` client threads calling it one query at a time.
* ``build(docs, index_dir, params, threads) -> dict``: build the index from ``docs`` (list of
  float32 ``[n_tokens, dim]`` arrays, document i has id i) into ``index_dir`` (empty folder);
  returns extra facts to record.
* ``load(index_dir, params, threads, n_docs) -> handle``: load a built index for searching.
* ``search(handle, queries, k, params, threads) -> list[list[tuple[int, float]]]``: top-k
  (document index, score) per query, best first.

``exact`` is not a peer: exhaustive numpy MaxSim, the reference for the approximate engines.

Modules import their engine lazily (inside the functions) so that ``--help`` works anywhere.
"""

from __future__ import annotations

import importlib
from types import ModuleType

ENGINES = {
    "fast-plaid": "engines.fastplaid",
    "xtr-warp-rs": "engines.xtrwarp",
    "pylate-plaid": "engines.pylate_plaid",
    "pylate-voyager": "engines.pylate_voyager",
    "qdrant": "engines.qdrant_local",
    "exact": "engines.exact",  # not a peer: exhaustive numpy MaxSim, the reference
    "colmax": "engines.colmax_index",  # colmax itself, in the repository's own venv
}

#: which venv under /work/peers/<name>/venv each engine runs in (bench/peers/setup.sh)
VENV = {
    "fast-plaid": "fast-plaid",
    "xtr-warp-rs": "xtr-warp-rs",
    "pylate-plaid": "pylate",
    "pylate-voyager": "pylate",
    "qdrant": "qdrant",
    "exact": "qdrant",  # numpy only: any venv will do
    "colmax": "",  # the repository's .venv (bench/search.py runs it with its own interpreter)
}


def get(name: str) -> ModuleType:
    return importlib.import_module(ENGINES[name])
