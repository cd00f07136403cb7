"""Helpers shared by the scripts in ``bench/``: the benchmark texts and a machine description.

Run the scripts from the repository root (``python bench/<name>.py``); Python then puts
``bench/`` on ``sys.path`` and ``import _common`` finds this file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "scifact"


@dataclass
class BenchTexts:
    """Documents and queries for a benchmark, with where they came from."""

    documents: list[str]
    queries: list[str]
    source: str


def load_texts(data: Path | None, n_docs: int, n_queries: int) -> BenchTexts:
    """The first ``n_docs`` documents (title + " " + text) and ``n_queries`` queries.

    From a BEIR-style folder (``corpus.jsonl``, ``queries.jsonl``; SciFact by default); when it
    is missing, from the standard-library docstring corpus of ``colmax.demo``.
    """
    folder = Path(data) if data is not None else DEFAULT_DATA
    corpus = folder / "corpus.jsonl"
    if corpus.is_file():
        docs = [_join(row) for row in _read_jsonl(corpus, n_docs)]
        queries_file = folder / "queries.jsonl"
        queries = (
            [str(row["text"]) for row in _read_jsonl(queries_file, n_queries)]
            if queries_file.is_file()
            else []
        )
        if not queries:
            queries = _queries_from_documents(docs, n_queries)
        return BenchTexts(docs, queries, f"{folder.name} ({corpus})")
    return _stdlib_texts(n_docs, n_queries, missing=corpus)


def _stdlib_texts(n_docs: int, n_queries: int, missing: Path) -> BenchTexts:
    try:
        from colmax.demo import DEMO_QUERIES, stdlib_corpus
    except ImportError as exc:
        sys.exit(
            f"benchmark data not found: {missing} does not exist, and the fallback corpus "
            f"(colmax.demo.stdlib_corpus) cannot be imported ({exc}). Pass --data with a folder "
            "holding corpus.jsonl (+ queries.jsonl), e.g. BEIR SciFact."
        )
    print(f"note: {missing} not found; using the stdlib-docstring corpus instead", file=sys.stderr)
    docs = [_join(row) for row in stdlib_corpus(limit=n_docs)][:n_docs]
    queries = list(DEMO_QUERIES)[:n_queries]
    queries += _queries_from_documents(docs, n_queries - len(queries))
    return BenchTexts(docs, queries, "colmax.demo.stdlib_corpus (SciFact not found)")


def _read_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def _join(row: dict[str, Any]) -> str:
    title = str(row.get("title") or "").strip()
    text = str(row.get("text") or "").strip()
    return f"{title} {text}".strip()


def _queries_from_documents(docs: list[str], n: int) -> list[str]:
    """Stand-in queries: the first dozen words of documents, cycling if there are few."""
    if n <= 0 or not docs:
        return []
    return [" ".join(docs[i % len(docs)].split()[:12]) for i in range(n)]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(
    wanted: tuple[str, ...] = ("avx512f", "avx512_bf16", "amx_bf16", "amx_int8"),
) -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in wanted if f in flags]
    return []


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """CPU, cores, library versions and the date, for a results file."""
    import numpy as np
    import torch

    usable = usable_cores()
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for name in ("transformers", "tokenizers", "onnxruntime"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = None
    try:
        import subprocess

        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        info["git_commit"] = rev.stdout.strip() or None
    except OSError:
        info["git_commit"] = None
    return info


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load average (other processes competing for the cores)."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMonitor:
    """Measures how much CPU *other* processes used while a block ran.

    ``others`` is their CPU time as a share of the machine's capacity over the block (0 = this
    process had the machine to itself, 0.5 on 2 cores = another process kept one core busy).
    """

    def __init__(self) -> None:
        self.others: float | None = None

    def __enter__(self) -> CpuMonitor:
        self._jiffies = _busy_jiffies()
        self._own = _own_cpu_s()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _busy_jiffies()
        if self._jiffies is None or end is None:
            return
        hz = os.sysconf("SC_CLK_TCK")
        busy_s = (end[0] - self._jiffies[0]) / hz
        capacity_s = (end[1] - self._jiffies[1]) / hz
        own_s = _own_cpu_s() - self._own
        if capacity_s > 0:
            self.others = max(0.0, (busy_s - own_s) / capacity_s)


def wait_for_quiet(max_wait_s: float, threshold: float = 0.1, window_s: float = 1.0) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under ``threshold`` of the CPUs.

    Returns the seconds waited. Use before timing on a machine shared with other work.
    """
    start = time.perf_counter()
    while True:
        with CpuMonitor() as monitor:
            time.sleep(window_s)
        if monitor.others is None or monitor.others < threshold:
            break
        if time.perf_counter() - start >= max_wait_s:
            break
    return time.perf_counter() - start
