"""``colmax heldout``: score models on a held-out task (the written questions, the manual's
section headings, or SciPy's docstrings) and test each against the first, query by query (the
task that decides whether a new default model ships, see docs/TRAINING.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from colmax.cli import render
from colmax.cli.eval_cmd import comparison_table
from colmax.cli.options import JsonOpt
from colmax.cli.render import out

_NO_QUESTIONS = (
    "none of the held-out questions' sentences is on this Python "
    "(they were written about Python 3.11's reference manual)"
)
#: what to do when a level's texts are not on this machine
_MISSING = {
    "sentence": _NO_QUESTIONS,
    "paragraph": _NO_QUESTIONS,
    "section": "this Python has no reference manual (pydoc_data) to build the section task "
    "from; install a full Python build",
    "docstring": "the docstring task reads SciPy's docstrings and SciPy is not installed; "
    "install colmax[eval] (ranx brings it)",
}


def heldout_command(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Bundled model names or checkpoint folders; the first is the baseline.",
            show_default=False,
        ),
    ],
    level: Annotated[
        str,
        typer.Option(
            "--level",
            help="sentence: the questions rank the 1,141 sentences (XQuAD-R's shape); "
            "paragraph: they rank the 771 paragraphs; section: the 159 section headings "
            "rank the 771 paragraphs, their section's relevant (topical, as Cranfield); "
            "docstring: SciPy's function summaries rank their docstrings' prose (technical "
            "text from other fields).",
        ),
    ] = "sentence",
    dim: Annotated[
        int | None,
        typer.Option("--dim", min=1, help="Use each model's first DIM dims (Matryoshka)."),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Encoder threads.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Held-out questions about Python's reference manual (text no training reads), its
    section headings, or SciPy's docstrings: nDCG@10 and MRR@10 per model, with Fisher's
    paired randomization test against the first."""
    from colmax.encoder import Encoder
    from colmax.errors import InputError
    from colmax.eval.compare import compare_runs
    from colmax.train.questions import check_level, question_task_run

    if len(models) < 2:
        raise InputError("heldout needs at least two models: a baseline, then the ones to test")
    check_level(level)  # before any model loads
    qrels: dict[str, dict[str, int]] = {}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for name in models:
        encoder = Encoder.load(name, threads=threads, dim=dim)
        render.note(f"{name}: {level}-level held-out task")
        task = question_task_run(encoder, level, depth=100)
        if task is None:
            raise InputError(_MISSING[level])
        qrels, run = task  # the same questions for every model
        runs[name if name not in runs else f"{name} ({len(runs)})"] = run
    result = compare_runs(qrels, runs, metrics=("ndcg@10", "mrr@10"))
    if as_json:
        render.print_json(result.to_dict())
        return
    out.print(comparison_table(result))
