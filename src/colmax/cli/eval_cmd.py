"""``colmax eval``: score a retrieval method on a BEIR folder (body of the command).

Kept out of ``main.py`` so that file stays short; the library work is
:func:`colmax.eval.runner.run_eval`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from colmax.cli import render
from colmax.cli.options import JsonOpt, SplitOpt
from colmax.cli.render import err, out

SHOWN = ("ndcg@10", "recall@100", "mrr@10", "map@100", "recall@10")


def eval_command(
    data_dir: Annotated[
        Path,
        typer.Argument(
            help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.",
            show_default=False,
        ),
    ],
    split: SplitOpt = "test",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="colmax, colmax-exact, bm25, biencoder, maxsim-raw, hybrid, bm25>colmax, "
            "biencoder>colmax.",
        ),
    ] = "colmax",
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="The colmax model (bundled name or folder)."),
    ] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option("--index-dir", help="Keep the colmax index here; a rerun reuses it."),
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Documents retrieved per query.")] = 100,
    queries_from: Annotated[
        Path | None,
        typer.Option("--queries-from", help="Take the queries from this BEIR folder instead."),
    ] = None,
    fusion: Annotated[
        str, typer.Option("--fusion", help="hybrid: rrf (k=60) or weighted (min-max).")
    ] = "rrf",
    weight: Annotated[
        float,
        typer.Option("--weight", min=0.0, max=1.0, help="hybrid weighted: colmax's share."),
    ] = 0.5,
    dim: Annotated[
        int | None,
        typer.Option("--dim", min=1, help="colmax: use the model's first DIM dims (Matryoshka)."),
    ] = None,
    nbits: Annotated[
        int, typer.Option("--nbits", help="colmax: residual bits per dimension (1, 2 or 4).")
    ] = 2,
    nprobe: Annotated[
        int | None,
        typer.Option(
            "--nprobe", min=1, help="colmax: lists probed per query token (default: auto)."
        ),
    ] = None,
    rescore: Annotated[
        bool, typer.Option("--rescore", help="colmax: re-score the candidates exactly.")
    ] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="colmax: search threads for the QPS figure.")
    ] = 1,
    save_run: Annotated[
        Path | None,
        typer.Option("--save-run", help="Write the ranking as a TREC run file (.json: ranx JSON)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a retrieval METHOD on DATA_DIR (nDCG@10, recall@100, MRR@10, MAP@100)."""
    from colmax.eval.runner import run_eval

    result = run_eval(
        data_dir,
        method=method,
        split=split,
        model=model,
        index_dir=index_dir,
        k=k,
        queries_from=queries_from,
        fusion=fusion,
        weight=weight,
        dim=dim,
        nbits=nbits,
        nprobe=nprobe,
        rescore=rescore,
        threads=threads,
        progress=err.is_terminal,
        save_run=save_run,
    )
    if as_json:
        import json

        # One line, last on stdout, so scripts can take stdout's last line.
        print(json.dumps(result, ensure_ascii=False), flush=True)
        return
    out.print(_table(result))
    if save_run is not None:
        render.note(f"run written to {save_run}")


def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    title = f"{result['method']} on {result['dataset']} ({result['split']})"
    table = Table(title=title, title_justify="left")
    for name in SHOWN:
        table.add_column(name, justify="right")
    table.add_column("queries", justify="right")
    table.add_column("encode s", justify="right")
    table.add_column("search ms/q", justify="right")
    table.add_row(
        *(f"{result[m]:.4f}" for m in SHOWN),
        f"{result['num_queries']:,}",
        f"{result['encode_s']:.1f}",
        f"{result['search_ms_per_query']:.1f}",
    )
    if "search_p50_ms" in result:
        render.note(
            f"index: dim {result['dim']}, nbits {result['nbits']}, "
            f"{result['index_bytes'] / 1e6:.1f} MB, {result['bytes_per_token']:.1f} B/token; "
            f"search p50 {result['search_p50_ms']:.2f} ms (1 thread), "
            f"{result['search_qps']:.0f} QPS ({result['search_threads']} threads), "
            "query encoding excluded"
        )
    render.note(
        f"model {result['model']}, {result['threads']} threads, "
        f"{result['num_docs']:,} documents, {result['skipped_queries']:,} unjudged queries skipped"
    )
    return table


def compare_command(
    data_dir: Annotated[
        Path,
        typer.Argument(help="The BEIR folder the runs were made on.", show_default=False),
    ],
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run files from colmax eval --save-run; the first is the baseline.",
            show_default=False,
        ),
    ],
    split: SplitOpt = "test",
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="Metric to test (repeatable; default ndcg@10)."),
    ] = None,
    test: Annotated[
        str, typer.Option("--test", help="fisher (randomization) or student (paired t).")
    ] = "fisher",
    max_p: Annotated[
        float, typer.Option("--max-p", min=0.0, max=1.0, help="Significance level.")
    ] = 0.05,
    as_json: JsonOpt = False,
) -> None:
    """Test whether runs differ from the first one, query by query (paired significance test)."""
    from colmax.eval.compare import compare_runs, load_run
    from colmax.eval.data import read_qrels

    qrels = read_qrels(data_dir.expanduser() / "qrels" / f"{split}.tsv")
    loaded = {}
    for path in runs:
        name = path.stem if path.stem not in loaded else str(path)
        loaded[name] = load_run(path)
    result = compare_runs(
        qrels, loaded, metrics=tuple(metric or ("ndcg@10",)), stat_test=test, max_p=max_p
    )
    if as_json:
        render.print_json(result.to_dict())
        return
    out.print(comparison_table(result))


def comparison_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(
        title=f"{result.num_queries:,} queries, {result.stat_test} test, p < {result.max_p}",
        title_justify="left",
    )
    table.add_column("run", overflow="fold")
    for m in result.metrics:
        table.add_column(m, justify="right")
        table.add_column("vs first", justify="right")
        table.add_column("p", justify="right")
        table.add_column("wins/ties/losses", justify="right")
    for i, row in enumerate(result.rows):
        cells = [escape(row.name)]
        for m in result.metrics:
            cells.append(f"{row.scores[m]:.4f}")
            if i == 0:
                cells += ["baseline", "", ""]
                continue
            mark = " *" if row.significant[m] else ""
            cells += [
                f"{row.delta[m]:+.4f}{mark}",
                result.p_text(row.p_value[m]),
                "/".join(str(n) for n in row.wins_ties_losses[m]),
            ]
        table.add_row(*cells)
    return table
