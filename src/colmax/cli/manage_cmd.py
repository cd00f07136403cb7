"""``colmax info``, ``get``, ``delete``, ``compact`` and ``optimize``: look into an index and
look after it (the bodies of the commands; ``main.py`` registers them)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from colmax import __version__
from colmax.cli import render
from colmax.cli.options import IndexDir, JsonOpt, Wait
from colmax.cli.render import out, plural


def _report(done: str, start: float, detail: str, info: dict) -> None:
    """``<done> in <s> s: <detail>; now <what the index holds>`` (compact, optimize)."""
    out.print(
        f"{done} in {time.perf_counter() - start:.1f} s: {detail}; now "
        f"{info['documents']:,} documents, {info['tokens']:,} tokens in {info['parts']} part(s), "
        f"{info['centroids']:,} centroids, {info['index_bytes'] / 1e6:,.1f} MB "
        f"({info['bytes_per_token']:.1f} B/token)"
    )


def compact_command(index: IndexDir, wait: Wait = 0.0) -> None:
    """Merge the index's parts and drop deleted documents for good."""
    from colmax.index import Index

    start = time.perf_counter()
    with Index.open(index, lock_timeout=wait) as idx:
        dropped = idx.compact()
        info = idx.info()
    _report("compacted", start, f"dropped {plural(dropped, 'deleted document')}", info)


def optimize_command(index: IndexDir, wait: Wait = 0.0) -> None:
    """Re-train the centroids on the live documents and re-encode them (also compacts).

    Worth it after the data drifted, or after adding far more than the index first held
    (add does it by itself each time the index grows 4x).
    """
    from colmax.index import Index

    start = time.perf_counter()
    with Index.open(index, lock_timeout=wait) as idx:
        before = idx.info()
        info = idx.optimize()
    _report("optimized", start, f"centroids {before['centroids']:,} -> {info['centroids']:,}", info)


def info_command(
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Describe this index.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Describe an index, or (without --index) this colmax install."""
    if index is not None:
        from colmax.index import Index

        with Index.open(index, readonly=True) as idx:
            data = idx.info()
    else:
        data = _install_info()
    if as_json:
        render.print_json(data)
    else:
        title = f"index {index}" if index is not None else f"colmax {__version__}"
        out.print(render.key_value_table(data, title=title))


def _install_info() -> dict[str, Any]:
    import platform

    import torch

    from colmax.encoder.checkpoints import DEFAULT_MODEL, bundled_models
    from colmax.encoder.encoder import cpu_has_fast_bf16, default_threads

    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        capability = "unknown"
    return {
        "colmax": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "default_model": DEFAULT_MODEL,
        "bundled_models": bundled_models(),
        "encode_threads": default_threads(),
        "cpu_capability": capability,
        "bf16": cpu_has_fast_bf16(),
    }


def get_command(
    doc_id: Annotated[str, typer.Argument(metavar="ID", help="The document id.")],
    index: IndexDir,
    as_json: JsonOpt = False,
) -> None:
    """Show one stored document."""
    from colmax.errors import UnknownIdError
    from colmax.index import Index

    with Index.open(index, readonly=True) as idx:
        doc = idx.get(doc_id)
    if doc is None:
        raise UnknownIdError(f"no document with id {doc_id!r} in {index}")
    data = {"id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}
    if as_json:
        render.print_json(data)
        return
    out.print(f"[bold cyan]{escape(doc.id)}[/]" + (f"  {escape(doc.title)}" if doc.title else ""))
    if doc.metadata:
        out.print(render.key_value_table(doc.metadata))
    out.print(doc.text, markup=False)


def delete_command(
    ids: Annotated[list[str], typer.Argument(metavar="IDS...", help="Document ids to delete.")],
    index: IndexDir,
) -> None:
    """Delete documents by id (all or nothing: an unknown id deletes none)."""
    from colmax.index import Index

    with Index.open(index) as idx:
        deleted = idx.delete(ids)
        size = len(idx)
    out.print(f"deleted {plural(deleted, 'document')}; {index} holds {plural(size, 'document')}")
