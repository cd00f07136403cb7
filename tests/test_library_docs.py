"""Library docstrings (train/library_docs.py): prose extraction on written numpydoc and Google
style docstrings, the held-out task on the installed SciPy with the real MiniLM encoder, and
the ``summary`` training source on the installed standard library and torch."""

from __future__ import annotations

import pytest

from colmax.encoder import Encoder
from colmax.eval.metrics import evaluate
from colmax.train.library_docs import (
    MIN_PROSE_WORDS,
    MIN_SUMMARY_WORDS,
    numpydoc_prose,
    scipy_docstrings,
    summary_pairs,
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


TORCH_STYLE = """softshrink(input, lambd=0.5) -> Tensor

    Applies the soft shrinkage function elementwise. It shrinks values
    towards zero by :attr:`lambd`, as follows::

        out = input - lambd

    .. math::
        \\text{SoftShrinkage}(x) = x - \\lambda

    Args:
        input (Tensor): the input tensor.
        lambd (float): the lambda value. Default: 0.5

    .. note::
        Gradients at the kinks are taken to be zero.

    Example::

        >>> torch.nn.functional.softshrink(torch.randn(2))
    """


def test_google_prose_drops_the_signature_code_math_and_argument_sections() -> None:
    summary, prose = numpydoc_prose(TORCH_STYLE, google=True)
    assert summary == "Applies the soft shrinkage function elementwise."  # first sentence
    assert prose.startswith("It shrinks values towards zero by lambd, as follows:")
    assert "Gradients at the kinks are taken to be zero." in prose  # the note is prose
    for cut in ("out = input", "SoftShrinkage", "input tensor", "Default", "randn", "math"):
        assert cut not in prose
    assert numpydoc_prose(TORCH_STYLE)[0].startswith("softshrink(")  # numpydoc mode: as before


def test_summary_source_pairs_each_summary_with_its_prose_against_its_module() -> None:
    examples, passages = summary_pairs()
    assert len(examples) > 800
    libraries = {e.key.split(":")[1] for e in examples}
    assert libraries == {"stdlib", "torch"}  # SciPy and NumPy stay held out
    assert not any(e.key.startswith(("summary:torch:torch.fft", "summary:torch:torch.linalg"))
                   for e in examples)  # fmt: skip
    for e in examples:
        assert e.source == "summary" and passages[e.doc_id] == e.positive
        assert e.known == (e.doc_id,) and e.siblings and e.doc_id not in e.siblings
        assert len(e.query.split()) >= MIN_SUMMARY_WORDS
        assert e.query not in e.positive  # the summary is not repeated in its prose
        assert all(passages[n] != e.positive for n in e.siblings)
    by_key = {e.key: e for e in examples}
    nll = by_key["summary:torch:torch.nn.NLLLoss"]
    assert all(n.startswith("summary:torch:torch.nn.") for n in nll.siblings)
    sample, _ = summary_pairs(limit=50, seed=3)
    assert len(sample) <= 50 and {e.key for e in sample} <= set(by_key)
    assert [e.key for e in sample] == [e.key for e in summary_pairs(limit=50, seed=3)[0]]


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
