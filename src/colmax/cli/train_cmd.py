"""``colmax train``: train a model on a BEIR folder's train split (body of the command).

The library work is :func:`colmax.train.train`; ``--export`` only exports a run's best
checkpoint. Rerunning the same command resumes the run from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from colmax.cli.render import err, out


def _csv_ints(text: str) -> tuple[int, ...]:
    from colmax.errors import InputError

    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise InputError(f"{text!r} is not a comma-separated list of integers") from None


def train_command(
    data_dir: Annotated[
        Path,
        typer.Argument(
            help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/train.tsv.",
            show_default=False,
        ),
    ],
    run: Annotated[
        Path,
        typer.Option("--run", help="The run folder (checkpoints, logs); reused to resume."),
    ],
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Only export the run's best model to this folder."),
    ] = None,
    export_last: Annotated[
        bool,
        typer.Option(
            "--export-last",
            help="Export the last checkpoint instead of the best validated one (with --export, "
            "or at the end of training).",
        ),
    ] = False,
    interpolate: Annotated[
        float,
        typer.Option(
            "--interpolate",
            min=0.0,
            max=1.0,
            help="With --export: the trained weights' share, the rest from step 0 (WiSE-FT).",
        ),
    ] = 1.0,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where the finished run exports (default RUN/model)."),
    ] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1)] = 1500,
    stop_at: Annotated[
        int | None, typer.Option("--stop-at", min=1, help="Checkpoint and stop at this step.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Queries/micro-batch.")
    ] = 16,
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
    negatives: Annotated[int, typer.Option("--negatives", min=1, help="Hard negatives/query.")] = 3,
    mine_depth: Annotated[int, typer.Option("--mine-depth", min=1)] = 30,
    mining: Annotated[str, typer.Option("--mining", help="bm25, biencoder or both.")] = (
        "bm25,biencoder"
    ),
    loss: Annotated[str, typer.Option("--loss", help="ce, pairwise or hinge.")] = "ce",
    margin: Annotated[float, typer.Option("--margin")] = 1.0,
    no_in_batch: Annotated[
        bool, typer.Option("--no-in-batch", help="Only each query's own negatives.")
    ] = False,
    teacher: Annotated[
        str, typer.Option("--teacher", help="none, maxsim, bm25, biencoder or fusion.")
    ] = "none",
    teacher_weights: Annotated[
        str, typer.Option("--teacher-weights", help="fusion: maxsim=.6,bm25=.3,biencoder=.1")
    ] = "maxsim=1,bm25=1,biencoder=1",
    teacher_scale: Annotated[float, typer.Option("--teacher-scale")] = 2.0,
    distill_weight: Annotated[float, typer.Option("--distill-weight", min=0.0)] = 1.0,
    anchor_weight: Annotated[
        float,
        typer.Option(
            "--anchor-weight",
            min=0.0,
            help="Keep token states near the initial backbone's: weight of mean (1 - cos).",
        ),
    ] = 0.0,
    anchor_text: Annotated[
        str,
        typer.Option(
            "--anchor-text",
            help="What the anchor is measured on: batch (the training batch) or stdlib "
            "(standard-library docstrings: general text outside the training data).",
        ),
    ] = "batch",
    anchor_distill_weight: Annotated[
        float,
        typer.Option(
            "--anchor-distill-weight",
            min=0.0,
            help="Keep ranking like the initial backbone's full-width MaxSim on the anchor "
            "text: weight of the KL between the two.",
        ),
    ] = 0.0,
    mix: Annotated[
        str,
        typer.Option(
            "--mix",
            help="Passes per epoch per source: labeled, title, sentence, cloze, fragment, "
            "question, docquestion, summary.",
        ),
    ] = "labeled=2,title=1,sentence=1",
    max_unsupervised: Annotated[int | None, typer.Option("--max-unsupervised", min=1)] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.0, max=0.9)] = 0.15,
    init: Annotated[
        str, typer.Option("--init", help="'base' (all-MiniLM-L6-v2) or a checkpoint folder.")
    ] = "base",
    projection_init: Annotated[str, typer.Option("--projection-init", help="pca or keep.")] = "pca",
    pca_text: Annotated[
        str,
        typer.Option(
            "--pca-text",
            help="What the PCA init is fitted on: corpus, or corpus+stdlib (half corpus, half "
            "standard-library docstrings).",
        ),
    ] = "corpus",
    dim: Annotated[int, typer.Option("--dim", min=1)] = 128,
    dims: Annotated[str, typer.Option("--dims", help="Matryoshka dims.")] = "128,96,64",
    document_length: Annotated[
        int, typer.Option("--document-length", min=8, help="Document tokens while training.")
    ] = 192,
    export_document_length: Annotated[int, typer.Option("--export-document-length", min=8)] = 512,
    export_query_length: Annotated[
        int,
        typer.Option(
            "--export-query-length",
            min=4,
            help="Query tokens the saved model accepts (without --query-expansion).",
        ),
    ] = 64,
    query_expansion: Annotated[bool, typer.Option("--query-expansion/--no-query-expansion")] = (
        False
    ),
    freeze_layers: Annotated[int, typer.Option("--freeze-layers", min=0)] = 0,
    attention_dropout: Annotated[float, typer.Option("--attention-dropout", min=0.0)] = 0.0,
    hidden_dropout: Annotated[
        float | None,
        typer.Option(
            "--hidden-dropout",
            min=0.0,
            help="Dropout outside attention probabilities (default: the checkpoint's, 0.1).",
        ),
    ] = None,
    train_embeddings: Annotated[
        bool, typer.Option("--train-embeddings", help="Also train the word embeddings.")
    ] = False,
    lr: Annotated[float, typer.Option("--lr")] = 3e-5,
    projection_lr: Annotated[float, typer.Option("--projection-lr")] = 3e-4,
    warmup: Annotated[float, typer.Option("--warmup")] = 0.05,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32 or bf16.")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="CPUs to use.")] = 1,
    eval_every: Annotated[int, typer.Option("--eval-every", min=0)] = 150,
    pool_size: Annotated[int, typer.Option("--pool-size", min=1)] = 20,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=1)] = 100,
    checkpoint_minutes: Annotated[float, typer.Option("--checkpoint-minutes")] = 10.0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Mined negatives and teacher scores.")
    ] = None,
) -> None:
    """Train a colmax model on DATA_DIR's train split (rerun the same command to resume)."""
    from colmax.train import TrainConfig, train
    from colmax.train import export as export_run
    from colmax.train.config import parse_mix

    if export is not None:
        which = "last" if export_last else "best"
        path = export_run(run, export, which=which, interpolate=interpolate, data_dir=data_dir)
        out.print(f"exported {run} -> {path}")
        return
    config = TrainConfig(
        split="train",
        val_fraction=val_fraction,
        mix=parse_mix(mix),
        max_unsupervised=max_unsupervised,
        init=init,
        projection_init=projection_init,
        pca_text=pca_text,
        dim=dim,
        dims=_csv_ints(dims),
        query_expansion=query_expansion,
        document_length=document_length,
        export_document_length=export_document_length,
        export_query_length=export_query_length,
        freeze_embeddings=not train_embeddings,
        freeze_layers=freeze_layers,
        attention_dropout=attention_dropout,
        hidden_dropout=hidden_dropout,
        mining=tuple(m.strip() for m in mining.split(",") if m.strip()),
        mine_depth=mine_depth,
        negatives=negatives,
        loss=loss,
        margin=margin,
        in_batch=not no_in_batch,
        teacher=teacher,
        teacher_weights=parse_mix(teacher_weights),
        teacher_scale=teacher_scale,
        distill_weight=distill_weight,
        anchor_weight=anchor_weight,
        anchor_text=anchor_text,
        anchor_distill_weight=anchor_distill_weight,
        lr=lr,
        projection_lr=projection_lr,
        warmup=warmup,
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        seed=seed,
        precision=precision,
        threads=threads,
        pool_size=pool_size,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        checkpoint_minutes=checkpoint_minutes,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        progress=err.is_terminal,
    )
    which = "last" if export_last else "best"
    result = train(data_dir, run, config, stop_at=stop_at, export_to=output, export_which=which)
    best = result.best
    out.print(
        f"step {result.step}/{config.max_steps}; best validation {best.get('metrics')} at step "
        f"{best.get('step')}"
    )
    if result.model_dir is not None:
        out.print(f"model: {result.model_dir}; full-corpus validation: {result.final}")
    else:
        out.print(f"stopped; rerun the same command to resume from {run / 'checkpoints'}")
