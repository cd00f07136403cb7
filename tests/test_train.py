"""colmax.train on a toy set: a few optimizer steps reduce the loss, freezing and dropout,
exact resume and Ctrl-C (tiny random checkpoints from checkpoint_factory), and one end-to-end
CLI run with the real MiniLM teacher. Data-side tests are in test_train_data.py, loss values
in test_train_losses.py, the anchors in test_train_anchor.py, saving models in
test_train_export.py; the toy setup is in train_toys.py."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
from toy_data import TOY_DOCS, write_beir
from train_toys import fixed_loss, fresh_trainer, toy_config

from colmax.demo import stdlib_corpus
from colmax.encoder.model import ColbertModel
from colmax.errors import InputError
from colmax.train import checkpoint
from colmax.train.student import build_student, hidden_states, initial_student
from colmax.train.trainer import LAST

# --------------------------------------------------------------------------- training on a toy set


def test_a_few_steps_reduce_the_loss(tiny, tmp_path):
    trainer = fresh_trainer(
        tiny, tmp_path, max_steps=25, grad_accum=1, teacher="none", freeze_embeddings=False
    )
    before = fixed_loss(trainer)
    trainer.fit()
    after = fixed_loss(trainer)
    assert after < 0.7 * before
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").open()]
    train_rows = [h for h in history if h["event"] == "train"]
    assert train_rows and train_rows[-1]["tokens_per_s"] > 0 and "ce@8" in train_rows[-1]
    assert sum(r["micro_batches"]["labeled"] for r in train_rows) == 25  # grad_accum 1


def test_freezing_embeddings_and_lower_layers(tiny):
    model = build_student(toy_config(tiny, freeze_layers=1)).model
    backbone = model.backbone
    assert not backbone.embeddings.word_embeddings.weight.requires_grad
    assert not any(p.requires_grad for p in backbone.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in backbone.encoder.layer[1].parameters())
    assert model.projection.weight.requires_grad
    with pytest.raises(InputError, match="layers"):
        build_student(toy_config(tiny, freeze_layers=5))


def test_the_pca_init_fitted_on_general_text_too_keeps_more_of_it(tiny):
    corpus = [f"{d['title']} {d['text']}" for d in TOY_DOCS] * 4
    held_out = [d["text"] for d in stdlib_corpus(limit=60)[40:]]  # docstrings no PCA saw

    def docstring_loss(pca_text: str) -> float:
        """Share of the held-out docstrings' centred token variance the projection drops."""
        cfg = toy_config(tiny, projection_init="pca", dim=8, dims=(8,), pca_docs=40)
        student = initial_student(replace(cfg, pca_text=pca_text), corpus, bf16=False)
        probe = ColbertModel(
            student.model.backbone, torch.eye(student.model.backbone.config.hidden_size)
        )
        x = hidden_states(probe, student.tokenizer, student.config, student.ids, held_out)
        x = torch.from_numpy(x - x.mean(0))
        w = student.model.projection.weight.detach()
        return float(((x - (x @ w.T) @ w) ** 2).sum() / (x**2).sum())

    assert docstring_loss("corpus+stdlib") < docstring_loss("corpus")
    with pytest.raises(InputError, match="pca_text"):
        toy_config(tiny, pca_text="wiki")


def test_hidden_dropout_zero_makes_training_forward_passes_deterministic(tiny):
    texts = [d["text"] for d in TOY_DOCS]

    def two_train_mode_passes(**overrides) -> tuple[torch.Tensor, torch.Tensor]:
        student = build_student(toy_config(tiny, **overrides))
        student.model.train()
        with torch.no_grad():
            return tuple(student.forward(texts, queries=False).hidden for _ in range(2))

    first, second = two_train_mode_passes()  # the checkpoint's hidden dropout is on
    assert not torch.equal(first, second)
    first, second = two_train_mode_passes(hidden_dropout=0.0)
    assert torch.equal(first, second)
    with pytest.raises(InputError, match="hidden_dropout"):
        toy_config(tiny, hidden_dropout=1.0).validate()


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tiny, tmp_path):
    straight = fresh_trainer(tiny, tmp_path / "a")
    straight.fit()

    first = fresh_trainer(tiny, tmp_path / "b")
    first.fit(stop_at=3)
    assert first.step == 3 and (tmp_path / "b" / LAST).exists()
    state = checkpoint.load(tmp_path / "b" / LAST)
    torch.manual_seed(12345)  # a new sitting starts from other RNG state; resume restores it
    second = fresh_trainer(tiny, tmp_path / "b")
    second.resume(state)
    second.fit()

    assert second.step == straight.step == 6
    a, b = straight.student.model.state_dict(), second.student.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_checkpoints_and_stops_and_a_second_one_stops_at_once(tiny, tmp_path, presses):
    import os
    import signal

    trainer = fresh_trainer(tiny, tmp_path)
    real_step = trainer.train_step
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs as a background job

    def step_then_ctrl_c():
        stats = real_step()
        if trainer.step == 2:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        return stats

    trainer.train_step = step_then_ctrl_c
    if presses == 1:
        trainer.fit()  # returns normally: the step in progress finishes, then a checkpoint
        assert trainer.step == 2
        assert checkpoint.load(tmp_path / LAST)["step"] == 2
    else:
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
        assert not (tmp_path / LAST).exists()  # nothing written after the second press
    assert signal.getsignal(signal.SIGINT) is before  # restored


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize("source", ["fragment", "question", "docquestion", "summary"])
def test_sentence_sources_train_with_their_siblings_as_negatives(tiny, tmp_path, source):
    """Real MiniLM teacher scores over passages (sentences), no mining, then training steps."""
    from colmax.eval.neural import maxsim_rerank
    from colmax.train.minilm import features
    from colmax.train.prepare import QUERY_TOKENS, prepare
    from colmax.train.trainer import Trainer

    data = write_beir(tmp_path / "beir", extra_sentence=True)
    config = toy_config(
        tiny, mix={"labeled": 1, source: 1}, max_steps=4, val_fraction=0.25, max_unsupervised=8
    )
    prepared = prepare(data, config, tmp_path / "cache")
    own = prepared.sources[source]
    assert own.negatives == [list(e.siblings[: config.mine_depth]) for e in own.examples]
    assert not list((tmp_path / "cache").glob(f"negatives-{source}-*"))  # nothing mined
    e, negatives = own.examples[0], own.negatives[0]
    texts = [e.positive, *(prepared.corpus.text(n, "full") for n in negatives)]
    query = features([e.query], max_tokens=QUERY_TOKENS, bf16=prepared.report["bf16"])
    docs = features(texts, max_tokens=config.document_length, bf16=prepared.report["bf16"])
    want = maxsim_rerank(query.tokens[0], docs.tokens)
    got = own.teacher["maxsim"][0]
    assert np.allclose(got[: len(texts)], want, rtol=1e-3) and np.isnan(got[len(texts) :]).all()

    checkpoint.seed_everything(config.seed)
    trainer = Trainer(build_student(config), prepared, config, tmp_path / "run")
    batch = next(b for b in trainer.plan.epoch(0) if b.source == source)
    loss, parts, _ = trainer.micro_batch(batch)
    assert torch.isfinite(loss) and parts["kl@16"] >= 0
    trainer.fit()
    assert trainer.step == 4
    # the history says how many micro-batches each source gave: the plan's first 8
    planned: Counter[str] = Counter()
    position = (0, 0)
    for _ in range(4 * config.grad_accum):
        planned_batch, position = trainer.plan.at(position)
        planned[planned_batch.source] += 1
    rows = map(json.loads, (tmp_path / "run" / "history.jsonl").open())
    logged = sum((Counter(row.get("micro_batches", {})) for row in rows), Counter())
    assert logged == planned and sum(logged.values()) == 8


def test_cli_train_end_to_end_with_the_minilm_teacher(tiny, tmp_path):
    """Mining, teacher scores (real MiniLM), PCA init, validation, export, resume."""
    from typer.testing import CliRunner

    import colmax
    from colmax.cli.main import app

    data = write_beir(tmp_path / "beir")
    run = tmp_path / "run"
    args = [
        "train", str(data), "--run", str(run), "--init", str(tiny), "--dim", "16",
        "--dims", "16,8", "--document-length", "24", "--export-document-length", "40",
        "--export-query-length", "24", "--mine-depth", "4", "--negatives", "2",
        "--batch-size", "4", "--max-steps", "4",
        "--eval-every", "2", "--pool-size", "5", "--val-fraction", "0.25", "--threads", "1",
        "--teacher", "fusion", "--teacher-weights", "maxsim=0.5,bm25=0.5",
        "--anchor-text", "stdlib", "--anchor-distill-weight", "0.5",
        "--mix", "labeled=1,title=1,sentence=1", "--precision", "fp32", "--anchor-weight", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((run / "prepare.json").read_text())
    assert report["examples"] == {"labeled": 6, "title": 8, "sentence": 8}
    assert "maxsim" in report["validation_ndcg@10_teachers_rerank_top100"]
    final = json.loads((run / "final.json").read_text())
    assert set(final["validation_full_corpus"]) >= {"ndcg@10@16", "ndcg@10@8"}
    drift = final["drift_from_step_0"]  # the exported model's backbone against step 0's
    assert set(drift) == {"reference_manual", "docstrings"} and max(drift.values()) < 0.5
    assert (min(drift.values()) > 0) == (final["best_step"] > 0)
    assert colmax.Encoder.load(run / "model").dim == 16
    assert final["query_length"] == colmax.Encoder.load(run / "model").config.query_length == 24
    record = json.loads((run / "model" / "colmax_model.json").read_text())["training"]
    assert record["final"]["validation_full_corpus"] == final["validation_full_corpus"]
    assert list((run / "cache").glob("negatives-*.json"))

    again = CliRunner().invoke(app, args)  # finished: resumes, does nothing, same model
    assert again.exit_code == 0, again.output
    history = [json.loads(line) for line in (run / "history.jsonl").open()]
    assert any("anchor" in h and "anchor-kl@8" in h for h in history if h["event"] == "train")
    saved = json.loads((run / "config.json").read_text())
    assert saved["anchor_text"] == "stdlib" and saved["anchor_distill_weight"] == 0.5
    changed = CliRunner().invoke(app, [*args[:-4], "--precision", "bf16", *args[-2:]])
    assert changed.exit_code == 1 and "other settings" in changed.output
    export = CliRunner().invoke(app, [*args[:4], "--export", str(tmp_path / "shipped")])
    assert export.exit_code == 0 and (tmp_path / "shipped" / "1_Dense").is_dir()
    shipped = json.loads((tmp_path / "shipped" / "colmax_model.json").read_text())["training"]
    assert shipped["final"]["validation_full_corpus"] == final["validation_full_corpus"]
    assert shipped["final"]["drift_from_step_0"] == drift  # the card's numbers travel with it
    assert (run / "checkpoints" / "init.pt").exists()  # step 0, for interpolated exports
    mixed = tmp_path / "mixed"
    export = CliRunner().invoke(app, [*args[:4], "--export", str(mixed), "--interpolate", "0.7"])
    assert export.exit_code == 0, export.output
    record = json.loads((mixed / "colmax_model.json").read_text())["training"]
    assert record["interpolation"]["trained_share"] == 0.7 and "final" not in record
    record_mixed = record

    last = tmp_path / "last"  # the finished run, scored again on its last checkpoint
    again = CliRunner().invoke(app, [*args, "--export-last", "--output", str(last)])
    assert again.exit_code == 0, again.output
    final_last = json.loads((run / "final.json").read_text())
    assert final_last["step"] == 4 and final_last["best_step"] == final["best_step"]
    assert json.loads((last / "colmax_model.json").read_text())["training"]["step"] == 4
    card = tmp_path / "card"  # an export of that step now carries its final scores
    export = CliRunner().invoke(app, [*args[:4], "--export", str(card), "--export-last"])
    assert export.exit_code == 0, export.output
    record = json.loads((card / "colmax_model.json").read_text())["training"]
    assert record["final"]["validation_full_corpus"] == final_last["validation_full_corpus"]
    clash = CliRunner().invoke(app, [*args, "--export-last", "--output", str(mixed)])
    assert clash.exit_code == 1 and "already holds another model" in clash.output
    assert json.loads((mixed / "colmax_model.json").read_text())["training"] == record_mixed
