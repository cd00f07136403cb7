"""The anchors on a toy set (tiny random checkpoints): the feature anchor keeps token states
near the initial backbone's, on the batch or on standard-library docstrings, and the score
anchor keeps the student's MaxSim ranking of docstring pairs near the initial backbone's
full-width MaxSim."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F
from toy_data import TOY_DOCS
from train_toys import fixed_loss, toy_config, toy_prepared

from colmax.demo import stdlib_corpus
from colmax.maxsim import maxsim_padded
from colmax.train import checkpoint, losses
from colmax.train.anchor import Anchors
from colmax.train.data import split_sentences
from colmax.train.student import anchor_backbone, build_student
from colmax.train.trainer import Trainer


def token_state_gap(
    trainer: Trainer, reference: torch.nn.Module, texts: list[str] | None = None
) -> float:
    """Mean 1 - cos between the trained backbone's document token states and ``reference``'s
    (on ``texts``, by default the toy documents)."""
    trainer.student.model.eval()
    with torch.no_grad():
        out = trainer.student.forward(texts or [d["text"] for d in TOY_DOCS], queries=False)
        ref = reference(input_ids=out.input_ids, attention_mask=out.attention)[0]
        return float(losses.anchor_loss(out.hidden, ref, out.mask))


def test_the_feature_anchor_keeps_token_states_near_the_initial_backbone(tiny, tmp_path):
    gaps = {}
    for weight in (0.0, 50.0):
        config = toy_config(tiny, max_steps=25, grad_accum=1, teacher="none", anchor_weight=weight)
        checkpoint.seed_everything(config.seed)
        student = build_student(config)
        initial = anchor_backbone(student.model, student.model.state_dict())
        assert not any(p.requires_grad for p in initial.parameters())
        trainer = Trainer(
            student, toy_prepared(False), config, tmp_path / str(weight), anchor=initial
        )
        assert (trainer.anchor is None) == (weight == 0)
        before = fixed_loss(trainer)
        trainer.fit()
        assert fixed_loss(trainer) < before  # it still learns the task
        gaps[weight] = token_state_gap(trainer, initial)
        rows = [json.loads(line) for line in (tmp_path / str(weight) / "history.jsonl").open()]
        assert ("anchor" in [r for r in rows if r["event"] == "train"][-1]) == (weight > 0)
    assert gaps[0.0] > 0.01  # training without the anchor moves the states ...
    assert gaps[50.0] < 0.5 * gaps[0.0]  # ... and the anchor holds them back


def test_the_anchor_on_general_text_holds_docstring_states(tiny, tmp_path):
    docstrings = [d["text"] for d in stdlib_corpus(limit=64)]
    gaps = {}
    for weight in (0.0, 50.0):
        config = toy_config(
            tiny, max_steps=25, grad_accum=1, teacher="none", anchor_weight=weight,
            anchor_text="stdlib",
        )  # fmt: skip
        checkpoint.seed_everything(config.seed)
        student = build_student(config)
        initial = anchor_backbone(student.model, student.model.state_dict())
        trainer = Trainer(
            student, toy_prepared(False), config, tmp_path / str(weight), anchor=initial
        )
        if weight:
            assert trainer.anchor is not None
            assert len(trainer.anchor.texts) > 1000  # the whole docstring corpus
            batch = trainer.plan.at((0, 0))[0]
            draw = trainer.anchor.general_batch
            first, again = draw(trainer.student, batch), draw(trainer.student, batch)
            assert torch.equal(first[1].input_ids, again[1].input_ids)  # drawn by position
            assert len(first[0].input_ids) == len(batch.rows)
            _, parts, tokens = trainer.micro_batch(batch)
            assert tokens > first[0].tokens + first[1].tokens and parts["anchor"] >= 0
        before = fixed_loss(trainer)
        trainer.fit()
        assert fixed_loss(trainer) < before  # it still learns the toy task
        gaps[weight] = token_state_gap(trainer, initial, docstrings)
    assert gaps[0.0] > 0.01  # training on the toy set moves the states of general text ...
    assert gaps[50.0] < 0.5 * gaps[0.0]  # ... and the anchor on docstrings holds them back


def ranking_agreement(
    trainer: Trainer, reference: torch.nn.Module, texts: list[str]
) -> tuple[float, float]:
    """On ``texts`` (first sentence -> whole text, every pair), in eval mode: the score
    anchor's KL at the full dim, and the mean Spearman correlation per query between the
    student's MaxSim and the reference's full-width MaxSim."""
    dim = trainer.config.dim
    probe = Anchors(reference, distill_dims=(dim,))
    trainer.student.model.eval()
    with torch.no_grad():
        queries = trainer.student.forward([split_sentences(t)[0] for t in texts], queries=True)
        docs = trainer.student.forward(texts, queries=False)
        kl = float(probe.terms(trainer.student, None, (queries, docs)).distill[dim])
        ours = maxsim_padded(queries.vectors, docs.vectors, docs.mask, queries.mask)
        ref_q = reference(input_ids=queries.input_ids, attention_mask=queries.attention)[0]
        ref_d = reference(input_ids=docs.input_ids, attention_mask=docs.attention)[0]
        theirs = maxsim_padded(
            F.normalize(ref_q, dim=-1), F.normalize(ref_d, dim=-1), docs.mask, queries.mask
        )
    ranks = [m.numpy().argsort(-1).argsort(-1) for m in (ours, theirs)]  # no ties in floats
    rho = [np.corrcoef(a, b)[0, 1] for a, b in zip(*ranks)]
    return kl, float(np.mean(rho))


def test_the_score_anchor_keeps_ranking_general_text_like_the_initial_backbone(tiny, tmp_path):
    docstrings = [d["text"] for d in stdlib_corpus(limit=32)]
    kls, rhos = {}, {}
    for weight in (0.0, 5.0):
        config = toy_config(
            tiny, max_steps=25, grad_accum=1, teacher="none", anchor_text="stdlib",
            anchor_distill_weight=weight,
        )  # fmt: skip
        assert config.anchored == (weight > 0)  # no feature anchor: the score anchor alone
        checkpoint.seed_everything(config.seed)
        student = build_student(config)
        initial = anchor_backbone(student.model, student.model.state_dict())
        trainer = Trainer(
            student, toy_prepared(False), config, tmp_path / str(weight), anchor=initial
        )
        if trainer.anchor is not None:
            trainer.anchor.texts = docstrings  # anchored on the texts it is measured on
        before = fixed_loss(trainer)
        trainer.fit()
        assert fixed_loss(trainer) < before  # it still learns the toy task
        kls[weight], rhos[weight] = ranking_agreement(trainer, initial, docstrings)
        rows = [json.loads(line) for line in (tmp_path / str(weight) / "history.jsonl").open()]
        last = [r for r in rows if r["event"] == "train"][-1]
        assert ("anchor-kl@16" in last and "anchor-kl@8" in last) == (weight > 0)
    assert kls[5.0] < 0.85 * kls[0.0]  # closer to the reference's ranking distribution ...
    assert rhos[5.0] > rhos[0.0] + 0.02  # ... and to its order
