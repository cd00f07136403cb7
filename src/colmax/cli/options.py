"""Option types shared by several ``colmax`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

IndexDir = Annotated[
    Path, typer.Option("--index", "-i", help="The index folder.", show_default=False)
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="A bundled model name or a local checkpoint folder."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Wait = Annotated[
    float,
    typer.Option("--wait", min=0.0, help="Seconds to wait for another writer (0: fail at once)."),
]
SplitOpt = Annotated[str, typer.Option("--split", help="The qrels split.")]
