"""Run every ``colmax eval`` method on every BEIR folder and write docs/RESULTS.md.

    .venv/bin/python scripts/make_results.py                 # everything, resumable
    .venv/bin/python scripts/make_results.py --datasets scifact --methods bm25,colmax
    .venv/bin/python scripts/make_results.py --report-only   # rewrite RESULTS.md + plot

Runs go in-process through :func:`colmax.eval.runner.run_eval` (same code as the CLI), so
one process encodes each corpus once per encoder; each corpus's colmax index is kept in
``.cache/eval/<name>/`` and reused by later runs (rebuilt when the model changed). Finished
(dataset, method) pairs in ``docs/results/results.json`` are skipped unless ``--force``. A
folder beside ``--cross-from`` (default ``en``) also gets a cross-lingual run: its queries
against each sibling's corpus.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import time
import traceback
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHODS = [
    "bm25",
    "colmax",
    "colmax-exact",
    "biencoder",
    "maxsim-raw",
    "hybrid",
    "bm25>colmax",
    "biencoder>colmax",
]
COLMAX = ("colmax", "colmax-exact")
FIRST = ("cranfield", "xquad-r/en", "scifact")  # small / headline sets first


def find_sets(data_root: Path, cross_from: str) -> list[dict]:
    """(name, data_dir, queries_from) for every BEIR folder, plus the cross-lingual pairs."""
    folders = sorted(p.parent for p in data_root.rglob("corpus.jsonl"))
    sets = []
    for folder in folders:
        name = str(folder.relative_to(data_root))
        sets.append({"name": name, "data_dir": folder, "queries_from": None})
    for folder in folders:
        source = folder.parent / cross_from
        if folder.name != cross_from and source in folders:
            name = f"{source.relative_to(data_root)}->{folder.name}"
            sets.append({"name": name, "data_dir": folder, "queries_from": source})
    rank = {n: i for i, n in enumerate(FIRST)}
    return sorted(sets, key=lambda s: (s["queries_from"] is not None, rank.get(s["name"], 99)))


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": usable,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": dt.date.today().isoformat(),
    }


def load_results(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"machine": {}, "runs": {}, "index_build_s": {}}


def save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "eval")
    parser.add_argument("--datasets", default="", help="comma list of names (default all)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cross-from", default="en")
    parser.add_argument("--model", default=None)
    parser.add_argument("--force", action="store_true", help="rerun finished pairs")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = load_results(path)
    if args.report_only:
        write_report(results, args.out, ROOT / "docs" / "RESULTS.md")
        return 0
    from colmax.errors import ModelMismatchError
    from colmax.eval.runner import run_eval

    results["machine"] = machine()
    wanted = [d for d in args.datasets.split(",") if d]
    sets = [
        s for s in find_sets(args.data_root, args.cross_from) if not wanted or s["name"] in wanted
    ]
    methods = [m for m in args.methods.split(",") if m]
    failures = 0
    for spec in sets:
        corpus_slug = str(spec["data_dir"].relative_to(args.data_root)).replace("/", "_")
        index_dir = args.cache / corpus_slug / "index"
        for method in methods:
            key = f"{spec['name']}|{method}"
            if key in results["runs"] and not args.force:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {key} ...", flush=True)
            run = partial(
                run_eval, spec["data_dir"], method=method, model=args.model,
                index_dir=index_dir, queries_from=spec["queries_from"],
            )  # fmt: skip
            try:
                try:
                    row = run()
                except ModelMismatchError:  # the cached index is this script's: rebuild it
                    print(f"    {index_dir} holds another model's index; rebuilding", flush=True)
                    shutil.rmtree(index_dir)
                    row = run()
            except Exception:
                failures += 1
                traceback.print_exc()
                continue
            row["dataset"] = spec["name"]
            if method == "colmax" and not row.get("index_reused"):
                results["index_build_s"][corpus_slug] = row["encode_s"]
            row["index_build_s"] = results["index_build_s"].get(corpus_slug)
            results["runs"][key] = row
            save(path, results)
            print(
                f"    ndcg@10 {row['ndcg@10']:.4f}  recall@100 {row['recall@100']:.4f}  "
                f"encode {row['encode_s']:.1f}s  search {row['search_ms_per_query']:.1f} ms/q",
                flush=True,
            )
        write_report(results, args.out, ROOT / "docs" / "RESULTS.md")
    return 1 if failures else 0


# --------------------------------------------------------------------------- report

COLUMNS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
COMMANDS = """\
.venv/bin/pip install -c constraints.txt -e '.[eval,bench]'
.venv/bin/python scripts/make_results.py            # resumable; --force reruns
.venv/bin/colmax eval ../shared/data/scifact --method colmax \\
    --index-dir .cache/eval/scifact/index --json
.venv/bin/colmax eval ../shared/data/xquad-r/de \\
    --queries-from ../shared/data/xquad-r/en --method bm25
"""


def _fmt_s(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def write_report(results: dict, out_dir: Path, md_path: Path) -> None:
    """docs/RESULTS.md (one table per data set) and the nDCG@10-vs-latency plots."""
    runs = list(results["runs"].values())
    by_set: dict[str, list[dict]] = {}
    for row in runs:
        by_set.setdefault(row["dataset"], []).append(row)
    plots = _plots(by_set, out_dir)
    m = results.get("machine", {})
    colmax_runs = [r for r in results.get("runs", {}).values() if r.get("method") in COLMAX]
    used = {r.get("model") for r in colmax_runs if r.get("model")}
    models = ", ".join(f"`{name}`" for name in sorted(used)) or "the bundled default"
    if len(used) > 1:  # a partial rerun: say which sets each model's numbers come from
        sets_of = {name: sorted({r["dataset"] for r in colmax_runs if r.get("model") == name})
                   for name in sorted(used)}  # fmt: skip
        models = "; ".join(f"`{name}` on {', '.join(sets)}" for name, sets in sets_of.items())
    lines = [
        "# Retrieval results",
        "",
        "Made by `scripts/make_results.py` with `colmax eval` (numbers from "
        "`docs/results/results.json`). Metrics by ranx on each set's `test` qrels; graded "
        "relevance is the nDCG gain (linear, as trec_eval), rows with score <= 0 are judged "
        "non-relevant, and queries without qrels rows are skipped (as BEIR does).",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores usable, torch "
        f"{m.get('torch', '?')}, Python {m.get('python', '?')}, {m.get('os', '?')}; "
        f"run {m.get('date', '?')}. No GPU. Timings are wall-clock on a shared machine "
        "(another job may have run at the same time), so treat them as rough.",
        "",
        "Methods:",
        "",
        f"Model of the colmax methods: {models}.",
        "",
        "- `colmax`: the compressed colmax index (nbits 2, default search parameters, "
        "`search_many`); an index too small to train centroids on is searched exactly.",
        "- `colmax-exact`: brute-force `maxsim_ragged` over the model's uncompressed vectors.",
        "- `bm25`: bm25s, k1=0.9, b=0.4, title+text, lower-cased Unicode words; Han/kana/Thai "
        "runs as character unigrams+bigrams; no stemming or stop words.",
        "- `biencoder`: all-MiniLM-L6-v2, mean pooling, cosine, 256 tokens.",
        "- `maxsim-raw`: the same MiniLM's raw token vectors (no markers, no query padding, "
        "no projection) scored with MaxSim: untrained late interaction.",
        "- `hybrid`: BM25 top 100 + colmax top 100 fused by reciprocal rank fusion "
        "(k=60); `--fusion weighted` (min-max per query) exists but is not in these tables.",
        "- `bm25>colmax`, `biencoder>colmax`: first stage's top 100 reranked by colmax MaxSim "
        "(document vectors read from the index).",
        "",
        "Columns: `encode s` = corpus encoding / indexing time of that method (for colmax "
        "methods reusing the index, the time the index took to build, in brackets); `search "
        "ms/q` = all queries end to end (query encoding + scoring; two-stage and hybrid include "
        "their first stage) divided by the number of queries, queries run in batches.",
        "",
    ]
    for name, rows in by_set.items():
        first = rows[0]
        lines += [
            f"## {name}",
            "",
            f"{first['num_docs']:,} documents, {first['num_queries']:,} judged queries"
            + (f" (queries from `{first['queries_from']}`)" if first.get("queries_from") else "")
            + ".",
            "",
            "| method | " + " | ".join(COLUMNS) + " | encode s | search ms/q |",
            "| --- | " + " | ".join("---:" for _ in COLUMNS) + " | ---: | ---: |",
        ]
        for row in sorted(rows, key=lambda r: -r["ndcg@10"]):
            encode = _fmt_s(row["encode_s"])
            from_index = row.get("index_reused") or row.get("doc_vectors") == "index"
            if from_index and row.get("index_build_s") is not None:
                encode = f"({_fmt_s(row['index_build_s'])})"
            cells = " | ".join(f"{row[c]:.4f}" for c in COLUMNS)
            lines.append(
                f"| {row['method']} | {cells} | {encode} | {row['search_ms_per_query']:.1f} |"
            )
        if name in plots:
            lines += ["", f"![nDCG@10 vs search time, {name}](results/{plots[name]})"]
        lines.append("")
    lines += [
        "## Checks against published numbers",
        "",
        "- BM25 on SciFact: BEIR reports 0.665 nDCG@10 (Elasticsearch BM25); "
        "`shared/data/SOURCES.md` measured 0.660 with a plain `\\w+` BM25. Ours is in the "
        "SciFact table above.",
        "- all-MiniLM-L6-v2 bi-encoder on SciFact: MTEB lists 0.645 nDCG@10.",
        "- `colmax` (compressed) and `colmax-exact` score the same vectors: on an index too "
        "small to compress they must agree exactly; otherwise they differ by what compression "
        "changes, within noise here (about 1 point either way; docs/INDEX.md measures it).",
        "",
        "## How to reproduce",
        "",
        "```",
        COMMANDS.rstrip(),
        "```",
        "",
    ]
    md_path.write_text("\n".join(lines))


def _plots(by_set: dict[str, list[dict]], out_dir: Path) -> dict[str, str]:
    """One PNG per data set with at least three methods: nDCG@10 vs search ms/query."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing; no plots", flush=True)
        return {}
    made = {}
    for name, rows in by_set.items():
        if len(rows) < 3 or "->" in name:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, row in enumerate(sorted(rows, key=lambda r: r["search_ms_per_query"])):
            x = max(row["search_ms_per_query"], 0.01)
            ax.scatter(x, row["ndcg@10"], s=30)
            ax.annotate(
                row["method"],
                (x, row["ndcg@10"]),
                fontsize=8,
                xytext=(4, 3 if i % 2 else -10),
                textcoords="offset points",
            )
        ax.set_xscale("log")
        ax.set_xlabel("search ms per query (log, CPU)")
        ax.set_ylabel("nDCG@10")
        ax.set_title(f"{name}: quality vs search time")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        file = f"ndcg_vs_latency_{name.replace('/', '_')}.png"
        fig.savefig(out_dir / file, dpi=110)
        plt.close(fig)
        made[name] = file
    return made


if __name__ == "__main__":
    raise SystemExit(main())
