"""``colmax demo``: index the stdlib docstrings and print the top hits for the demo questions."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.text import Text

from colmax.cli import render
from colmax.cli.render import out


def show_demo(index_dir: Path, limit: int | None) -> None:
    """Run :func:`colmax.demo.run_demo` with a progress bar and print what it found."""
    from colmax.demo import DEMO_QUERIES, run_demo

    out.print(
        "[bold]colmax demo[/]: indexing the docstrings of Python's standard library, then "
        f"asking it {len(DEMO_QUERIES)} questions."
    )
    render.note(f"loading the model; the index goes to {index_dir}")
    with render.progress_bar("indexing") as bar:
        task = bar.add_task("indexing", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_demo(index_dir, limit, on_progress=on_progress)
    rate = report.tokens / report.index_seconds if report.index_seconds else 0.0
    out.print(
        f"indexed {render.plural(report.documents, 'docstring')} from "
        f"{report.modules} modules ({report.tokens:,} token vectors) in "
        f"{report.index_seconds:.1f} s ({rate:,.0f} tokens/s, model load included)"
    )
    per_query = 1000 * report.search_seconds / max(1, len(report.results))
    out.print(f"searched {len(report.results)} questions in {per_query:.0f} ms each\n")
    width = max(40, out.width - 6)
    for query, hits in report.results:
        out.print(Text.assemble(("? ", "bold magenta"), (query, "bold")))
        pad = max((len(hit.id) for hit in hits), default=0)
        for rank, hit in enumerate(hits, start=1):
            first = (hit.text or "").strip().split("\n\n")[0]
            out.print(
                Text.assemble(
                    (f"  {rank}. ", "dim"),
                    (hit.id.ljust(pad), "cyan"),
                    "  ",
                    (f"{hit.score:.2f}", "green"),
                )
            )
            out.print(Text("     " + render.snippet(first, width), style="dim"), no_wrap=True)
        out.print()
    out.print(
        "Try your own question:\n"
        f'  [bold]colmax search "read a CSV file" --index {escape(str(index_dir))}[/]'
    )
