"""Search benchmark: colmax's compressed index against exact MaxSim and peer engines, on the
same token vectors, in one run.

    python bench/search.py                 # vectors, every engine, then the report
    python bench/search.py --only colmax   # re-run some engines, then the report
    python bench/search.py --report        # only rebuild docs/bench/search.{md,json}

Steps: ``bench/make_vectors.py`` writes SciFact's vectors (the bundled model's token vectors,
PCA to 128 dims) once; ``bench/peers/run_peer.py`` builds and measures each engine in its own
subprocesses (build time and peak RSS, index size, p50/p95 latency on 1 thread, QPS on 2
threads, top-100 per query): colmax at nbits 1, 2 and 4, each with and without exact
re-scoring, in this venv; exact brute-force MaxSim; and each peer in the venv that
``bench/peers/setup.sh`` made for it (an engine without a venv is reported as missing). The
report adds nDCG@10 on SciFact test, overlap@10 with the exact ranking, and end-to-end latency:
search p50 plus the p50 of encoding one query with colmax's encoder (the same for every engine,
since they all search the same vectors).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
sys.path.insert(0, str(PEERS))

VECTORS = REPO / "bench" / "out" / "vectors" / "scifact-pca128"
RESULTS = REPO / "bench" / "out" / "peers"
DOCS = REPO / "docs" / "bench"
PEERS_ROOT = Path(os.environ.get("PEERS_ROOT", "/work/peers"))

COLMAX_RUNS = {
    f"colmax-nbits{b}": ["--nbits", str(b), "--params", '[{}, {"rescore": true}]'] for b in (1, 4)
}
# nbits 2, the default, also with fewer probes (the default for k=100 is 32 per query token)
COLMAX_RUNS["colmax-nbits2"] = [
    "--nbits", "2", "--params", '[{}, {"rescore": true}, {"nprobe": 16}, {"nprobe": 8}]'
]  # fmt: skip
# peer -> (venv name, extra run_peer.py arguments); the same choices as bench/peers/run_all.sh
PEER_RUNS = {
    "exact": ("qdrant", []),
    "xtr-warp-rs": ("xtr-warp-rs", ["--nbits", "2"]),
    "fast-plaid": ("fast-plaid", ["--nbits", "2"]),
    "pylate-plaid": ("pylate", ["--nbits", "2"]),
    "pylate-voyager": (
        "pylate",
        ["--params", '[{"cache_mappings": true}]', "--qps-queries", "100"],
    ),
    "qdrant": ("qdrant", ["--qps-queries", "30"]),
}


def run_engine(name: str, reuse_peer_index: bool = False) -> None:
    if name in COLMAX_RUNS:
        python, engine, extra = sys.executable, "colmax", COLMAX_RUNS[name]
    else:
        venv, extra = PEER_RUNS[name]
        if reuse_peer_index and name != "exact":
            extra = [*extra, "--reuse-index"]
        python, engine = str(PEERS_ROOT / venv / "venv" / "bin" / "python"), name
        if not Path(python).exists():
            (RESULTS / f"{name}.json").write_text(
                json.dumps({"engine": name, "error": f"no venv at {python}; run setup.sh"})
            )
            return
    print(f"=== {name} ({time.strftime('%H:%M:%S')}, load {os.getloadavg()[0]:.2f})", flush=True)
    cmd = [python, str(PEERS / "run_peer.py"), "--engine", engine, "--vectors", str(VECTORS),
           "--out", str(RESULTS / f"{name}.json"), *extra]  # fmt: skip
    subprocess.run(cmd, check=False)


def query_encode_ms() -> dict:
    """p50 / p95 of encoding one SciFact query with colmax's encoder on 1 thread, plus the PCA."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from colmax import Encoder

    qrels = json.loads((VECTORS / "qrels.json").read_text())
    texts = {}
    with open(REPO.parent / "shared" / "data" / "scifact" / "queries.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            if row["_id"] in qrels:
                texts[row["_id"]] = row["text"]
    components = np.load(VECTORS / "pca_components.npy")
    model = json.loads((VECTORS / "meta.json").read_text())["model"]["name"]
    enc = Encoder.load(model, threads=1)  # the model that made the vectors
    times = []
    for i, text in enumerate(texts.values()):
        start = time.perf_counter()
        v = enc.encode_queries([text])[0].astype(np.float32) @ components.T
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - start)
    ms = 1000 * np.array(times)
    return {
        "p50_ms": round(float(np.median(ms)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def _runs(data: dict) -> list[dict]:
    if "runs" in data:
        return [{**data, **r} for r in data["runs"]]
    return [data]


def overlap_at_10(results: dict, exact: dict) -> float | None:
    if not results or not exact:
        return None
    shares = []
    for qid, hits in exact.items():
        truth = {d for d, _ in hits[:10]}
        got = {d for d, _ in results.get(qid, [])[:10]}
        shares.append(len(truth & got) / max(1, len(truth)))
    return sum(shares) / len(shares)


def report(encode: dict) -> None:
    rows = []
    exact_results: dict = {}
    files = sorted(RESULTS.glob("*.json"))
    loaded = {f.stem: json.loads(f.read_text()) for f in files}
    if "exact" in loaded and "results" in loaded["exact"]:
        exact_results = loaded["exact"]["results"]
    for name, data in loaded.items():
        for r in _runs(data):
            if "error" in r:
                rows.append({"engine": name, "error": r["error"][:200]})
                continue
            params = {k: v for k, v in r.get("params", {}).items() if v not in (None, False)}
            rows.append({
                "engine": name, "version": r.get("version"), "params": params,
                "build_s": r.get("build_s"), "build_peak_rss_mb": r.get("build_peak_rss_mb"),
                "build_start_rss_mb": (r.get("build") or {}).get("rss_start_mb"),
                "build_reused": bool((r.get("build") or {}).get("reused")),
                "build_load": ((r.get("build") or {}).get("loadavg_end") or [None])[0],
                "index_mb": r.get("index_mb"), "bytes_per_token": r.get("bytes_per_token"),
                "p50_ms": r.get("p50_ms"), "p95_ms": r.get("p95_ms"),
                "qps_2threads": r.get("qps_2threads"),
                "search_peak_rss_mb": r.get("search_peak_rss_mb"),
                "search_extra_rss_mb": (r["search_peak_rss_mb"] - r["search_rss_start_mb"])
                if r.get("search_peak_rss_mb") and r.get("search_rss_start_mb") else None,
                "ndcg@10": r.get("quality", {}).get("ndcg@10"),
                "overlap@10": overlap_at_10(r.get("results", {}), exact_results),
                "e2e_p50_ms": (r["p50_ms"] + encode["p50_ms"]) if r.get("p50_ms") else None,
                "loadavg": r.get("loadavg_end") or data.get("loadavg_end"),
            })  # fmt: skip
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "search.json").write_text(
        json.dumps({"query_encode": encode, "rows": rows}, indent=1) + "\n"
    )
    (DOCS / "search.md").write_text(render(rows, encode))
    print(render(rows, encode))


def _fmt(v: object, spec: str = "") -> str:
    return "" if v is None else format(v, spec)


def render(rows: list[dict], encode: dict) -> str:
    ok = [r for r in rows if "error" not in r]
    ok.sort(key=lambda r: (r["engine"] != "exact", -(r.get("qps_2threads") or 0)))
    exact = next((r for r in ok if r["engine"] == "exact"), None)
    lines = [
        "# Search benchmark: colmax vs exact MaxSim and peers, same vectors",
        "",
        "`python bench/search.py`: SciFact test (300 queries, 5,183 documents), the bundled "
        "model's token vectors reduced to 128 dims by PCA (1.48M document tokens); every engine "
        "indexes exactly these vectors, each in its own subprocesses, one after the other, on a "
        "2-core CPU. p50/p95: one query at a time on 1 thread; QPS: 2 threads; top 100 per "
        "query. Build: 2 threads. search +RSS: peak RSS of the 1-thread search process minus "
        "its RSS after imports and reading the query vectors (index load + search). "
        "overlap@10: share of the exact top 10 found. End-to-end adds "
        f"the query encoding p50 ({encode['p50_ms']:.1f} ms, colmax's encoder on 1 thread) to "
        "the search p50. load: the 1-minute load average when the engine's run ended (2 cores; "
        "above 2 means other work shared the CPU and every time in that row is inflated); "
        "build load: the same at the end of the build. Build start MB: RSS after imports and "
        "input, before building (the peers get the input as float32 arrays in memory, 760 MB; "
        "colmax streams it from disk, as its API allows). A build marked * was measured in an "
        "earlier run of this script (`--reuse-peer-indexes`: a peer's multi-minute build is not "
        "repeated); its build load says how busy the machine was then.",
        "",
        "| engine | params | nDCG@10 | overlap@10 | p50 ms | p95 ms | QPS (2 thr) | vs exact "
        "| e2e p50 ms | build s | build peak RSS MB | build start MB | build load | index MB "
        "| B/token | search +RSS MB | load |",
        "| --- | --- |" + " ---: |" * 15,
    ]
    for r in ok:
        speedup = exact["p50_ms"] / r["p50_ms"] if exact and r.get("p50_ms") else None
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        lines.append(
            f"| {r['engine']} {r.get('version') or ''} | {params} | {_fmt(r['ndcg@10'], '.4f')} "
            f"| {_fmt(r['overlap@10'], '.3f')} | {_fmt(r['p50_ms'], '.2f')} "
            f"| {_fmt(r['p95_ms'], '.2f')} | {_fmt(r['qps_2threads'], ',.0f')} "
            f"| {_fmt(speedup, '.0f')}x | {_fmt(r['e2e_p50_ms'], '.1f')} "
            f"| {_fmt(r['build_s'], '.0f')}{'*' if r.get('build_reused') else ''} "
            f"| {_fmt(r['build_peak_rss_mb'], ',.0f')} "
            f"| {_fmt(r.get('build_start_rss_mb'), ',.0f')} "
            f"| {_fmt(r.get('build_load'), '.1f')} | {_fmt(r['index_mb'], ',.1f')} "
            f"| {_fmt(r['bytes_per_token'], '.1f')} | {_fmt(r['search_extra_rss_mb'], ',.0f')} "
            f"| {_fmt((r.get('loadavg') or [None])[0], '.1f')} |"
        )
    failed = [r for r in rows if "error" in r]
    if failed:
        lines += ["", "Not measured:", ""]
        lines += [f"- {r['engine']}: {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--only", nargs="*", help="engines to (re)run: " + ", ".join([*COLMAX_RUNS, *PEER_RUNS])
    )
    p.add_argument("--report", action="store_true", help="only rebuild the report")
    p.add_argument(
        "--reuse-peer-indexes",
        action="store_true",
        help="peers: search an index an earlier run built with the same parameters, reporting "
        "that run's build time and memory (colmax and exact always rebuild)",
    )
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if not (VECTORS / "doc_vectors.npy").exists():
            subprocess.run([sys.executable, str(REPO / "bench" / "make_vectors.py")], check=True)
        for name in args.only or [*PEER_RUNS, *COLMAX_RUNS]:
            run_engine(name, args.reuse_peer_indexes)
    report(query_encode_ms())


if __name__ == "__main__":
    main()
