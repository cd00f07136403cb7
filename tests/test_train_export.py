"""Saving a trained model: the PyLate-layout round trip, the saved query length, and
weight-interpolated exports (tiny random checkpoints from checkpoint_factory)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_data import TOY_DOCS
from train_toys import fresh_trainer, toy_config

from colmax.errors import InputError
from colmax.train import checkpoint
from colmax.train.student import build_student


def test_export_round_trip(tiny, tmp_path):
    from transformers import AutoModel

    import colmax
    from colmax.train.shipping import save_model

    trainer = fresh_trainer(tiny, tmp_path / "run", max_steps=2)
    trainer.fit()
    folder = save_model(trainer.student, tmp_path / "tiny-trained", trainer.config)
    st = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st["query_prefix"] == "[unused0]" and st["document_prefix"] == "[unused1]"
    # trained on queries of <= 16 tokens, saved to accept 20 (no [MASK] padding to keep)
    assert st["query_length"] == 20 and st["document_length"] == 40
    assert st["matryoshka_dims"] == [16, 8] and st["do_query_expansion"] is False
    meta = json.loads((folder / "colmax_model.json").read_text())
    assert meta["name"] == "tiny-trained" and meta["dtype"] == "float16"
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118

    loaded = colmax.Encoder.load(folder, precision="fp32")
    assert loaded.dim == 16 and loaded.identity.name == "tiny-trained"
    mine = trainer.student.encoder(document_length=40, precision="fp32")
    texts = [d["text"] for d in TOY_DOCS]
    for x, y in zip(mine.encode_documents(texts), loaded.encode_documents(texts)):
        assert x.shape == y.shape
        assert np.abs(x.astype(np.float32) - y.astype(np.float32)).max() < 0.02
    backbone = AutoModel.from_pretrained(str(folder))  # the full backbone loads on its own
    assert backbone.config.hidden_size == 32
    eight = colmax.Encoder.load(folder, dim=8)
    assert eight.encode_queries(["volcano"])[0].shape[1] == 8
    long_query = " ".join(["volcano"] * 30)
    assert loaded.encode_queries([long_query])[0].shape[0] == 20  # cut at the saved length


def test_export_keeps_the_trained_padding_with_query_expansion(tiny, tmp_path):
    import colmax
    from colmax.train.shipping import save_model

    config = toy_config(tiny, query_expansion=True)
    folder = save_model(build_student(config), tmp_path / "expanded", config)
    st = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert st["do_query_expansion"] is True and st["query_length"] == 16  # not 20
    loaded = colmax.Encoder.load(folder, precision="fp32")
    assert [q.shape[0] for q in loaded.encode_queries(["volcano", "lava flows"])] == [16, 16]


def test_interpolate_weights_mixes_float_tensors_only():
    from colmax.train.shipping import interpolate_weights

    initial = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([1, 2])}
    trained = {"w": torch.tensor([4.0, 6.0]), "ids": torch.tensor([3, 4])}
    mixed = interpolate_weights(initial, trained, 0.25)
    assert mixed["w"].tolist() == [1.0, 3.0] and mixed["ids"].tolist() == [3, 4]
    with pytest.raises(InputError, match="different tensors"):
        interpolate_weights({"v": torch.zeros(2)}, trained, 0.5)


def test_interpolated_export_runs_from_step_zero_to_the_trained_weights(tiny, tmp_path):
    import colmax
    from colmax.train.shipping import export
    from colmax.train.trainer import INIT

    run = tmp_path / "run"
    trainer = fresh_trainer(tiny, run, max_steps=3, teacher="none")
    checkpoint.save(run / INIT, {"model": trainer.student.model.state_dict()})
    trainer.config.save(run / "config.json")
    trainer.fit()
    texts = [d["text"] for d in TOY_DOCS]

    def vectors(folder: Path) -> list[np.ndarray]:
        encoder = colmax.Encoder.load(folder, precision="fp32")
        return [v.astype(np.float32) for v in encoder.encode_documents(texts)]

    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return all(np.abs(x - y).max() < 0.02 for x, y in zip(a, b))

    trained = vectors(export(run, tmp_path / "trained", which="last"))
    start = vectors(export(run, tmp_path / "start", which="last", interpolate=0.0))
    half_folder = export(run, tmp_path / "half", which="last", interpolate=0.5)
    half = vectors(half_folder)
    base = vectors(tiny)
    assert same(start, base) and not same(trained, base)
    assert not same(half, trained) and not same(half, start)
    record = json.loads((half_folder / "colmax_model.json").read_text())["training"]
    assert record["interpolation"] == {"trained_share": 0.5, "from": "step 0"}
    # a run without init.pt rebuilds its step-0 weights (here: the 'keep' init)
    (run / INIT).unlink()
    assert same(vectors(export(run, tmp_path / "rebuilt", which="last", interpolate=0.0)), base)
    with pytest.raises(InputError, match="between 0 and 1"):
        export(run, tmp_path / "bad", interpolate=1.5)
