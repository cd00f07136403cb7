"""Backbone drift on general text (train/drift.py) with real MiniLM weights."""

from __future__ import annotations

import copy

import pytest
import torch

from colmax.demo import stdlib_corpus
from colmax.encoder import Encoder
from colmax.encoder.checkpoints import DEFAULT_MODEL
from colmax.train.drift import (
    backbone_drift,
    docstrings,
    fragment_accuracy,
    general_drift,
    ranking_agreement,
    reference_manual,
)


def test_the_general_texts_are_fixed_and_held_out_from_the_anchor() -> None:
    manual = reference_manual()
    if not manual:
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    assert len(manual) == 200 and manual == reference_manual()
    assert min(len(p.split()) for p in manual) >= 25
    anchor_texts = {doc["text"] for doc in stdlib_corpus()}  # what --anchor-text stdlib sees
    assert not anchor_texts & set(manual)
    assert set(docstrings(50)) <= anchor_texts and len(docstrings(50)) == 50


@pytest.mark.slow
def test_drift_is_zero_for_the_same_weights_and_grows_with_a_change() -> None:
    encoder = Encoder.load("colmax-minilm-v1", threads=1)
    reference = copy.deepcopy(encoder.model.backbone)
    assert general_drift(encoder, reference) == {"reference_manual": 0.0, "docstrings": 0.0}
    texts = reference_manual(16) or docstrings(16)
    moved = []
    for scale in (0.01, 0.05):
        changed = copy.deepcopy(encoder.model.backbone)
        torch.manual_seed(0)
        with torch.no_grad():
            layer = changed.encoder.layer[3].output.dense.weight
            layer.add_(scale * torch.randn_like(layer))
        moved.append(backbone_drift(changed, reference, encoder.tokenizer, texts))
    assert 0 < moved[0] < moved[1] < 1


@pytest.mark.slow
def test_ranking_agreement_is_one_for_the_same_model_and_falls_with_fewer_dims() -> None:
    texts = reference_manual(60) or docstrings(60)
    base = Encoder.load("colmax-minilm-v1", threads=1)
    assert ranking_agreement(base, base, texts, (384,)) == {"384": 1.0}
    trained = ranking_agreement(Encoder.load(DEFAULT_MODEL, threads=1), base, texts, (128, 16))
    assert set(trained) == {"128", "16"}
    assert 0.3 < trained["16"] < trained["128"] < 1.0  # closer to MiniLM with more of its dims
    # MiniLM's own vectors cut to 16 dims (not a trained prefix) keep little of its ranking
    assert ranking_agreement(base, base, texts, (16,))["16"] < trained["16"]


@pytest.mark.slow
def test_fragment_accuracy_finds_the_sentence_a_few_words_come_from() -> None:
    base = Encoder.load("colmax-minilm-v1", threads=1)
    texts = reference_manual(None)[:150] or docstrings(150)
    assert 0.7 < fragment_accuracy(base, texts) < 1.0  # chance is about 1 in 4
    same = "The same sentence is written here again and again for the test."
    assert fragment_accuracy(base, [" ".join([same] * 3)]) == 0.0  # a tie is not a hit
    assert fragment_accuracy(base, ["Two sentences only are here. Nothing more is said."]) is None
