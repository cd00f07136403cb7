"""The ``colmax`` command line: each command maps its arguments to one library call.

Heavy modules (torch, the index) are imported inside the commands, so ``colmax --help`` is fast.
Every :class:`~colmax.errors.ColmaxError` becomes ``error: <message>`` on stderr and exit code 1;
usage errors exit with 2 (typer's default).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from colmax import __version__
from colmax.cli import eval_cmd, heldout_cmd, manage_cmd, render, train_cmd
from colmax.cli.options import IndexDir, JsonOpt, ModelOpt
from colmax.cli.render import err, out, plural

app = typer.Typer(
    name="colmax",
    help="Late-interaction (ColBERT-style) neural search that runs well on a CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn colmax's own errors (and OS errors) into ``error: ...`` and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from colmax.errors import ColmaxError

        try:
            return func(*args, **kwargs)
        except (ColmaxError, OSError) as exc:
            render.error(str(exc) or type(exc).__name__)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            render.error("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"colmax {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what colmax does (to stderr).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Index, search and rerank text with ColBERT-style late interaction, on a CPU."""
    render.setup_logging(verbose)


# --------------------------------------------------------------------------- index


@app.command("index")
@handle_errors
def index_command(
    input: Annotated[
        Path,
        typer.Argument(
            help="A JSONL file (id, text, title, metadata), a BEIR folder, a .tsv file, or a "
            "folder of .txt/.md files.",
            show_default=False,
        ),
    ],
    index: IndexDir,
    model: ModelOpt = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Documents per add (and commit).")
    ] = 256,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace documents whose id is already indexed.")
    ] = False,
    skip_empty: Annotated[
        bool, typer.Option("--skip-empty", help="Leave out documents with empty text.")
    ] = False,
    nbits: Annotated[
        int, typer.Option("--nbits", help="A new index's residual bits per dimension: 1, 2, 4.")
    ] = 2,
) -> None:
    """Add documents to an index, creating it when INDEX does not exist yet."""
    from colmax.io import read_documents

    # A first pass checks every record (and counts them) before the model loads, so a bad line
    # fails in a second and nothing is half-added.
    total = sum(1 for _ in read_documents(input, skip_empty=skip_empty))
    start = time.perf_counter()
    with _open_or_create(index, model, nbits) as idx:
        load_seconds = time.perf_counter() - start
        added = replaced = tokens = truncated = 0
        with render.progress_bar("indexing") as bar:
            task = bar.add_task("indexing", total=total)
            docs = read_documents(input, skip_empty=skip_empty)
            for chunk in render.batched(docs, batch_size):
                report = idx.add(chunk, batch_size=batch_size, replace=replace)
                added += report.added
                replaced += report.replaced
                tokens += report.tokens
                truncated += report.truncated
                bar.advance(task, len(chunk))
        size = len(idx)
    seconds = time.perf_counter() - start - load_seconds
    line = f"indexed {plural(added, 'document')}"
    if replaced:
        line += f" ({replaced:,} replaced)"
    line += f", {plural(tokens, 'token')} in {seconds:.1f} s"
    if seconds >= 1:
        line += f" ({tokens / seconds:,.0f} tokens/s)"
    out.print(line + f"; the model loaded in {load_seconds:.1f} s")
    if truncated:
        out.print(
            f"{plural(truncated, 'document')} longer than the model's document length "
            "were cut (their ends are not searchable)",
            style="yellow",
        )
    out.print(f"{index} now holds {plural(size, 'document')}")


def _open_or_create(path: Path, model: str | None, nbits: int) -> Any:
    """Open the index at ``path``, or create it when the folder is missing or empty."""
    from colmax.index import Index

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        render.note(f"creating a new index at {path}")
    return Index.create(path, model=model, nbits=nbits, exist_ok=True)


# --------------------------------------------------------------------------- search


@app.command("search")
@handle_errors
def search_command(
    query: Annotated[str, typer.Argument(help="What to search for.", show_default=False)],
    index: IndexDir,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many hits.")] = 10,
    nprobe: Annotated[
        int | None,
        typer.Option("--nprobe", min=1, help="Lists probed per query token (default: auto)."),
    ] = None,
    rescore: Annotated[
        bool, typer.Option("--rescore", help="Re-score the candidates with all their vectors.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search an index and show the best K documents."""
    from colmax.index import Index

    with Index.open(index, readonly=True) as idx:
        hits = idx.search(query, k=k, nprobe=nprobe, rescore=rescore)
    if as_json:
        render.print_json({"query": query, "hits": [_hit_dict(h) for h in hits]})
        return
    if not hits:
        out.print("no hits (the index is empty)")
        return
    out.print(render.hits_table(hits, title=f"top {len(hits)} for: {query}"))


def _hit_dict(hit: Any) -> dict[str, Any]:
    return {
        "id": hit.id,
        "score": hit.score,
        "title": hit.title,
        "text": hit.text,
        "metadata": hit.metadata,
    }


# --------------------------------------------------------------------------- rerank


@app.command("rerank")
@handle_errors
def rerank_command(
    query: Annotated[str, typer.Argument(help="The query.", show_default=False)],
    docs_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL with a 'text' per line, or a text file with one document per line.",
            show_default=False,
        ),
    ],
    top_n: Annotated[
        int | None, typer.Option("--top-n", "-n", min=1, help="Keep only the best N.")
    ] = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Order the documents in DOCS_FILE by relevance to QUERY (no index needed)."""
    from colmax.io import read_texts
    from colmax.search.rerank import rerank

    texts = read_texts(docs_file)
    encoder = None
    if model is not None:
        from colmax.encoder import Encoder

        encoder = Encoder.load(model)
    hits = rerank(query, texts, top_n=top_n, encoder=encoder)
    if as_json:
        render.print_json({"query": query, "hits": [h.to_dict() for h in hits]})
    else:
        out.print(render.rerank_table(hits))


# --------------------------------------------------------------------------- encode


@app.command("encode")
@handle_errors
def encode_command(
    input: Annotated[
        Path,
        typer.Argument(help="Documents (as for `colmax index`) or queries.", show_default=False),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The .npz file to write.", show_default=False)
    ],
    queries: Annotated[
        bool, typer.Option("--queries", help="Encode INPUT as queries (default: documents).")
    ] = False,
    model: ModelOpt = None,
    dim: Annotated[
        int | None, typer.Option("--dim", min=1, help="Keep the first DIM dims (Matryoshka).")
    ] = None,
) -> None:
    """Write token vectors to an .npz file: ids, vectors (float16) and offsets.

    ``vectors`` has one row per token; text i's rows are ``vectors[offsets[i]:offsets[i+1]]``.
    A document with a title is encoded as ``title + "\\n" + text``, as the index does.
    """
    import numpy as np

    from colmax.encoder import Encoder, EncodeStats
    from colmax.errors import InputError
    from colmax.io import read_documents, read_queries

    if output.suffix != ".npz":
        raise InputError(f"{output}: the output file must end in .npz")
    if queries:
        records = list(read_queries(input))
        texts = [q["text"] for q in records]
    else:
        records = list(read_documents(input))
        texts = [f"{d['title']}\n{d['text']}" if d.get("title") else d["text"] for d in records]
    encoder = Encoder.load(model, dim=dim)
    stats = EncodeStats()
    start = time.perf_counter()
    encode = encoder.encode_queries if queries else encoder.encode_documents
    vectors = encode(texts, progress=err.is_terminal, stats=stats)
    seconds = time.perf_counter() - start
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        output,
        ids=np.array([r["id"] for r in records], dtype=str),
        vectors=np.concatenate(vectors).astype(np.float16),
        offsets=offsets,
        model=np.array(encoder.model_name),
        kind=np.array("queries" if queries else "documents"),
    )
    what = plural(len(records), "query", "queries") if queries else plural(len(records), "document")
    out.print(
        f"encoded {what} into {plural(stats.tokens, 'vector')} of dim {encoder.dim} in "
        f"{seconds:.1f} s -> {output}"
    )


# --------------------------------------------------------------------------- commands in modules

app.command("eval")(handle_errors(eval_cmd.eval_command))
app.command("compare")(handle_errors(eval_cmd.compare_command))
app.command("train")(handle_errors(train_cmd.train_command))
app.command("heldout")(handle_errors(heldout_cmd.heldout_command))
app.command("info")(handle_errors(manage_cmd.info_command))
app.command("get")(handle_errors(manage_cmd.get_command))
app.command("delete")(handle_errors(manage_cmd.delete_command))
app.command("compact")(handle_errors(manage_cmd.compact_command))
app.command("optimize")(handle_errors(manage_cmd.optimize_command))


# --------------------------------------------------------------------------- demo


@app.command("demo")
@handle_errors
def demo_command(
    index: Annotated[
        Path, typer.Option("--index", "-i", help="Where to build the demo index.")
    ] = Path("demo-index"),
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Index at most N docstrings.")
    ] = None,
) -> None:
    """Index the Python standard library's docstrings and answer a few questions."""
    from colmax.cli.demo_view import show_demo

    show_demo(index, limit)


if __name__ == "__main__":
    app()
