"""colmax.train.losses against hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from colmax.train import losses

SCORES = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 1.0, 3.0, 1.0]])  # 2 queries, group 2


def test_ce_in_batch_matches_hand_computation():
    row0 = math.log(math.e**2 + 1 + math.e + 1) - 2
    row1 = math.log(1 + math.e + math.e**3 + math.e) - 3
    got = losses.retrieval_loss(SCORES, 2, kind="ce")
    assert got.item() == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_ce_own_negatives_only_and_temperature():
    own = math.log(1 + math.exp(-2))  # both rows: positive 2 above its one negative
    got = losses.retrieval_loss(SCORES, 2, kind="ce", in_batch=False)
    assert got.item() == pytest.approx(own, abs=1e-6)
    hot = losses.retrieval_loss(SCORES, 2, kind="ce", in_batch=False, temperature=2.0)
    assert hot.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_pairwise_is_colberts_two_way_softmax():
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    pairs = [sp(0 - 2), sp(1 - 2), sp(0 - 2), sp(0 - 3), sp(1 - 3), sp(1 - 3)]
    got = losses.retrieval_loss(SCORES, 2, kind="pairwise")
    assert got.item() == pytest.approx(sum(pairs) / 6, abs=1e-6)


def test_hinge_margin():
    # margin 2: row 0 pairs (2 vs 0, 1, 0) -> 0, 1, 0; row 1 (3 vs 0, 1, 1) -> 0, 0, 0
    got = losses.retrieval_loss(SCORES, 2, kind="hinge", margin=2.0)
    assert got.item() == pytest.approx(1 / 6, abs=1e-6)
    own = losses.retrieval_loss(SCORES, 2, kind="hinge", margin=2.0, in_batch=False)
    assert own.item() == pytest.approx(0.0, abs=1e-6)


def test_exclude_drops_known_positives_from_the_negatives():
    exclude = torch.zeros(2, 4, dtype=torch.bool)
    exclude[0, 2] = True  # document 2 is also a positive of query 0
    row0 = math.log(math.e**2 + 1 + 1) - 2
    row1 = math.log(1 + math.e + math.e**3 + math.e) - 3
    got = losses.retrieval_loss(SCORES, 2, kind="ce", exclude=exclude)
    assert got.item() == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_distillation_kl_hand_computed():
    student = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[math.log(3.0), 0.0]])  # teacher probabilities .75 / .25
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    got = losses.distillation_loss(student, target)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert losses.distillation_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)


def test_anchor_loss_hand_computed():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]])
    reference = torch.tensor([[[2.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [5.0, -7.0]]])
    mask = torch.tensor([[True, True, True, False]])  # the last position does not count
    # 1 - cos per counted position: same direction 0, orthogonal 1, opposite 2
    assert losses.anchor_loss(hidden, reference, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert losses.anchor_loss(hidden, hidden, torch.ones(1, 4, dtype=torch.bool)).item() == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_zscore_rows_hand_computed():
    scores = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    z = losses.zscore_rows(scores)
    sd = math.sqrt(2.0 / 3.0)  # population std of 1, 2, 3
    assert z[0].tolist() == pytest.approx([-1.0 / sd, 0.0, 1.0 / sd], abs=1e-6)
    assert z[1].tolist() == [0.0, 0.0, 0.0]  # a constant row stays finite


def test_own_scores_and_shape_check():
    assert losses.own_scores(SCORES, 2).tolist() == [[2.0, 0.0], [3.0, 1.0]]
    with pytest.raises(ValueError, match="columns"):
        losses.retrieval_loss(SCORES, 3)
