"""The bundled default model: loads offline, is recorded by name, and ranks sensibly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import colmax
from colmax.cli.main import app
from colmax.encoder.checkpoints import DEFAULT_MODEL, bundled_models

PASSAGES = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The mitochondrion is the powerhouse of the cell, producing ATP.",
    "Mount Everest is Earth's highest mountain above sea level, in the Himalayas.",
    "Python's json module parses JSON strings into dictionaries and lists.",
]
QUESTIONS = [
    ("which tower stands in Paris?", 0),
    ("how do plants turn sunlight into sugar", 1),
    ("what organelle makes ATP", 2),
    ("what is the tallest mountain in the world", 3),
    ("parse a JSON string in Python", 4),
]


def test_default_model_is_bundled_and_named(default_encoder):
    assert DEFAULT_MODEL in bundled_models()
    assert default_encoder.identity.name == DEFAULT_MODEL
    described = default_encoder.describe()
    assert described["dim"] == default_encoder.dim and len(described["fingerprint"]) == 16


def test_default_model_loads_without_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("colmax tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    enc = colmax.Encoder.load()
    assert enc.encode_queries(["offline"])[0].shape[1] == enc.dim


def test_default_model_vectors_are_unit_float16(default_encoder):
    docs = default_encoder.encode_documents(PASSAGES)
    for vectors in docs:
        assert vectors.dtype == np.float16
        norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=3e-3)


def test_rerank_puts_the_answer_first(default_encoder):
    for question, answer in QUESTIONS:
        hits = colmax.rerank(question, PASSAGES, encoder=default_encoder)
        assert hits[0].index == answer, (question, hits[:2])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rerank_top_n_and_empty_input(default_encoder):
    assert len(colmax.rerank("tower", PASSAGES, top_n=2, encoder=default_encoder)) == 2
    assert colmax.rerank("tower", [], encoder=default_encoder) == []


@pytest.mark.slow
def test_default_model_beats_untrained_minilm_on_held_out_questions():
    """The claim the default model shipped on (docs/TRAINING.md): measurably better than
    untrained MiniLM on questions about text no training read, through ``colmax heldout``."""
    from colmax.train.questions import reference_paragraphs

    if not reference_paragraphs():
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    result = CliRunner().invoke(
        app, ["heldout", "colmax-minilm-v1", DEFAULT_MODEL, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["name"] for r in rows] == ["colmax-minilm-v1", DEFAULT_MODEL]
    assert rows[1]["delta"]["ndcg@10"] > 0.02 and rows[1]["p_value"]["ndcg@10"] < 0.05
    assert 0.5 < rows[0]["scores"]["ndcg@10"] < rows[1]["scores"]["ndcg@10"] < 1.0


@pytest.mark.slow
def test_default_model_beats_untrained_minilm_on_the_topical_section_task():
    """Topical retrieval of held-out text (Cranfield's shape: several relevant per query): the
    reference manual's section headings against its paragraphs, through ``colmax heldout``."""
    from colmax.train.drift import reference_sections

    if not reference_sections():
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    result = CliRunner().invoke(
        app,
        ["heldout", "colmax-minilm-v1", DEFAULT_MODEL, "--level", "section", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["num_queries"] > 100  # one per section heading with paragraphs
    base, trained = found["rows"]
    assert 0.3 < base["scores"]["ndcg@10"] < trained["scores"]["ndcg@10"] < 0.9
