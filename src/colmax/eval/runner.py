"""One evaluation: load a BEIR folder, retrieve with one method, score with ranx.

The result is one flat dict (what ``colmax eval --json`` prints and
``scripts/make_results.py`` stores).
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path
from typing import Any

from colmax.eval import data as eval_data
from colmax.eval.methods import Options, retrieve
from colmax.eval.metrics import evaluate


def run_eval(
    data_dir: str | Path,
    *,
    method: str = "colmax",
    split: str = "test",
    model: str | None = None,
    index_dir: str | Path | None = None,
    k: int = 100,
    queries_from: str | Path | None = None,
    fusion: str = "rrf",
    weight: float = 0.5,
    first_stage_k: int = 100,
    dim: int | None = None,
    nbits: int = 2,
    nprobe: int | None = None,
    rescore: bool = False,
    threads: int = 1,
    progress: bool = False,
    save_run: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``method`` on ``data_dir``'s ``split``; metrics, counts and timings.

    ``save_run`` writes the ranking as a run file (TREC; ranx JSON for ``.json``), for
    ``colmax compare``.
    """
    from colmax.encoder.encoder import default_threads

    data = eval_data.load(data_dir, split, queries_from)
    opts = Options(
        model=model,
        index_dir=Path(index_dir).expanduser() if index_dir is not None else None,
        k=k,
        first_stage_k=max(first_stage_k, k) if ">" in method else first_stage_k,
        fusion=fusion,
        weight=weight,
        dim=dim,
        nbits=nbits,
        nprobe=nprobe,
        rescore=rescore,
        threads=threads,
        progress=progress,
    )
    result = retrieve(method, data, opts)
    scores = evaluate(data.qrels, result.run)
    n = len(data.query_ids)
    t = result.timings
    model_name = _model_name(method, model)
    if save_run is not None:
        from colmax.eval.compare import save_run as write_run

        write_run(result.run, save_run, name=_run_name(method, model_name, dim))
    return {
        **{m: round(v, 5) for m, v in scores.items()},
        "method": method,
        "model": model_name,
        "dataset": data.name,
        "data_dir": str(data.corpus_dir),
        "queries_from": str(queries_from) if queries_from is not None else None,
        "split": split,
        "k": k,
        "num_queries": n,
        "num_docs": len(data.doc_ids),
        "skipped_queries": data.skipped_queries,
        "empty_docs": data.empty_docs,
        "load_s": round(t.get("load_s", 0.0), 3),
        "encode_s": round(t.get("encode_s", 0.0), 3),
        "index_s": round(t.get("index_s", 0.0), 3),
        "search_s": round(t.get("search_s", 0.0), 3),
        "search_ms_per_query": round(1000 * t.get("search_s", 0.0) / max(1, n), 3),
        "threads": default_threads(),
        **result.info,
        "run_file": str(save_run) if save_run is not None else None,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _model_name(method: str, model: str | None) -> str | None:
    if method == "bm25":
        return None
    minilm = "all-MiniLM-L6-v2"
    if method in ("biencoder", "maxsim-raw"):
        return minilm
    from colmax.encoder.checkpoints import DEFAULT_MODEL

    colmax_model = model or DEFAULT_MODEL
    if method == "biencoder>colmax":
        return f"{minilm} > {colmax_model}"
    return colmax_model


def _run_name(method: str, model: str | None, dim: int | None) -> str:
    """The run's tag in the TREC file: method, model folder name, dims (no spaces)."""
    parts = [method] + ([Path(model).name] if model else []) + ([f"dim{dim}"] if dim else [])
    return "-".join(p.replace(" ", "") for p in parts)
