"""One measured phase of bench/peers/run_peer.py (build, latency or qps): ``run_phase`` re-runs
run_peer.py in a child process with the thread-count variables set before anything is
imported; there ``child`` measures and writes a JSON to ``--phase-out``. Needs only numpy, the
peer library and the standard library."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from measure import TreeRss, log, maxrss_mb, rss_mb
from peer_input import load_vectors

RUN_PEER = Path(__file__).resolve().parent / "run_peer.py"

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "RAYON_NUM_THREADS",
    "RAYON_RS_NUM_CPUS",
    "NUMBA_NUM_THREADS",
    "TORCH_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


def child(args: argparse.Namespace) -> int:
    """One measured phase, in its own process; writes a JSON to --phase-out."""
    t_start = time.perf_counter()
    tree = TreeRss()
    result: dict[str, Any] = {"phase": args.phase, "threads": args.threads}
    try:
        import engines

        engine = engines.get(args.engine)
        params = json.loads(args.params_json)
        needs_docs = args.phase == "build" or params.get("mode") == "memory"
        stream = getattr(engine, "INPUT", "memory") == "stream"
        data = load_vectors(args.vectors, args.limit_docs, args.limit_queries, needs_docs, stream)
        index_dir = Path(args.index_dir)
        if hasattr(engine, "_Memory"):
            engine._Memory.docs = data["docs"]
        # imports of the engine happen inside build/load; import them now so that the start
        # RSS includes them and timings exclude them
        for mod in ("torch", "fast_plaid", "xtr_warp", "pylate", "voyager", "qdrant_client"):
            with contextlib.suppress(Exception):
                __import__(mod)
        try:
            import torch

            torch.set_num_threads(args.threads)
            result["torch_threads"] = torch.get_num_threads()
        except Exception:
            pass
        result["import_and_input_s"] = round(time.perf_counter() - t_start, 2)
        result["rss_start_mb"] = round(rss_mb(), 1)
        tree.reset()
        result["loadavg_start"] = list(os.getloadavg())
        if args.phase == "build":
            t = time.perf_counter()
            info = engine.build(data["docs"], index_dir, params, args.threads)
            result["build_s"] = round(time.perf_counter() - t, 3)
            result["build_info"] = info
        else:
            t = time.perf_counter()
            handle = engine.load(index_dir, params, args.threads, data["n_docs"])
            result["load_s"] = round(time.perf_counter() - t, 3)
            result["rss_after_load_mb"] = round(rss_mb(), 1)
            queries = data["queries"]
            warm = queries[: args.warmup]
            for q in warm:
                engine.search(handle, [q], args.k, params, args.threads)
            if args.phase == "latency":
                times, cpu, hits = [], [], []
                for q in queries:
                    c = time.process_time()
                    t = time.perf_counter()
                    r = engine.search(handle, [q], args.k, params, args.threads)
                    times.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                    hits.append(r[0])
                result["latencies_ms"] = [round(x * 1000, 4) for x in times]
                result["cpu_latencies_ms"] = [round(x * 1000, 4) for x in cpu]
                result["hits"] = hits
            else:
                result.update(qps_run(engine, handle, queries, args, params))
        result["loadavg_end"] = list(os.getloadavg())
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["peak_rss_mb"] = round(maxrss_mb()["self"], 1)
    result["peak_rss_children_mb"] = round(maxrss_mb()["children"], 1)
    result["peak_tree_rss_mb"] = tree.stop()
    Path(args.phase_out).write_text(json.dumps(result))
    return 1 if "error" in result else 0


def qps_run(engine: Any, handle: Any, queries: list, args: argparse.Namespace, params: dict):
    if args.qps_queries:
        queries = queries[: args.qps_queries]
    n, passes, elapsed, cpu0 = len(queries), 0, 0.0, time.process_time()
    mode = "batch" if engine.BATCH else f"{args.threads} client threads"
    while passes < args.qps_max_passes and (passes == 0 or elapsed < args.qps_min_seconds):
        t = time.perf_counter()
        if engine.BATCH:
            engine.search(handle, queries, args.k, params, args.threads)
        else:
            next_i = iter(range(n))
            lock = threading.Lock()

            def worker(next_i=next_i, lock=lock) -> None:
                while True:
                    with lock:
                        i = next(next_i, None)
                    if i is None:
                        return
                    engine.search(handle, [queries[i]], args.k, params, 1)

            pool = [threading.Thread(target=worker) for _ in range(args.threads)]
            for th in pool:
                th.start()
            for th in pool:
                th.join()
        elapsed += time.perf_counter() - t
        passes += 1
    return {
        "qps": round(n * passes / elapsed, 3),
        # CPU seconds the process used (all its threads) per query: insensitive to other load
        "cpu_ms_per_query": round((time.process_time() - cpu0) * 1000 / (n * passes), 3),
        "qps_passes": passes,
        "qps_seconds": round(elapsed, 3),
        "qps_mode": mode,
    }


# ---------------------------------------------------------------------------- parent side


def thread_env(n: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(n)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_phase(
    args: argparse.Namespace, phase: str, threads: int, params: dict, index_dir: Path
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phase.json"
        cmd = [
            sys.executable,
            str(RUN_PEER),
            "--engine",
            args.engine,
            "--vectors",
            str(args.vectors),
            "--out",
            "-",
            "--k",
            str(args.k),
            "--limit-docs",
            str(args.limit_docs),
            "--limit-queries",
            str(args.limit_queries),
            "--warmup",
            str(args.warmup),
            "--qps-min-seconds",
            str(args.qps_min_seconds),
            "--qps-max-passes",
            str(args.qps_max_passes),
            "--qps-queries",
            str(args.qps_queries),
            "--phase",
            phase,
            "--threads",
            str(threads),
            "--index-dir",
            str(index_dir),
            "--params-json",
            json.dumps(params),
            "--phase-out",
            str(out),
        ]
        log(f"{args.engine}: {phase} ({threads} thread{'s' if threads > 1 else ''}) ...")
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=thread_env(threads), timeout=args.phase_timeout)
        wall = time.perf_counter() - t
        if out.is_file():
            res = json.loads(out.read_text())
        else:
            res = {"error": f"{phase} process exited with code {proc.returncode} and no result"}
        res["process_wall_s"] = round(wall, 2)
        res["returncode"] = proc.returncode
        if "error" in res:
            log(f"{args.engine}: {phase} FAILED: {res['error']}")
        else:
            log(f"{args.engine}: {phase} done in {wall:.1f}s")
        return res
