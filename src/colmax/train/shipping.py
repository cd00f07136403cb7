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
    encoder = student.encoder(document_length=config.export_document_length)
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


def export(
    run_dir: str | Path,
    target: str | Path,
    *,
    which: str = "best",
    name: str | None = None,
    half: bool = True,
) -> Path:
    """Export a run's best (or last) checkpoint to ``target``."""
    from colmax.train.trainer import BEST, LAST

    run = Path(run_dir).expanduser()
    if which not in ("best", "last"):
        raise InputError(f"which must be 'best' or 'last', not {which!r}")
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
    student = build_student(config, state=state["model"])
    training = _training_record(run, config, state)
    return save_model(student, target, config, name=name, training=training, half=half)


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
    return record
