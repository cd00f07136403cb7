"""How run_peer.py takes and scores its measurements: resident memory (the process's own and
its process tree's sampled peak), index size on disk, latency percentiles and retrieval quality.

Runs inside each peer's own virtual environment: only the standard library (psutil when
installed, for process-tree RSS).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from pathlib import Path

# ---------------------------------------------------------------------------- memory


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def maxrss_mb() -> dict[str, float]:
    import resource

    factor = 1024 if sys.platform != "darwin" else 1024 * 1024
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / factor,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / factor,
    }


class TreeRss:
    """Samples the RSS of this process and its descendants (psutil) every ``period`` s."""

    def __init__(self, period: float = 0.02) -> None:
        self.peak = 0.0
        self.available = False
        self._stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process()
            self.available = True
        except ImportError:
            return
        self._thread = threading.Thread(target=self._run, args=(period,), daemon=True)
        self._thread.start()

    def _sample(self) -> float:
        total = 0
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
        except Exception:
            procs = [self._proc]
        for p in procs:
            with contextlib.suppress(Exception):
                total += p.memory_info().rss
        return total / 2**20

    def _run(self, period: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(period)

    def reset(self) -> None:
        if self.available:
            self.peak = self._sample()

    def stop(self) -> float | None:
        if not self.available:
            return None
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())
        return round(self.peak, 1)


# ---------------------------------------------------------------------------- disk


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def dir_listing(path: Path) -> dict[str, int]:
    out = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            out[str(p.relative_to(path))] = p.stat().st_size
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:25])


# ---------------------------------------------------------------------------- scores


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def quality(results: dict[str, list], qrels: dict[str, dict[str, int]], k: int) -> dict:
    """nDCG@10 (linear graded gain, BEIR-style) and recall@{10,k} over the judged queries."""
    ndcgs, r10, rk = [], [], []
    for qid, hits in results.items():
        rel = {d: g for d, g in qrels.get(qid, {}).items() if g > 0}
        if not rel:
            continue
        ranked = [d for d, _ in hits]
        dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
        ideal = sorted(rel.values(), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcgs.append(dcg / idcg)
        r10.append(len(set(ranked[:10]) & set(rel)) / len(rel))
        rk.append(len(set(ranked[:k]) & set(rel)) / len(rel))
    n = len(ndcgs)
    return {
        "queries": n,
        "ndcg@10": round(sum(ndcgs) / n, 5) if n else None,
        "recall@10": round(sum(r10) / n, 5) if n else None,
        f"recall@{k}": round(sum(rk) / n, 5) if n else None,
        "note": "over the queries judged relevant in qrels.json (restricted to the documents "
        "searched when --limit-docs is used); computed by run_peer.py",
    }


def log(msg: str) -> None:
    print(f"[run_peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
