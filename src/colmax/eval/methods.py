"""Every retrieval method behind one call: ``retrieve(method, data, options) -> Retrieval``.

Methods: ``colmax`` (the compressed Index with its default search parameters, built from the
same encoded vectors as ``colmax-exact``), ``colmax-exact`` (brute-force MaxSim over all
uncompressed document vectors), ``bm25`` (bm25s, k1=0.9, b=0.4, :mod:`tokenize_text`),
``biencoder`` and ``maxsim-raw`` (:mod:`neural`), ``hybrid`` (BM25 + colmax, :mod:`fusion`;
RRF by default) and the two-stage ``bm25>colmax`` / ``biencoder>colmax`` (first stage's top
100 reranked by colmax MaxSim).

Timings: ``encode_s`` = encoding the corpus (for ``colmax``, ``Index.add``: encode + write;
0 when an index or earlier result is reused), ``index_s`` = building a non-neural structure
(BM25), ``search_s`` = all queries end to end (query encoding + scoring). Work is memoised per
process (encoded corpora, first-stage runs, the index), so running several methods in one
process encodes each corpus once; reused work reports the time it took when it was done.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from colmax.errors import InputError
from colmax.eval import METHODS, fusion, neural
from colmax.eval.data import EvalData

Run = dict[str, dict[str, float]]
BM25_K1, BM25_B = 0.9, 0.4
QUERY_BATCH = 64


@dataclass
class Options:
    model: str | None = None
    dim: int | None = None  # Matryoshka dims of the colmax model (None: the model's)
    nbits: int = 2
    nprobe: int | None = None
    rescore: bool = False
    threads: int = 1  # search threads for the colmax index (QPS is measured at this count)
    index_dir: Path | None = None
    k: int = 100
    first_stage_k: int = 100
    fusion: str = "rrf"
    weight: float = 0.5
    progress: bool = False


@dataclass
class Retrieval:
    run: Run
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


_CACHE: dict[tuple, Any] = {}


def _memo(key: tuple, make: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def clear_cache() -> None:
    """Forget memoised work (tests; or to measure a method cold)."""
    _CACHE.clear()


def _data_key(data: EvalData) -> tuple:
    return (str(data.corpus_dir.resolve()), len(data.doc_ids), hash(tuple(data.query_texts)))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def retrieve(method: str, data: EvalData, opts: Options) -> Retrieval:
    """Run ``method`` for every query of ``data``; memoised per process."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if opts.fusion not in fusion.FUSIONS:
        raise InputError(f"unknown fusion {opts.fusion!r}; choose one of rrf, weighted")
    key = (
        method,
        _data_key(data),
        _model_key(opts),
        str(opts.index_dir),
        opts.k,
        opts.first_stage_k,
    )
    if method == "colmax":
        key += (opts.nbits, opts.nprobe, opts.rescore, opts.threads)
    if method == "hybrid":
        key += (opts.fusion, opts.weight)
    return _memo(("run", *key), lambda: _RUNNERS[method](data, opts))


# --------------------------------------------------------------------------- colmax


def _model_key(opts: Options) -> tuple:
    return (opts.model, opts.dim)


def encoder(opts: Options) -> tuple[Any, float]:
    """The colmax encoder (loaded once per process) and the seconds its load took."""
    from colmax.encoder import Encoder

    return _memo(
        ("encoder", _model_key(opts)),
        lambda: _timed(lambda: Encoder.load(opts.model, dim=opts.dim)),
    )


def _index_key(data: EvalData, opts: Options) -> tuple:
    return ("index", _data_key(data), _model_key(opts), opts.nbits, str(opts.index_dir))


def colmax_index(data: EvalData, opts: Options) -> tuple[Any, float, bool]:
    """(Index holding the corpus, seconds spent building it from vectors, whether reused)."""
    return _memo(_index_key(data, opts), lambda: _build(data, opts))


def _build(data: EvalData, opts: Options) -> tuple[Any, float, bool]:
    from colmax.index import Index

    enc, _ = encoder(opts)
    if opts.index_dir is None:
        path = Path(tempfile.mkdtemp(prefix="colmax-eval-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    else:
        path = opts.index_dir
    index = Index.create(path, model=enc, nbits=opts.nbits, exist_ok=True)
    if len(index):
        if len(index) != len(data.doc_ids) or not index.contains(data.doc_ids[0]):
            raise InputError(
                f"the index at {path} holds {len(index):,} documents, not this corpus's "
                f"{len(data.doc_ids):,}; give another --index-dir or delete that folder"
            )
        if index.nbits != opts.nbits:
            raise InputError(
                f"the index at {path} was built with nbits={index.nbits}, not {opts.nbits}; "
                "give another --index-dir or delete that folder"
            )
        return index, 0.0, True
    vectors, _, _ = _colmax_doc_vectors(data, opts)
    add = lambda: index.add(data.docs, vectors=vectors, progress=opts.progress)  # noqa: E731
    _, seconds = _timed(add)
    return index, seconds, False


def _colmax(data: EvalData, opts: Options) -> Retrieval:
    from colmax.index import SearchParams

    index, index_s, reused = colmax_index(data, opts)
    enc, load_s = encoder(opts)
    encode_start = time.perf_counter()
    queries = enc.encode_queries(data.query_texts)
    query_encode_s = time.perf_counter() - encode_start
    params = SearchParams(nprobe=opts.nprobe, rescore=opts.rescore)
    index.search_vectors(queries[:8], opts.k, params=params, with_text=False)  # warm up
    latencies = []
    for q in tqdm(queries, desc="searching", unit="query", disable=not opts.progress):
        start = time.perf_counter()
        index.search_vectors(q, opts.k, params=params, with_text=False)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    found = index.search_vectors(
        queries, opts.k, params=params, threads=opts.threads, with_text=False
    )
    batch_s = time.perf_counter() - start
    run = {
        qid: {h.id: h.score for h in hits} for qid, hits in zip(data.query_ids, found, strict=True)
    }
    info = index.info()
    _, encode_s, _ = _colmax_doc_vectors(data, opts)
    timings = {
        "load_s": load_s, "encode_s": 0.0 if reused else encode_s, "index_s": index_s,
        "search_s": query_encode_s + sum(latencies),
    }  # fmt: skip
    return Retrieval(
        run,
        timings,
        {
            "index_reused": reused,
            "dim": index.dim,
            "nbits": index.nbits,
            "index_bytes": info["index_bytes"],
            "bytes_per_token": round(info["bytes_per_token"], 3),
            "centroids": info["centroids"],
            "nprobe": opts.nprobe,
            "rescore": opts.rescore,
            "query_encode_ms_per_query": round(1000 * query_encode_s / max(1, len(queries)), 3),
            "search_p50_ms": round(1000 * float(np.median(latencies)), 3),
            "search_p95_ms": round(1000 * float(np.percentile(latencies, 95)), 3),
            "search_qps": round(len(queries) / batch_s, 1),
            "search_threads": opts.threads,
        },
    )


def _colmax_doc_vectors(data: EvalData, opts: Options) -> tuple[list[np.ndarray], float, str]:
    """All documents' uncompressed colmax vectors, encoded once per process."""

    def encode() -> tuple[list[np.ndarray], float, str]:
        enc, _ = encoder(opts)
        vecs, seconds = _timed(lambda: enc.encode_documents(data.doc_texts, progress=opts.progress))
        return vecs, seconds, "encoded"

    return _memo(("colmax-docs", _data_key(data), _model_key(opts)), encode)


def _colmax_exact(data: EvalData, opts: Options) -> Retrieval:
    docs, encode_s, source = _colmax_doc_vectors(data, opts)
    enc, load_s = encoder(opts)
    start = time.perf_counter()
    queries = enc.encode_queries(data.query_texts)
    found = neural.maxsim_top_k(queries, docs, opts.k, progress=opts.progress)
    search_s = time.perf_counter() - start
    timings = {"load_s": load_s, "encode_s": encode_s, "index_s": 0.0, "search_s": search_s}
    info = {"doc_vectors": source, "dim": enc.dim, "nbits": 16}
    return Retrieval(_to_run(data, found), timings, info)


def _to_run(data: EvalData, found: list[tuple[np.ndarray, np.ndarray]]) -> Run:
    return {
        qid: {data.doc_ids[i]: float(s) for i, s in zip(ids.tolist(), scores.tolist())}
        for qid, (ids, scores) in zip(data.query_ids, found, strict=True)
    }


# --------------------------------------------------------------------------- bm25


def _bm25_index(data: EvalData) -> tuple[Any, float, float]:
    def build() -> tuple[Any, float, float]:
        import bm25s

        from colmax.eval.tokenize_text import tokenize_many

        tokens, tokenize_s = _timed(lambda: tokenize_many(data.doc_texts))
        model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        _, index_s = _timed(lambda: model.index(tokens, show_progress=False))
        return model, tokenize_s, index_s

    return _memo(("bm25-index", _data_key(data)), build)


def _bm25(data: EvalData, opts: Options) -> Retrieval:
    from colmax.eval.tokenize_text import tokenize

    model, tokenize_s, index_s = _bm25_index(data)
    vocab = model.vocab_dict
    start = time.perf_counter()
    run: Run = {}
    k = min(opts.k, len(data.doc_ids))
    for qid, text in zip(data.query_ids, data.query_texts, strict=True):
        words = [w for w in tokenize(text) if w in vocab]
        if not words:
            run[qid] = {}
            continue
        docs, scores = model.retrieve([words], k=k, show_progress=False, n_threads=1)
        run[qid] = {data.doc_ids[int(d)]: float(s) for d, s in zip(docs[0], scores[0]) if s > 0}
    search_s = time.perf_counter() - start
    timings = {"load_s": 0.0, "encode_s": tokenize_s, "index_s": index_s, "search_s": search_s}
    return Retrieval(run, timings, {"k1": BM25_K1, "b": BM25_B})


# --------------------------------------------------------------------------- MiniLM baselines


def _biencoder(data: EvalData, opts: Options) -> Retrieval:
    _, load_s = _memo(("minilm",), lambda: _timed(neural.minilm))
    docs, encode_s = _memo(
        ("biencoder-docs", _data_key(data)),
        lambda: _timed(lambda: neural.embed(data.doc_texts, progress=opts.progress)),
    )
    start = time.perf_counter()
    queries = neural.embed(data.query_texts)
    found = neural.cosine_top_k(queries, docs, opts.k)
    search_s = time.perf_counter() - start
    timings = {"load_s": load_s, "encode_s": encode_s, "index_s": 0.0, "search_s": search_s}
    return Retrieval(_to_run(data, found), timings, {"max_tokens": neural.BIENCODER_MAX_TOKENS})


def _maxsim_raw(data: EvalData, opts: Options) -> Retrieval:
    _, load_s = _memo(("minilm",), lambda: _timed(neural.minilm))
    docs, encode_s = _memo(
        ("raw-docs", _data_key(data)),
        lambda: _timed(
            lambda: neural.raw_token_vectors(
                data.doc_texts, max_tokens=neural.RAW_DOC_MAX_TOKENS, progress=opts.progress
            )
        ),
    )
    start = time.perf_counter()
    queries = neural.raw_token_vectors(data.query_texts, max_tokens=neural.RAW_QUERY_MAX_TOKENS)
    found = neural.maxsim_top_k(queries, docs, opts.k, progress=opts.progress)
    search_s = time.perf_counter() - start
    timings = {"load_s": load_s, "encode_s": encode_s, "index_s": 0.0, "search_s": search_s}
    return Retrieval(_to_run(data, found), timings, {"max_tokens": neural.RAW_DOC_MAX_TOKENS})


# --------------------------------------------------------------------------- combinations


def _sum_timings(*parts: Retrieval) -> dict[str, float]:
    keys = ("load_s", "encode_s", "index_s", "search_s")
    return {k: sum(p.timings.get(k, 0.0) for p in parts) for k in keys}


def _hybrid(data: EvalData, opts: Options) -> Retrieval:
    dense = retrieve("colmax", data, opts)
    sparse = retrieve("bm25", data, opts)
    fused, seconds = _timed(lambda: fusion.fuse(dense.run, sparse.run, opts.fusion, opts.weight))
    timings = _sum_timings(dense, sparse)
    timings["search_s"] += seconds
    info = {"fusion": opts.fusion, **({"weight": opts.weight} if opts.fusion == "weighted" else {})}
    return Retrieval(fusion.truncate(fused, opts.k), timings, info)


def _two_stage(first: str) -> Callable[[EvalData, Options], Retrieval]:
    def method(data: EvalData, opts: Options) -> Retrieval:
        stage1 = retrieve(first, data, replace(opts, k=opts.first_stage_k))
        enc, load_s = encoder(opts)
        position = {d: i for i, d in enumerate(data.doc_ids)}
        vectors, encode_s = _candidate_vectors(data, opts, stage1.run, position)
        start = time.perf_counter()
        queries = enc.encode_queries(data.query_texts)
        run: Run = {}
        for qid, q in zip(data.query_ids, queries, strict=True):
            cands = list(stage1.run.get(qid, {}))
            scores = neural.maxsim_rerank(q, [vectors[position[d]] for d in cands])
            order = np.argsort(-scores, kind="stable")[: opts.k]
            run[qid] = {cands[i]: float(scores[i]) for i in order}
        timings = dict(stage1.timings)
        timings["search_s"] += time.perf_counter() - start
        timings["load_s"] += load_s
        timings["encode_s"] += encode_s
        return Retrieval(run, timings, {"first_stage": first, "depth": opts.first_stage_k})

    return method


def _candidate_vectors(
    data: EvalData, opts: Options, run: Run, position: dict[str, int]
) -> tuple[dict[int, np.ndarray], float]:
    """colmax vectors of every candidate: all documents' if this process encoded them, else
    the candidates' only, encoded once per process."""
    if ("colmax-docs", _data_key(data), _model_key(opts)) in _CACHE:
        docs, seconds, _ = _colmax_doc_vectors(data, opts)
        return dict(enumerate(docs)), seconds
    cache: dict[int, np.ndarray] = _memo(("colmax-cands", _data_key(data), _model_key(opts)), dict)
    wanted = sorted({position[d] for hits in run.values() for d in hits} - set(cache))
    start = time.perf_counter()
    if wanted:
        enc, _ = encoder(opts)
        texts = [data.doc_texts[i] for i in wanted]
        vecs = enc.encode_documents(texts, progress=opts.progress)
        cache.update(zip(wanted, vecs, strict=True))
    return cache, time.perf_counter() - start


_RUNNERS: dict[str, Callable[[EvalData, Options], Retrieval]] = {
    "colmax": _colmax,
    "colmax-exact": _colmax_exact,
    "bm25": _bm25,
    "biencoder": _biencoder,
    "maxsim-raw": _maxsim_raw,
    "hybrid": _hybrid,
    "bm25>colmax": _two_stage("bm25"),
    "biencoder>colmax": _two_stage("biencoder"),
}
