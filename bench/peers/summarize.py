"""One markdown table from run_peer.py result files (standard library only).

python3 bench/peers/summarize.py [bench/out/peers/*.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

COLS = [
    ("engine", "engine"),
    ("version", "version"),
    ("set", "params"),
    ("build_s", "build s"),
    ("build_peak_rss_mb", "build peak MB"),
    ("index_mb", "index MB"),
    ("bytes_per_token", "B/token"),
    ("bytes_per_token_search", "B/token (search)"),
    ("search_peak_rss_mb", "search peak MB"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p50_cpu_ms", "p50 CPU ms"),
    ("qps_2threads", "QPS@2"),
    ("qps_cpu_ms_per_query", "CPU ms/q @2"),
    ("ndcg@10", "nDCG@10"),
    ("recall@100", "R@100"),
    ("load", "load (lat)"),
    ("error", "error"),
]


def rows(path: Path) -> list[dict]:
    d = json.loads(path.read_text())
    runs = d.get("runs") or [d]
    out = []
    for r in runs:
        row = {**{k: v for k, v in d.items() if k != "runs"}, **r}
        q = row.get("quality") or {}
        row["ndcg@10"] = q.get("ndcg@10")
        row["recall@100"] = q.get(f"recall@{row.get('k', 100)}")
        lat = row.get("latency_run") or {}
        if row.get("p50_cpu_ms") is None and lat.get("cpu_latencies_ms"):
            row["p50_cpu_ms"] = round(statistics.median(lat["cpu_latencies_ms"]), 3)
        qps = row.get("qps_run") or {}
        if row.get("qps_cpu_ms_per_query") is None:
            row["qps_cpu_ms_per_query"] = qps.get("cpu_ms_per_query")
        la = row.get("loadavg_during_latency") or lat.get("loadavg_start")
        row["load"] = round(la[0], 1) if la else None
        if row.get("bytes_per_token_search") is None:
            row["bytes_per_token_search"] = row.get("bytes_per_token")
        defaults = d.get("defaults") or {}
        changed = {k: v for k, v in (row.get("params") or {}).items() if defaults.get(k) != v}
        row["set"] = json.dumps(changed, separators=(",", ":")) if len(runs) > 1 or changed else ""
        if row.get("error"):
            row["error"] = str(row["error"])[:80]
        out.append(row)
    return out


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(Path("bench/out/peers").glob("*.json"))
    table = [r for p in paths for r in rows(p)]
    print("| " + " | ".join(h for _, h in COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in table:
        cells = []
        for key, _ in COLS:
            v = r.get(key)
            cells.append("" if v is None else f"{v:g}" if isinstance(v, float) else str(v))
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
