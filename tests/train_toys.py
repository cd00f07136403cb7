"""The toy training setup shared by the training tests: a tiny random checkpoint (the ``tiny``
fixture, registered in conftest.py), a config sized for it, and a trainer on the toy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_factory import make_pylate
from toy_data import TOY_DOCS, TOY_QUERIES

from colmax.train import checkpoint
from colmax.train.config import TrainConfig
from colmax.train.data import Corpus, Example
from colmax.train.prepare import Prepared, SourceData
from colmax.train.student import build_student
from colmax.train.trainer import Trainer


def toy_prepared(distill: bool = True) -> Prepared:
    corpus = Corpus(
        ids=[d["id"] for d in TOY_DOCS],
        full=[f"{d['title']}\n{d['text']}" for d in TOY_DOCS],
        body=[d["text"] for d in TOY_DOCS],
    )
    examples = [
        Example(f"q:{q}:{d}", "labeled", text, corpus.text(d, "full"), d, (d,))
        for q, text, d in TOY_QUERIES
    ]
    negatives = [[d for d in corpus.ids if d != e.doc_id][:5] for e in examples]
    comps = None
    if distill:
        rng = np.random.default_rng(0)
        base = rng.normal(size=(len(examples), 6)).astype(np.float32)
        base[:, 0] += 3.0
        comps = {"maxsim": base, "bm25": base, "biencoder": base}
    return Prepared(
        corpus=corpus,
        sources={"labeled": SourceData(examples, negatives, comps)},
        val_queries={},
        val_qrels={},
        val_pool={},
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_pylate(tmp_path_factory.mktemp("tiny") / "ckpt", dim=16)


def toy_config(tiny: Path, **overrides) -> TrainConfig:
    settings = dict(
        init=str(tiny),
        projection_init="keep",
        dim=16,
        dims=(16, 8),
        query_length=16,
        document_length=24,
        export_document_length=40,
        export_query_length=20,
        mine_depth=5,
        negatives=2,
        batch_size=4,
        grad_accum=2,
        lr=3e-3,
        projection_lr=3e-3,
        warmup=0.1,
        max_steps=6,
        precision="fp32",
        eval_every=0,
        checkpoint_every=1000,
        progress=False,
        teacher="maxsim",
    )
    settings.update(overrides)
    return TrainConfig(**settings).validate()


def fresh_trainer(tiny: Path, run: Path, **overrides) -> Trainer:
    config = toy_config(tiny, **overrides)
    checkpoint.seed_everything(config.seed)
    student = build_student(config)
    return Trainer(student, toy_prepared(config.distill), config, run)


def fixed_loss(trainer: Trainer) -> float:
    """The loss of every toy example against all others, dropout off."""
    trainer.student.model.eval()
    with torch.no_grad():
        batch = trainer.plan.epoch(0)[0]
        full = type(batch)(0, 0, "labeled", tuple(range(8)))
        loss, _, _ = trainer.micro_batch(full)
    return float(loss)
