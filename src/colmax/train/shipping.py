"""Ship a trained model: the PyLate / sentence-transformers layout with float16 safetensors.

The folder holds the trained backbone (config.json, model.safetensors, tokenizer files at the
root) and the projection in ``1_Dense/``, so it loads with ``colmax.Encoder.load(path)``, with
PyLate, and its backbone with ``transformers.AutoModel``. ``config_sentence_transformers.json``
carries the markers, lengths and query settings (plus ``matryoshka_dims``);
``colmax_model.json`` records the name, the base model, the Matryoshka dims and how the model
was trained and validated.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from colmax.errors import InputError
from colmax.train import checkpoint
from colmax.train.config import TrainConfig
from colmax.train.student import Student, build_student, model_size

log = logging.getLogger(__name__)

MAX_SHIP_BYTES = 50 * 1024 * 1024
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def save_model(
    student: Student,
    target: str | Path,
    config: TrainConfig,
    *,
    name: str | None = None,
    training: dict[str, Any] | None = None,
    half: bool = True,
) -> Path:
    """Write ``student`` to ``target`` (new or empty) in the PyLate layout."""
    from colmax.encoder.save import save_pylate

    target = Path(target).expanduser()
    name = name or target.name
    encoder = student.encoder(
        document_length=config.export_document_length, query_length=config.saved_query_length
    )
    out = save_pylate(encoder, target, half=half)
    st_path = out / "config_sentence_transformers.json"
    st = json.loads(st_path.read_text(encoding="utf-8"))
    st["matryoshka_dims"] = list(config.dims)
    st_path.write_text(json.dumps(st, indent=2) + "\n", encoding="utf-8")
    meta = {
        "name": name,
        "version": "1",
        "base_model": BASE_MODEL if config.init == "base" else student.base,
        "projection": f"trained {student.model.projection.in_features}->{student.model.full_dim}",
        "matryoshka_dims": list(config.dims),
        "dtype": "float16" if half else "float32",
        "training": training or {},
    }
    (out / "colmax_model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    size = model_size(out)
    if size > MAX_SHIP_BYTES:
        log.warning("%s is %.1f MB, over the %d MB colmax ships", out, size / 2**20, 50)
    return out


EXPORT_CHOICES = ("best", "last")  #: which checkpoint of a run is exported


def scored_step(final: dict[str, Any]) -> int | None:
    """The step whose weights RUN/final.json scored (runs before session 12 record only
    ``best_step``, which was then always the exported one)."""
    return final.get("step", final.get("best_step"))


def export(
    run_dir: str | Path,
    target: str | Path,
    *,
    which: str = "best",
    name: str | None = None,
    half: bool = True,
    interpolate: float = 1.0,
    data_dir: str | Path | None = None,
) -> Path:
    """Export a run's best (or last) checkpoint to ``target``.

    ``interpolate`` < 1 exports ``(1 - a) * initial + a * trained`` weights (WiSE-FT: keeps more
    of what the base model knew; see docs/TRAINING.md). The initial weights come from
    ``RUN/checkpoints/init.pt``, or are rebuilt from ``data_dir`` (the run's PCA init is seeded)
    for runs that predate that file."""
    from colmax.train.trainer import BEST, LAST

    run = Path(run_dir).expanduser()
    if which not in EXPORT_CHOICES:
        raise InputError(f"which must be 'best' or 'last', not {which!r}")
    if not 0.0 <= interpolate <= 1.0:
        raise InputError(f"interpolate must be between 0 and 1, not {interpolate}")
    config_path = run / "config.json"
    if not config_path.exists():
        raise InputError(f"{run} is not a training run folder (no config.json)")
    path = run / (BEST if which == "best" else LAST)
    if not path.exists():
        raise InputError(
            f"{path} does not exist yet: the run has not "
            + ("validated a model" if which == "best" else "written a checkpoint")
        )
    config = TrainConfig.load(config_path)
    state = checkpoint.load(path)
    weights = state["model"]
    training = _training_record(run, config, state)
    if interpolate < 1.0:
        weights = interpolate_weights(initial_weights(run, config, data_dir), weights, interpolate)
        training["interpolation"] = {"trained_share": interpolate, "from": "step 0"}
        training.pop("final", None)  # it scored the weights before interpolation
    student = build_student(config, state=weights)
    return save_model(student, target, config, name=name, training=training, half=half)


def interpolate_weights(
    initial: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], share: float
) -> dict[str, torch.Tensor]:
    """``(1 - share) * initial + share * trained`` for every float tensor (others: trained)."""
    if initial.keys() != trained.keys():
        raise InputError("the initial and trained weights have different tensors")
    return {
        key: ((1 - share) * initial[key].float() + share * value.float()).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in trained.items()
    }


def initial_weights(
    run: Path, config: TrainConfig, data_dir: str | Path | None
) -> dict[str, torch.Tensor]:
    """The run's weights before its first step (saved, or rebuilt the way the run built them)."""
    from colmax.train.data import load_train_data
    from colmax.train.student import initial_student
    from colmax.train.trainer import INIT

    if (run / INIT).exists():
        return checkpoint.load(run / INIT)["model"]
    if config.projection_init != "pca":
        return build_student(config).model.state_dict()
    if data_dir is None:
        raise InputError(
            f"{run / INIT} is missing (the run predates it); pass the run's data folder so its "
            "initial weights can be rebuilt"
        )
    data = load_train_data(
        data_dir, split=config.split, val_fraction=config.val_fraction, mix=config.mix,
        max_unsupervised=config.max_unsupervised, seed=config.seed,
    )  # fmt: skip
    report = run / "prepare.json"  # the run's PCA ran in bf16 where the CPU had it
    bf16 = bool(json.loads(report.read_text()).get("bf16")) if report.exists() else False
    return initial_student(config, data.corpus.full, bf16=bf16).model.state_dict()


def _training_record(run: Path, config: TrainConfig, state: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "step": state.get("step"),
        # best.pt carries its own validation; last.pt only the run's best so far (another step)
        "validation": state.get("metrics"),
        "best_validation": state.get("best"),
        "config": config.to_dict(),
    }
    for name in ("prepare.json",):
        if (run / name).exists():
            record[name.removesuffix(".json")] = json.loads((run / name).read_text())
    final = json.loads((run / "final.json").read_text()) if (run / "final.json").exists() else {}
    if scored_step(final) == state.get("step"):  # final.json scored these very weights
        record["final"] = final_record(final)
    return record


def final_record(final: dict[str, Any]) -> dict[str, Any]:
    """What a model's ``colmax_model.json`` keeps of its run's RUN/final.json."""
    keep = (
        "validation_full_corpus", "drift_from_step_0", "document_length", "query_length",
        "fragment_task_reference_manual", "question_task_reference_manual",
    )  # fmt: skip
    return {key: final[key] for key in keep if key in final}


def attach_final(model_dir: Path, final: dict[str, Any]) -> None:
    """Record the scores of RUN/final.json in the exported model's ``colmax_model.json`` (the
    run exports before it scores)."""
    path = model_dir / "colmax_model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.setdefault("training", {})["final"] = final_record(final)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
