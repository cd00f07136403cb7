"""The technical-docstring held-out task (train/library_docs.py): numpydoc prose extraction on
a written docstring, and the task on the installed SciPy with the real MiniLM encoder."""

from __future__ import annotations

import pytest

from colmax.encoder import Encoder
from colmax.eval.metrics import evaluate
from colmax.train.library_docs import (
    MIN_PROSE_WORDS,
    MIN_SUMMARY_WORDS,
    numpydoc_prose,
    scipy_docstrings,
)
from colmax.train.questions import docstring_task_run

DOC = """Estimate power spectral density using Welch's method.

    Welch's method computes an estimate of the power spectral density by
    dividing the data into overlapping segments.

    Parameters
    ----------
    x : array_like
        Time series of measurement values.

    Returns
    -------
    f : ndarray
        Array of sample frequencies.

    Notes
    -----
    An appropriate amount of overlap will depend on the choice of window
    and on your requirements; for the default Hann window it is ``50%``.

    .. versionadded:: 0.12.0

    Examples
    --------
    >>> f, Pxx = welch(x)
    """


def test_numpydoc_prose_keeps_the_summary_and_the_prose_sections_only() -> None:
    summary, prose = numpydoc_prose(DOC)
    assert summary == "Estimate power spectral density using Welch's method."
    assert prose.startswith("Welch's method computes an estimate")
    assert "for the default Hann window it is 50%." in prose  # Notes kept, markup dropped
    for cut in ("Time series", "sample frequencies", "welch(x)", "versionadded", "----"):
        assert cut not in prose


def _scipy_entries() -> dict[str, tuple[str, str]]:
    entries = scipy_docstrings()
    if not entries:
        pytest.skip("SciPy is not installed (it comes with colmax[eval])")
    return entries


def test_scipy_docstrings_are_distinct_and_long_enough() -> None:
    entries = _scipy_entries()
    assert len(entries) > 500
    assert list(entries) == sorted(entries)
    proses = [prose for _, prose in entries.values()]
    assert len(set(proses)) == len(proses)
    for summary, prose in entries.values():
        assert len(summary.split()) >= MIN_SUMMARY_WORDS
        assert len(prose.split()) >= MIN_PROSE_WORDS
        assert ">>>" not in prose


@pytest.mark.slow
def test_untrained_minilm_finds_most_docstrings_from_their_summary() -> None:
    """One relevant text per summary, in the run; MiniLM ranks it near the top (measured:
    nDCG@10 0.63 on SciPy 1.17) far above chance (about 1 in 1,000)."""
    _scipy_entries()
    qrels, run = docstring_task_run(Encoder.load("colmax-minilm-v1"), depth=10)
    assert all(len(relevant) == 1 for relevant in qrels.values())
    assert set(run) == set(qrels)
    ndcg = evaluate(qrels, run, ("ndcg@10",))["ndcg@10"]
    assert 0.4 < ndcg < 0.9


def test_heldout_says_to_install_scipy_when_it_is_missing(monkeypatch) -> None:
    from typer.testing import CliRunner

    import colmax.train.library_docs as library_docs
    from colmax.cli.main import app

    monkeypatch.setattr(library_docs, "scipy_docstrings", dict)  # as without SciPy: no entries
    args = ["heldout", "colmax-minilm-v1", "colmax-minilm-v1", "--level", "docstring"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "install colmax[eval]" in result.stderr
