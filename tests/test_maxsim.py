"""The one exact MaxSim: ragged (numpy) and padded (torch) agree with a plain loop."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import colmax.maxsim
from colmax.errors import DimensionMismatchError
from colmax.maxsim import maxsim_padded, maxsim_ragged, pad_documents, ragged_offsets


def loop_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(qv @ dv) for dv in d) for qv in q))


def unit(rng, *shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_doctests_pass():
    assert doctest.testmod(colmax.maxsim).failed == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.lists(st.integers(1, 9), min_size=1, max_size=7), st.integers(0, 99))
def test_ragged_and_padded_equal_the_loop(n_queries, lengths, seed):
    rng = np.random.default_rng(seed)
    queries = unit(rng, n_queries, 5, 8)
    docs = [unit(rng, n, 8) for n in lengths]
    expect = np.array([[loop_maxsim(q, d) for d in docs] for q in queries])
    ragged = maxsim_ragged(queries, np.concatenate(docs), ragged_offsets(docs))
    padded, mask = pad_documents(docs)
    dense = maxsim_padded(torch.from_numpy(queries), padded, mask).numpy()
    np.testing.assert_allclose(ragged, expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense, expect, rtol=1e-5, atol=1e-5)


def test_padding_never_wins_even_when_all_similarities_are_negative():
    q = np.array([[[1.0, 0.0]]], dtype=np.float32)
    docs = [np.array([[-1.0, 0.0]], dtype=np.float32), np.array([[-0.5, 0.5]] * 3, np.float32)]
    padded, mask = pad_documents(docs)
    scores = maxsim_padded(torch.from_numpy(q), padded, mask)
    assert scores.tolist() == [[-1.0, -0.5]]  # a zero pad would have given 0.0


def test_query_mask_drops_query_positions():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    d, m = pad_documents([np.array([[1.0, 0.0]], dtype=np.float32)])
    assert maxsim_padded(q, d, m, torch.tensor([[True, False]])).item() == pytest.approx(1.0)


def test_float16_input_scores_like_float32():
    rng = np.random.default_rng(0)
    q, docs = unit(rng, 32, 16), [unit(rng, 40, 16) for _ in range(3)]
    a = maxsim_ragged(
        q.astype(np.float16), np.concatenate(docs).astype(np.float16), ragged_offsets(docs)
    )
    b = maxsim_ragged(q, np.concatenate(docs), ragged_offsets(docs))
    np.testing.assert_allclose(a, b, atol=0.05)


def test_empty_document_scores_minus_infinity():
    q = np.ones((2, 3), dtype=np.float32)
    docs = [np.ones((2, 3), np.float32), np.zeros((0, 3), np.float32)]
    scores = maxsim_ragged(q, np.concatenate(docs), ragged_offsets(docs))
    assert scores[0] == pytest.approx(6.0) and scores[1] == -np.inf


def test_offsets_into_a_larger_block():
    rng = np.random.default_rng(1)
    block = unit(rng, 10, 4)
    q = unit(rng, 3, 4)
    scores = maxsim_ragged(q, block, np.array([4, 6, 10]))
    assert scores[0] == pytest.approx(loop_maxsim(q, block[4:6]), abs=1e-5)
    assert scores[1] == pytest.approx(loop_maxsim(q, block[6:10]), abs=1e-5)


def test_dimension_mismatch_is_an_error():
    with pytest.raises(DimensionMismatchError):
        maxsim_ragged(np.ones((2, 3)), np.ones((4, 5)), np.array([0, 4]))
