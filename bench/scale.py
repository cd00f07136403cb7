"""How colmax's compressed index scales: build time, peak memory, size and latency at 10k, 100k
and 1M synthetic documents.

The data is clustered random unit vectors (dim 128): 16,384 "word" directions; a document
draws 8-24 tokens (mean 16) around words of a few topics, with noise. Queries are 8 noisy
tokens of a random document (that document is the query's target, for a sanity recall@10).
Everything is generated from a seed, chunk by chunk, so the generator never holds the corpus.

Each size runs in fresh subprocesses: a build (documents added in batches of 100k, as a
streaming ingest would; centroids re-trained automatically as the index grows 4x) and a
search (open from disk, 200 queries one at a time on 1 thread). Peak RSS is the child's
ru_maxrss; ``rss_base_mb`` is the same process after imports, so the difference is what the
index work itself cost.

    python bench/scale.py                       # 10k, 100k, 1M -> docs/bench/scale.{md,json}
    python bench/scale.py --sizes 10000 --out /tmp/scale   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIM = 128
WORDS = 16384
ADD_BATCH = 100_000
QUERIES = 200


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonPeak:
    """Samples the process's anonymous RSS (``RssAnon``: heap and arrays, not the memory-mapped
    index files, whose pages the kernel can drop) every 0.2 s; ``peak_mb`` is the highest."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                text = Path("/proc/self/status").read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("RssAnon:"):
                    self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def _generator(seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    words = rng.standard_normal((WORDS, DIM)).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    topics = rng.integers(0, WORDS, size=(2048, 64))  # each topic: 64 related words
    return words, topics


def documents(n_docs: int, seed: int = 0, start: int = 0, count: int | None = None):
    """Yield ``(id, vectors)`` for documents ``start .. start + count`` (deterministic per id)."""
    import numpy as np

    words, topics = _generator(seed)
    stop = n_docs if count is None else min(n_docs, start + count)
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        topic = topics[rng.integers(0, len(topics), size=2)].ravel()
        n = int(rng.integers(8, 25))
        picks = words[rng.choice(topic, size=n)]
        v = picks + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM) * 4
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        yield f"doc{i}", v.astype(np.float16)


def queries(n_docs: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng([seed, 10**9])
    targets = rng.choice(n_docs, size=QUERIES, replace=False)
    out = []
    for t in targets:
        _, v = next(documents(n_docs, seed, int(t), 1))
        v = v.astype(np.float32)
        take = v[rng.choice(len(v), size=min(8, len(v)), replace=False)]
        take = take + 0.02 * rng.standard_normal(take.shape).astype(np.float32)
        out.append((f"doc{t}", take / np.linalg.norm(take, axis=1, keepdims=True)))
    return out


def child_build(path: Path, n_docs: int, nbits: int) -> dict:
    from colmax.index import Index

    base = _rss_mb()
    anon = AnonPeak()
    start = time.perf_counter()
    # the bundled model recorded by name (its weights are never loaded: nothing is encoded)
    with Index.create(path, None, dim=DIM, nbits=nbits) as idx:
        for lo in range(0, n_docs, ADD_BATCH):
            count = min(ADD_BATCH, n_docs - lo)
            records = [{"id": f"doc{i}", "text": f"doc{i}"} for i in range(lo, lo + count)]
            vectors = (v for _, v in documents(n_docs, start=lo, count=count))  # streamed
            idx.add(records, vectors=vectors, batch_size=4096)
            print(f"  added {lo + count:,} docs, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
        info = idx.info()
    return {"build_s": time.perf_counter() - start, "rss_base_mb": base,
            "build_peak_rss_mb": _rss_mb(), "build_peak_anon_mb": anon.stop(),
            "info": info}  # fmt: skip


def child_search(path: Path, n_docs: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from colmax.index import Index

    qs = queries(n_docs)
    base = _rss_mb()
    with Index.open(path, readonly=True) as idx:  # the model would load only to encode text
        for _, q in qs[:10]:  # warm-up: compile kernels, fault in the maps
            idx.search_vectors(q, k=10, with_text=False)
        times, found = [], 0
        for target, q in qs:
            t = time.perf_counter()
            hits = idx.search_vectors(q, k=10, with_text=False)
            times.append(time.perf_counter() - t)
            found += target in {h.id for h in hits}
    ms = 1000 * np.array(times)
    return {"rss_base_mb": base, "search_peak_rss_mb": _rss_mb(),
            "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "target_recall_at_10": found / len(qs)}  # fmt: skip


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True
    )
    sys.stderr.write(proc.stderr[-3000:])
    if proc.returncode:
        raise SystemExit(f"child {args} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render(rows: list[dict]) -> str:
    lines = [
        "# Scale: build, memory, size and latency on synthetic data",
        "",
        "`python bench/scale.py` (2-core CPU, 1 search thread; the build uses both cores). "
        "Synthetic clustered unit vectors, dim 128, 8-24 tokens per document (mean 16), nbits 2, "
        "default build and search settings; documents added in batches of 100k. RSS figures are "
        "peaks of the whole process, `base` is the same process after its imports; anon: the "
        "peak of its anonymous memory alone (RssAnon, sampled every 0.2 s), i.e. without the "
        "pages of memory-mapped index files and libraries that RSS also counts.",
        "",
        "| documents | tokens | centroids | build s | tokens/s | build peak RSS MB (base) "
        "| build peak anon MB "
        "| index MB | B/token | search p50 ms | p95 ms | search peak RSS MB (base) "
        "| target in top 10 |",
        "|" + " ---: |" * 13,
    ]
    for r in rows:
        info = r["build"]["info"]
        b, s = r["build"], r["search"]
        lines.append(
            f"| {r['docs']:,} | {info['tokens']:,} | {info['centroids']:,} | {b['build_s']:.0f} "
            f"| {info['tokens'] / b['build_s']:,.0f} "
            f"| {b['build_peak_rss_mb']:,.0f} ({b['rss_base_mb']:,.0f}) "
            f"| {b.get('build_peak_anon_mb', 0):,.0f} "
            f"| {info['index_bytes'] / 1e6:,.1f} | {info['bytes_per_token']:.1f} "
            f"| {s['p50_ms']:.2f} | {s['p95_ms']:.2f} "
            f"| {s['search_peak_rss_mb']:,.0f} ({s['rss_base_mb']:,.0f}) "
            f"| {s['target_recall_at_10']:.2f} |"
        )
    if len(rows) > 1:
        a, z = rows[0], rows[-1]
        growth = z["docs"] / a["docs"]
        lines += [
            "",
            f"From {a['docs']:,} to {z['docs']:,} documents ({growth:,.0f}x): build time x"
            f"{z['build']['build_s'] / a['build']['build_s']:.1f}, build peak RSS x"
            f"{z['build']['build_peak_rss_mb'] / a['build']['build_peak_rss_mb']:.2f}, search p50 x"
            f"{z['search']['p50_ms'] / a['search']['p50_ms']:.1f}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--nbits", type=int, default=2)
    p.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "scale")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "bench")
    p.add_argument("--child", choices=["build", "search"], help=argparse.SUPPRESS)
    p.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--docs", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "build":
        print(json.dumps(child_build(args.path, args.docs, args.nbits)))
        return
    if args.child == "search":
        print(json.dumps(child_search(args.path, args.docs)))
        return
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.sizes.split(",")):
        path = args.work / f"n{size}"
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"{size:,} documents: building", file=sys.stderr, flush=True)
        build = run_child(["--child", "build", "--path", str(path), "--docs", str(size),
                           "--nbits", str(args.nbits)])  # fmt: skip
        print(f"{size:,} documents: searching", file=sys.stderr, flush=True)
        search = run_child(["--child", "search", "--path", str(path), "--docs", str(size)])
        rows.append({"docs": size, "build": build, "search": search,
                     "loadavg": os.getloadavg()})  # fmt: skip
        (args.out / "scale.json").write_text(json.dumps(rows, indent=1))
        (args.out / "scale.md").write_text(render(rows))
        print(render(rows), flush=True)


if __name__ == "__main__":
    main()
