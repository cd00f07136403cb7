"""Build one peer engine's index from a vectors folder (bench/make_vectors.py) and measure it.

Runs INSIDE the peer's own virtual environment (bench/peers/setup.sh); needs only numpy, the
peer library and the standard library (psutil when installed, for process-tree RSS)::

    /work/peers/xtr-warp-rs/venv/bin/python bench/peers/run_peer.py --engine xtr-warp-rs \\
        --vectors bench/out/vectors/scifact-pca128 --out bench/out/peers/xtr-warp-rs.json

Every measurement runs in a fresh subprocess of the same interpreter with the thread-count
environment variables (OMP, MKL, OpenBLAS, RAYON, NUMBA, ...) set before anything is imported:

1. build  (``--build-threads``, default 2 = all cores): time, peak RSS, index size on disk.
2. latency (1 thread): load the index, warm up on ``--warmup`` queries, then every query alone,
   timed one by one -> p50 / p95 / mean ms; these top-k lists are the ``results``.
3. qps (``--qps-threads``, default 2): load again, warm up, then the whole query set as one batch
   (engines with a parallel batch API) or from N client threads (the others), repeated until
   ``--qps-min-seconds`` have passed -> queries per second.

Peak RSS is the process's own ru_maxrss and, with psutil, the sampled peak of its whole process
tree (every 20 ms); both include the Python interpreter, the engine's imports (torch...) and the
input vectors held in memory; ``rss_start_mb`` (after imports and loading the input) is there to
subtract. ``--params`` is a JSON object (one parameter set) or a list of objects (several sets;
the index is rebuilt only when a build parameter changes), merged over the engine's defaults.
If anything fails, the JSON records ``error`` (and the traceback) instead of stopping silently.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# engines/, measure.py, peer_input.py and phase.py sit next to this file; the measured phases
# re-run this file in child processes, which find them the same way
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from measure import (  # noqa: E402
    dir_bytes,
    dir_listing,
    log,
    percentile,
    quality,
)
from peer_input import load_vectors  # noqa: E402
from phase import child, run_phase  # noqa: E402

# ---------------------------------------------------------------------------- parent


def versions(engine: Any) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in [*engine.PACKAGES, "numpy", "psutil"]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def params_key(params: dict, keys: set[str]) -> str:
    build = {k: params[k] for k in sorted(keys) if k in params}
    return hashlib.sha1(json.dumps(build, sort_keys=True).encode()).hexdigest()[:10]


def one_set(
    args: argparse.Namespace, engine: Any, params: dict, data_facts: dict, built: dict[str, dict]
) -> dict[str, Any]:
    key = params_key(params, engine.BUILD_KEYS)
    index_dir = args.index_root / f"{args.engine}-{key}"
    out: dict[str, Any] = {
        "engine": args.engine,
        "version": None,
        "params": params,
        "index_dir": str(index_dir),
    }
    marker = index_dir / ".run_peer_build.json"
    if key in built:
        build = built[key]
        log(f"{args.engine}: reusing the index built for this parameter set ({index_dir})")
    elif args.reuse_index and marker.is_file():
        build = json.loads(marker.read_text())
        build["reused"] = True
        log(f"{args.engine}: --reuse-index: using {index_dir}")
    else:
        if index_dir.exists():
            shutil.rmtree(index_dir)
        index_dir.mkdir(parents=True)
        build = run_phase(args, "build", args.build_threads, params, index_dir)
        if "error" not in build:
            build["index_bytes"] = dir_bytes(index_dir)
            build["index_files"] = dir_listing(index_dir)
            marker.write_text(json.dumps(build))
    built[key] = build
    out["build"] = {k: v for k, v in build.items() if k not in ("index_files",)}
    out["index_files"] = build.get("index_files")
    out["build_s"] = build.get("build_s")
    out["build_threads"] = args.build_threads
    out["build_peak_rss_mb"] = build.get("peak_tree_rss_mb") or build.get("peak_rss_mb")
    ib = build.get("index_bytes")
    if params.get("mode") == "memory":
        ib = None
    out["index_bytes"] = ib
    out["index_mb"] = round(ib / 2**20, 2) if ib is not None else None
    out["bytes_per_token"] = round(ib / data_facts["n_doc_tokens"], 3) if ib else None
    # what a search needs, where the engine leaves more on disk (e.g. xtr-warp's pre-compaction
    # chunk files); equal to index_bytes otherwise
    sb, sb_note = ib, None
    if ib is not None and hasattr(engine, "search_bytes") and index_dir.is_dir():
        sb, sb_note = engine.search_bytes(index_dir)
    out["index_bytes_search"] = sb
    out["bytes_per_token_search"] = round(sb / data_facts["n_doc_tokens"], 3) if sb else None
    if sb_note:
        out["index_bytes_search_note"] = sb_note
    if "error" in build:
        out["error"] = f"build: {build['error']}"
        out["traceback"] = build.get("traceback")
        return out

    lat = run_phase(args, "latency", 1, params, index_dir)
    out["latency_run"] = {
        k: v for k, v in lat.items() if k not in ("latencies_ms", "cpu_latencies_ms", "hits")
    }
    if "error" in lat:
        out["error"] = f"latency: {lat['error']}"
        out["traceback"] = lat.get("traceback")
        return out
    ms = lat["latencies_ms"]
    out["search_peak_rss_mb"] = lat.get("peak_tree_rss_mb") or lat.get("peak_rss_mb")
    out["search_rss_start_mb"] = lat.get("rss_start_mb")
    out["search_rss_after_load_mb"] = lat.get("rss_after_load_mb")
    out["p50_ms"] = round(percentile(ms, 50), 3)
    out["p95_ms"] = round(percentile(ms, 95), 3)
    out["mean_ms"] = round(sum(ms) / len(ms), 3)
    out["max_ms"] = round(max(ms), 3)
    cms = lat.get("cpu_latencies_ms")
    if cms:  # process CPU time per query: robust to other load on the machine
        out["p50_cpu_ms"] = round(percentile(cms, 50), 3)
        out["p95_cpu_ms"] = round(percentile(cms, 95), 3)
    out["loadavg_during_latency"] = lat.get("loadavg_start")
    out["load_s"] = lat.get("load_s")

    if args.qps_threads > 0:
        qps = run_phase(args, "qps", args.qps_threads, params, index_dir)
        out["qps_run"] = qps
        if "error" in qps:
            out["qps_error"] = qps["error"]
        out[f"qps_{args.qps_threads}threads"] = qps.get("qps")
        out["qps_queries"] = args.qps_queries or len(lat["hits"])
        out["qps_cpu_ms_per_query"] = qps.get("cpu_ms_per_query")
        out["loadavg_during_qps"] = qps.get("loadavg_start")
        if args.qps_threads != 2:
            out.setdefault("qps_2threads", None)

    doc_ids, q_ids = data_facts["doc_ids"], data_facts["query_ids"]
    out["results"] = {
        q_ids[i]: [[doc_ids[d], round(s, 6)] for d, s in hits] for i, hits in enumerate(lat["hits"])
    }
    out["quality"] = quality(out["results"], data_facts["qrels"], args.k)
    return out


def parent(args: argparse.Namespace) -> int:
    import engines

    t0 = time.perf_counter()
    if args.engine not in engines.ENGINES:
        sys.exit(f"unknown engine {args.engine}; known: {', '.join(engines.ENGINES)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {
        "engine": args.engine,
        "vectors": str(args.vectors),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.executable,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "k": args.k,
    }
    try:
        engine = engines.get(args.engine)
        header["versions"] = versions(engine)
        header["version"] = header["versions"].get(engine.PACKAGES[0])
        header["defaults"] = engine.DEFAULTS
        header["notes"] = engine.NOTES
        user = json.loads(args.params) if args.params else {}
        sets = user if isinstance(user, list) else [user]
        all_params = []
        for s in sets:
            p = dict(engine.DEFAULTS)
            if "nbits" in p:
                p["nbits"] = args.nbits
            unknown = set(s) - set(p)
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) for {args.engine}: {sorted(unknown)}; known: {sorted(p)}"
                )
            p.update(s)
            all_params.append(p)
        data = load_vectors(args.vectors, args.limit_docs, args.limit_queries, with_docs=False)
        qrels_all = json.loads((args.vectors / "qrels.json").read_text())
        present = set(data["doc_ids"])
        facts = {
            "doc_ids": data["doc_ids"],
            "query_ids": data["query_ids"],
            "n_doc_tokens": data["n_doc_tokens"],
            "qrels": {
                q: {d: g for d, g in r.items() if d in present} for q, r in qrels_all.items()
            },
        }
        header.update(
            {
                "n_docs": data["n_docs"],
                "n_doc_tokens": data["n_doc_tokens"],
                "n_queries": len(data["queries"]),
                "dim": data["dim"],
                "vectors_meta": {
                    k: data["meta"].get(k) for k in ("dataset", "model", "dim", "pca")
                },
                "limit_docs": args.limit_docs or None,
                "limit_queries": args.limit_queries or None,
            }
        )
        del data
        log(
            f"{args.engine} {header['version']}: {header['n_docs']} docs, "
            f"{header['n_doc_tokens']} tokens, {header['n_queries']} queries, "
            f"{len(all_params)} parameter set(s); load average {os.getloadavg()[0]:.2f}"
        )
        built: dict[str, dict] = {}
        runs = [one_set(args, engine, p, facts, built) for p in all_params]
        for r in runs:
            r["version"] = header["version"]
    except Exception as exc:
        runs = [
            {
                "engine": args.engine,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        ]
    header["loadavg_end"] = list(os.getloadavg())
    header["total_s"] = round(time.perf_counter() - t0, 1)
    result = {**header, **runs[0]} if len(runs) == 1 else {**header, "runs": runs}
    args.out.write_text(json.dumps(result, indent=1))
    for r in runs:
        if "error" in r:
            log(f"{args.engine}: ERROR {r['error']}")
        else:
            log(
                f"{args.engine} {json.dumps({k: v for k, v in r['params'].items() if v is not None})}"  # noqa: E501
                f": build {r['build_s']}s peak {r['build_peak_rss_mb']} MB, index "
                f"{r['index_mb']} MB ({r['bytes_per_token']} B/token), p50 {r['p50_ms']} ms "
                f"p95 {r['p95_ms']} ms, QPS@{args.qps_threads} "
                f"{r.get(f'qps_{args.qps_threads}threads')}, nDCG@10 {r['quality']['ndcg@10']}"
            )
    log(f"wrote {args.out} ({header['total_s']}s)")
    return 1 if any("error" in r for r in runs) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--engine",
        required=True,
        help="fast-plaid, xtr-warp-rs, pylate-plaid, pylate-voyager, qdrant; or exact "
        "(exhaustive numpy MaxSim reference, any venv)",
    )
    p.add_argument("--vectors", type=Path, required=True, help="folder from make_vectors.py")
    p.add_argument("--out", type=Path, required=True, help="result JSON")
    p.add_argument(
        "--nbits",
        type=int,
        default=2,
        help="bits per residual dimension for PLAID/WARP engines (default 2)",
    )
    p.add_argument("--k", type=int, default=100, help="results per query (default 100)")
    p.add_argument(
        "--params",
        default=None,
        help="JSON object, or list of objects, overriding the engine's defaults",
    )
    p.add_argument("--limit-docs", type=int, default=0, help="only the first N documents")
    p.add_argument("--limit-queries", type=int, default=0, help="only the first N queries")
    p.add_argument(
        "--index-root",
        type=Path,
        default=Path("/work/peers/indexes"),
        help="where indexes are built (outside the repo; default /work/peers/indexes)",
    )
    p.add_argument(
        "--reuse-index",
        action="store_true",
        help="skip the build when an index with the same build parameters exists",
    )
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--qps-threads", type=int, default=2, help="0 skips the QPS run")
    p.add_argument("--warmup", type=int, default=10, help="queries run before timing")
    p.add_argument("--qps-min-seconds", type=float, default=10.0)
    p.add_argument("--qps-max-passes", type=int, default=5)
    p.add_argument(
        "--qps-queries",
        type=int,
        default=0,
        help="only the first N queries in the QPS run (0 = all; for slow engines)",
    )
    p.add_argument("--phase-timeout", type=float, default=3 * 3600)
    # internal: one measured phase in a child process
    p.add_argument("--phase", choices=["build", "latency", "qps"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--index-dir", help=argparse.SUPPRESS)
    p.add_argument("--params-json", help=argparse.SUPPRESS)
    p.add_argument("--phase-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        return child(args)
    args.index_root = args.index_root.resolve()
    args.vectors = args.vectors.resolve()
    if args.limit_docs:
        args.index_root = args.index_root / f"n{args.limit_docs}"
    args.index_root = args.index_root / args.vectors.name
    return parent(args)


if __name__ == "__main__":
    raise SystemExit(main())
