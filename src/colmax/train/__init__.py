"""Training colmax models: ``colmax.train.train(data_dir, run_dir, ...)`` and ``colmax train``.

Triples with mined hard negatives (BM25 + bi-encoder), in-batch negatives, distillation from a
MiniLM MaxSim / fusion teacher, Matryoshka dims, checkpoints that resume exactly. See
docs/TRAINING.md. Names load lazily, so importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["TrainConfig", "TrainResult", "export", "train"]

_LAZY = {
    "TrainConfig": ("colmax.train.config", "TrainConfig"),
    "TrainResult": ("colmax.train.run", "TrainResult"),
    "train": ("colmax.train.run", "train"),
    "export": ("colmax.train.shipping", "export"),
}

if TYPE_CHECKING:  # pragma: no cover
    from colmax.train.config import TrainConfig
    from colmax.train.run import TrainResult, train
    from colmax.train.shipping import export


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'colmax.train' has no attribute {name!r}")
