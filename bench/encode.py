"""Encoder throughput and latency: colmax's ``Encoder`` against a plain transformers forward.

Run from the repository root::

    .venv/bin/python bench/encode.py --docs 160 --queries 200 --threads 1,2

What is measured, at each ``--threads`` value (``torch.set_num_threads``; ONNX Runtime gets
the same number of intra-op threads):

* **Documents.** The first ``--docs`` documents of BEIR SciFact (title + " " + text), tokenized
  the colmax way (``[CLS] [D] … [SEP]``, cut at ``encoder.config.document_length``), encoded end
  to end (tokenization included) into float16 token vectors with punctuation vectors dropped.
  Reported: documents/s and real (non-padding) tokens/s, best of ``--repeats`` runs after a
  warm-up, and the speed-up over the baseline at the same thread count.
* **baseline.** What a plain user writes: ``transformers.AutoModel`` loaded from the same
  backbone folder, fp32, ``torch.no_grad()``, batches of 32 in input order padded to each
  batch's longest text, then the same linear projection + L2 normalisation. Same token ids.
* **colmax variants.** ``Encoder`` with precision fp32 and bf16 (autocast), batch sizes 8-64,
  the backbone's weights cast to bfloat16 once instead of autocast (``bf16w``: not an
  ``Encoder`` option, built here to see whether it should be one), ``torch.no_grad``
  instead of the encoder's ``inference_mode``, int8 dynamic quantisation of
  the backbone's Linear layers (``torch.ao.quantization.quantize_dynamic``), and the backbone
  exported to ONNX and run by ONNX Runtime in fp32 and int8 (skipped when ``onnxruntime`` /
  ``onnx`` are not installed). Every variant goes through ``Encoder`` itself (length-sorted
  batches, same post-processing), so only the backbone's execution differs.
* **Quality** of each variant against colmax fp32 (batch 32): the cosine between corresponding
  token vectors (documents and queries; mean and minimum) and the largest absolute difference
  of MaxSim scores over a grid of ``--maxsim-queries`` x ``--maxsim-docs`` pairs.
* **Query latency.** ``encode_queries([q])`` one query at a time for ``--latency-queries``
  queries after warm-up: p50 / p95 in milliseconds. Also batched queries/s.

Results go to ``docs/bench/encode.json`` and ``docs/bench/encode.md``.

The variants are built in ``bench/encode_backends.py``, timed and compared with
``bench/encode_measure.py`` and written up by ``bench/encode_report.py``; this file holds the
command line and the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    REPO_ROOT,
    BenchTexts,
    load_average,
    load_texts,
    machine_info,
    wait_for_quiet,
)
from encode_backends import SPECS, Models, Runner, Spec, build_runner
from encode_measure import (
    _contended,
    allowed_others,
    padding_share,
    quality,
    query_latency,
    time_documents,
)
from encode_report import write_markdown

from colmax.encoder import tokenize as tok
from colmax.encoder.encoder import Encoder

# --------------------------------------------------------------------------- the run


def run_benchmark(args: argparse.Namespace, texts: BenchTexts) -> dict[str, Any]:
    """Measure every selected variant at every thread count, saving after each one.

    With ``--resume``, rows of an earlier run (same data and model) that did not run
    contended are kept and only the missing or contended ones are measured again.
    """
    logging.getLogger("colmax").setLevel(logging.ERROR)  # truncation notices, once per call
    thread_counts = [int(t) for t in args.threads.split(",")]
    wanted = set(args.variants.split(",")) if args.variants else None
    specs = [s for s in SPECS if wanted is None or s.name in wanted]
    if wanted and (unknown := wanted - {s.name for s in SPECS}):
        sys.exit(f"unknown variants: {sorted(unknown)}; known: {[s.name for s in SPECS]}")

    base = Encoder.load(None, threads=max(thread_counts), precision="fp32", batch_size=32)
    auto = Encoder(base.model, base.tokenizer, base.config, base.identity, precision="auto")
    ids = tok.special_ids(base.tokenizer, base.config)
    batch = tok.tokenize_documents(base.tokenizer, texts.documents, base.config, ids)
    lengths = [len(x) for x in batch.input_ids]
    real_tokens = sum(lengths)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "runs": [],
        "data": {
            "source": texts.source,
            "documents": len(texts.documents),
            "queries": len(texts.queries),
            "document_tokens": real_tokens,
            "document_tokens_mean": real_tokens / len(lengths),
            "documents_cut": batch.truncated,
            "document_length": base.config.document_length,
            "query_length": base.config.query_length,
            "padding_share_unsorted_b32": padding_share(lengths, 32, sort=False),
            "padding_share_sorted_b32": padding_share(lengths, 32, sort=True),
        },
        "model": base.describe(),
        "auto_precision": "bf16" if auto.use_bf16 else "fp32",
        "default_threads": auto.threads,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": [],
        "skipped": {},
        "partial": True,
    }
    kept = previous_rows(args, report) if args.resume else []
    earlier = json.loads(args.json.read_text(encoding="utf-8")) if kept else {}
    report["runs"] = earlier.get("runs", [])
    report["notes"] = earlier.get("notes", [])
    report["runs"].append(
        {
            "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
            "date": report["machine"]["date"],
            "measured": [],
        }
    )
    report["results"] = kept
    done = {(r["variant"], r["threads"]) for r in kept}
    print(
        f"{len(texts.documents)} documents, {real_tokens} tokens "
        f"(mean {real_tokens / len(lengths):.0f}, cut at {base.config.document_length}); "
        f"{len(texts.queries)} queries; auto precision -> {report['auto_precision']}; "
        f"{len(kept)} rows kept from {args.json}",
        flush=True,
    )

    print("reference: colmax fp32, batch 32 ...", flush=True)
    ref_docs = base.encode_documents(texts.documents)
    ref_queries = base.encode_queries(texts.queries)

    order = {
        (s.name, t): i for i, (t, s) in enumerate((t, s) for t in thread_counts for s in SPECS)
    }
    with tempfile.TemporaryDirectory(prefix="colmax-bench-") as tmp:
        models = Models(base=base, workdir=Path(tmp))
        for threads in thread_counts:
            for spec in specs:
                if spec.name in report["skipped"] or (spec.name, threads) in done:
                    continue
                try:
                    runner = build_runner(spec, models, threads)
                except Exception as exc:  # optional backends: report, do not abort
                    report["skipped"][spec.name] = f"{type(exc).__name__}: {exc}"
                    print(f"  skip {spec.name}: {report['skipped'][spec.name]}", flush=True)
                    continue
                row = measure(
                    spec, runner, threads, texts, real_tokens, args, ref_docs, ref_queries
                )
                report["results"] = [
                    r
                    for r in report["results"]
                    if (r["variant"], r["threads"]) != (spec.name, threads)
                ] + [row]
                report["results"].sort(key=lambda r: order.get((r["variant"], r["threads"]), 1e9))
                report["runs"][-1]["measured"].append(f"{spec.name}@{threads}")
                save(report, args)
    report["partial"] = False
    return report


def previous_rows(args: argparse.Namespace, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Uncontended rows of an earlier results file measured on the same data and model."""
    if not args.json.exists():
        return []
    old = json.loads(args.json.read_text(encoding="utf-8"))
    differ = [key for key in ("data", "model") if old.get(key) != report[key]]
    for key in ("repeats", "latency_queries", "maxsim_queries", "maxsim_docs", "warmup_docs"):
        if old.get("settings", {}).get(key) != report["settings"][key]:
            differ.append(f"settings.{key}")
    if differ:
        print(f"note: {args.json} differs in {', '.join(differ)}; measuring everything")
        return []
    return [r for r in old["results"] if not r["contended"]]


def save(report: dict[str, Any], args: argparse.Namespace) -> None:
    for row in report["results"]:
        base_row = next(
            (
                r
                for r in report["results"]
                if r["variant"] == "baseline" and r["threads"] == row["threads"]
            ),
            None,
        )
        row["speedup_vs_baseline"] = (
            row["docs_per_s"] / base_row["docs_per_s"] if base_row else None
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, args.md)


def measure(
    spec: Spec,
    runner: Runner,
    threads: int,
    texts: BenchTexts,
    real_tokens: int,
    args: argparse.Namespace,
    ref_docs: list[np.ndarray],
    ref_queries: list[np.ndarray],
) -> dict[str, Any]:
    """Time one variant; rounds whose best run shared the CPUs with other work are redone
    (after waiting for a quiet machine) up to ``args.retries`` times, keeping the fastest."""
    waited = wait_for_quiet(args.max_wait, allowed_others(threads))
    runner.docs(texts.documents[: args.warmup_docs])  # warm-up: thread pool, kernels
    runner.queries(texts.queries[:4])
    times, others, docs_out = time_documents(runner, texts.documents, args.repeats)
    for _ in range(args.retries):
        if not _contended(others[int(np.argmin(times))], threads):
            break
        waited += wait_for_quiet(args.max_wait, allowed_others(threads))
        more_times, more_others, _ = time_documents(runner, texts.documents, args.repeats)
        times += more_times
        others += more_others
    start = time.perf_counter()
    queries_out = runner.queries(texts.queries)
    queries_s = time.perf_counter() - start
    latency = None
    if spec.latency:
        latency = query_latency(runner, texts.queries, args.latency_queries)
        for _ in range(args.retries):
            if not _contended(latency["others_cpu"], threads):
                break
            waited += wait_for_quiet(args.max_wait, allowed_others(threads))
            again = query_latency(runner, texts.queries, args.latency_queries)
            if again["p50_ms"] < latency["p50_ms"]:
                latency = again
    best_i = int(np.argmin(times))
    best = times[best_i]
    row: dict[str, Any] = {
        "variant": spec.name,
        "description": spec.description,
        "threads": threads,
        "batch_size": spec.batch_size,
        "times_s": [round(t, 4) for t in times],
        "others_cpu": [None if o is None else round(o, 3) for o in others],
        "best_s": best,
        "median_s": statistics.median(times),
        "spread": max(times) / best,
        "contended": _contended(others[best_i], threads)
        or (latency is not None and _contended(latency["others_cpu"], threads)),
        "waited_s": round(waited, 1),
        "docs_per_s": len(texts.documents) / best,
        "tokens_per_s": real_tokens / best,
        "queries_per_s_batched": len(texts.queries) / queries_s,
        "latency": latency,
        "quality": quality(
            docs_out, queries_out, ref_docs, ref_queries, args.maxsim_queries, args.maxsim_docs
        ),
        "loadavg": load_average(),
    }
    lat = f"p50 {latency['p50_ms']:.1f} ms p95 {latency['p95_ms']:.1f} ms" if latency else ""
    flag = "  CONTENDED" if row["contended"] else ""
    print(
        f"  t={threads} {spec.name:26s} {row['docs_per_s']:7.1f} docs/s "
        f"{row['tokens_per_s']:8.0f} tok/s  times {row['times_s']} others {row['others_cpu']} "
        f"cos {row['quality']['doc_cos_mean']:.5f}  {lat}{flag}",
        flush=True,
    )
    return row


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with corpus.jsonl and queries.jsonl (default: "
        "../shared/data/scifact; stdlib docstrings when missing)",
    )
    p.add_argument("--docs", type=int, default=160, help="documents to encode (default 160)")
    p.add_argument("--queries", type=int, default=200, help="queries (default 200)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per variant (best kept)")
    p.add_argument(
        "--max-wait",
        type=float,
        default=60,
        help="seconds to wait for other processes to go quiet before each timing",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="re-timings of a variant that ran contended"
    )
    p.add_argument("--warmup-docs", type=int, default=16, help="documents encoded before timing")
    p.add_argument(
        "--latency-queries", type=int, default=100, help="single-query calls timed per variant"
    )
    p.add_argument("--maxsim-queries", type=int, default=20)
    p.add_argument("--maxsim-docs", type=int, default=100)
    p.add_argument(
        "--variants",
        default="",
        help=f"comma-separated subset of: {', '.join(s.name for s in SPECS)}",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the uncontended rows of an earlier --json (same data, model and settings) "
        "and measure only what is missing or ran contended",
    )
    p.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    p.add_argument(
        "--conclusion", default="", help="a paragraph for 'What we keep' (with --render-only)"
    )
    p.add_argument(
        "--render-only", action="store_true", help="rewrite --md from --json (and --note)"
    )
    p.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "bench" / "encode.json")
    p.add_argument("--md", type=Path, default=REPO_ROOT / "docs" / "bench" / "encode.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render_only:
        report = json.loads(args.json.read_text(encoding="utf-8"))
        report.setdefault("notes", []).extend(args.note)
        if args.conclusion:
            report["conclusion"] = args.conclusion
        save(report, args)
        print(f"re-rendered {args.md} from {args.json}")
        return
    texts = load_texts(args.data, args.docs, args.queries)
    start = time.perf_counter()
    report = run_benchmark(args, texts)
    report["runs"][-1]["wall_s"] = round(time.perf_counter() - start, 1)
    report.setdefault("notes", []).extend(args.note)
    save(report, args)
    print(f"wrote {args.json} and {args.md} ({report['runs'][-1]['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
