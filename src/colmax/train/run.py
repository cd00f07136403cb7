"""``colmax.train.train``: prepare, build the student, train (resuming when the run folder has a
checkpoint), and at the end export the best (or last) model and score it on the whole corpus.

Run folder::

    RUN/config.json            the settings (a resume with other settings is refused)
    RUN/prepare.json           data counts, validation baselines, the teacher comparison
    RUN/history.jsonl          loss, tokens/s, micro-batches per source, validation,
                               checkpoints, one JSON per line
    RUN/checkpoints/last.pt    model + optimizer + scheduler + RNG + data position
    RUN/checkpoints/best.pt    the best validated model; RUN/best.json its scores
    RUN/model/                 the exported best (or last) model (PyLate layout, float16)
    RUN/final.json             the exported model's step, exact full-corpus validation scores,
                               backbone drift from MiniLM on general text (train/drift.py), ...
    RUN/cache/                 mined negatives and teacher scores (or cache_dir)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from colmax.encoder import Encoder
from colmax.errors import InputError
from colmax.train import checkpoint
from colmax.train.config import TrainConfig, differences
from colmax.train.drift import (
    AGREEMENT_TEXTS,
    fragment_accuracy,
    general_drift,
    ranking_agreement,
    reference_manual,
)
from colmax.train.prepare import prepare
from colmax.train.questions import question_task
from colmax.train.shipping import EXPORT_CHOICES, attach_final, export, scored_step
from colmax.train.student import BASE_CHECKPOINT, anchor_backbone, build_student, initial_student
from colmax.train.trainer import INIT, LAST, Trainer
from colmax.train.validate import Validator


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool
    best: dict[str, Any]
    model_dir: Path | None
    final: dict[str, Any] | None


def train(
    data_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    stop_at: int | None = None,
    export_to: str | Path | None = None,
    export_which: str = "best",
    **overrides: Any,
) -> TrainResult:
    """Train on a BEIR folder's ``train`` split into ``run_dir``; resume when it has a
    checkpoint. ``overrides`` replace fields of ``config``; ``stop_at`` stops (after a
    checkpoint) at that step; at ``max_steps`` the best validated model (``export_which=
    "last"``: the last checkpoint) is exported to ``export_to`` (default ``RUN/model``) and
    scored."""
    if export_which not in EXPORT_CHOICES:  # checked now, not after hours of training
        raise InputError(f"export_which must be 'best' or 'last', not {export_which!r}")
    config = replace(config or TrainConfig(), **overrides).validate()
    run = Path(run_dir).expanduser()
    run.mkdir(parents=True, exist_ok=True)
    with _run_lock(run), limit_threads(config.threads):
        _check_config(run, config)
        cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else run / "cache"
        prepared = prepare(data_dir, config, cache_dir)
        (run / "prepare.json").write_text(json.dumps(prepared.report, indent=2) + "\n")
        bf16 = bool(prepared.report["bf16"])
        state = checkpoint.load(run / LAST) if (run / LAST).exists() else None
        checkpoint.seed_everything(config.seed)
        if state is None:
            student = initial_student(config, prepared.corpus.full, name=run.name, bf16=bf16)
            checkpoint.save(run / INIT, {"model": student.model.state_dict()})
        else:
            student = build_student(config, state=state["model"], name=run.name)
        validator = Validator(
            prepared.val_queries,
            prepared.val_qrels,
            prepared.val_pool,
            prepared.corpus,
            dims=config.dims,
        )
        anchor = None
        if config.anchored:
            anchor = anchor_backbone(student.model, checkpoint.load(run / INIT)["model"])
        trainer = Trainer(
            student, prepared, config, run, validator=validator, bf16=bf16, anchor=anchor
        )
        if state is not None:
            trainer.resume(state)
        trainer.fit(stop_at)
        finished = trainer.step >= config.max_steps
        model_dir, final = None, None
        step = trainer.step if export_which == "last" else trainer.best["step"]
        if finished and step is not None:
            model_dir = Path(export_to).expanduser() if export_to else run / "model"
            _export_once(run, model_dir, export_which, step)
            final = _final(run, model_dir, validator, config, trainer, step)
            attach_final(model_dir, final)
        return TrainResult(run, trainer.step, finished, trainer.best, model_dir, final)


def _export_once(run: Path, model_dir: Path, which: str, step: int) -> None:
    """Export step ``step`` to ``model_dir`` unless it already holds exactly that export."""
    if not model_dir.exists() or not any(model_dir.iterdir()):
        export(run, model_dir, which=which, name=model_dir.name)
        return
    record = model_dir / "colmax_model.json"
    held = json.loads(record.read_text()).get("training", {}) if record.exists() else {}
    if held.get("step") != step or "interpolation" in held:
        raise InputError(
            f"{model_dir} already holds another model than this run's step {step} ({which}); "
            "move it away or pass another --output folder"
        )


def _final(
    run: Path,
    model_dir: Path,
    validator: Validator,
    config: TrainConfig,
    trainer: Trainer,
    step: int,
) -> dict[str, Any]:
    """Exact full-corpus validation of the exported model (step ``step``), cached in
    RUN/final.json until another step is exported."""
    path = run / "final.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if scored_step(cached) == step:
            return cached
    start = time.perf_counter()
    encoder = Encoder.load(model_dir, threads=config.threads, precision=config.precision)
    metrics = validator.full_corpus(encoder)
    final = {
        "model": str(model_dir),
        "step": step,
        "best_step": trainer.best["step"],
        "validation_full_corpus": metrics,
        "drift_from_step_0": _drift(encoder, run / INIT),
        "agreement_with_init": _agreement(encoder, config),
        "fragment_task_reference_manual": fragment_accuracy(encoder, reference_manual(None)),
        "question_task_reference_manual": question_task(encoder),
        "document_length": config.export_document_length,
        "query_length": config.saved_query_length,
        "train_seconds": round(trainer.elapsed, 1),
        "train_tokens": trainer.tokens,
        "tokens_per_s": round(trainer.tokens / max(trainer.elapsed, 1e-9), 1),
        "steps_per_s": round(trainer.step / max(trainer.elapsed, 1e-9), 4),
        "seconds": round(time.perf_counter() - start, 1),
    }
    path.write_text(json.dumps(final, indent=2) + "\n")
    return final


def _drift(encoder: Encoder, init: Path) -> dict[str, float]:
    """Backbone drift on general text from the run's step 0 (none for runs without init.pt)."""
    if not init.exists():
        return {}
    return general_drift(encoder, anchor_backbone(encoder.model, checkpoint.load(init)["model"]))


def _agreement(encoder: Encoder, config: TrainConfig) -> dict[str, float]:
    """Top-10 agreement with the model training started from (for ``init="base"``: untrained
    MiniLM's raw vectors) on the reference manual, per Matryoshka dim; empty without it."""
    texts = reference_manual(AGREEMENT_TEXTS)
    if not texts:
        return {}
    base = Encoder.load(
        BASE_CHECKPOINT if config.init == "base" else config.init,
        threads=config.threads,
        precision=config.precision,
    )
    return ranking_agreement(encoder, base, texts, config.dims)


def _check_config(run: Path, config: TrainConfig) -> None:
    stored = run / "config.json"
    if stored.exists():
        diffs = differences(TrainConfig.load(stored), config)
        if diffs:
            raise InputError(
                f"{run} was started with other settings ({'; '.join(diffs)}); resume with the "
                "same settings or choose a new run folder"
            )
    else:
        config.save(stored)


@contextlib.contextmanager
def _run_lock(run: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(run / "train.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InputError(f"another process is training in {run}; wait for it or stop it") from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch threads and (on Linux) only ``threads`` CPUs, so tokenizers and
    every other thread pool stay within the budget too; restored afterwards."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    torch.set_num_threads(threads)
    if affinity is not None and len(affinity) > threads:
        os.sched_setaffinity(0, sorted(affinity)[-threads:])
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
