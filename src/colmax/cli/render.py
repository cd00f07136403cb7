"""How the CLI shows things: consoles, error lines, tables, progress. No library logic here.

Results go to stdout; errors, logs and progress go to stderr, so ``--json`` output can be piped.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# soft_wrap: summary lines stay whole when piped (rich would cut them at 80 columns).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SNIPPET_CHARS = 160


def setup_logging(verbose: bool) -> None:
    """Send colmax's log records to stderr through rich (warnings, or info with -v)."""
    logger = logging.getLogger("colmax")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    # The commands report truncated documents in their summaries; without -v the encoder's
    # per-batch warning about them would only repeat that.
    logging.getLogger("colmax.encoder.encoder").setLevel(
        logging.NOTSET if verbose else logging.ERROR
    )


def error(message: str) -> None:
    """``error: <message>`` in red on stderr (the message is never read as rich markup)."""
    err.print(Text.assemble(("error: ", "bold red"), (message, "red")), soft_wrap=True)


def note(message: str) -> None:
    """A dim line on stderr: what the CLI is doing while stdout stays clean."""
    err.print(Text(message, style="dim"), soft_wrap=True)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def snippet(text: str | None, limit: int = SNIPPET_CHARS) -> str:
    """The text on one line, cut to ``limit`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def progress_bar(description: str) -> Progress:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def hits_table(hits: Iterable[Any], *, title: str | None = None) -> Table:
    """Search hits as rank, id, score and the document (its title in bold, then a snippet)."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", style="cyan", overflow="fold", max_width=24)
    table.add_column("score", justify="right", style="green")
    table.add_column("document", overflow="fold")
    line = max(40, out.width - 26)  # about one line of the document column
    for rank, hit in enumerate(hits, start=1):
        doc = Text()
        if hit.title:
            doc.append(snippet(hit.title, line), style="bold")
            doc.append("\n")
        doc.append(snippet(hit.text, 2 * line))
        table.add_row(str(rank), hit.id, f"{hit.score:.2f}", doc)
    return table


def rerank_table(hits: Iterable[Any]) -> Table:
    """Rerank hits as rank, input position, score, snippet."""
    table = Table(show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("input", justify="right", style="cyan")
    table.add_column("score", justify="right", style="green")
    table.add_column("text", overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), str(hit.index), f"{hit.score:.3f}", snippet(hit.text))
    return table


def key_value_table(rows: dict[str, Any], title: str | None = None) -> Table:
    """A two-column table; nested dicts are shown as ``key.subkey``."""
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in _flatten(rows):
        table.add_row(key, _format_value(value))
    return table


def _flatten(rows: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in rows.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def plural(n: int, word: str, words: str | None = None) -> str:
    """``plural(1, "document")`` -> '1 document'; 2 -> '2 documents'."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def batched(items: Iterable[Any], size: int) -> Iterator[Sequence[Any]]:
    """Lists of up to ``size`` items, streaming."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
