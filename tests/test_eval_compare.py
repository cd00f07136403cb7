"""Paired significance tests between runs: statistics on hand-made runs, TREC run files, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from colmax.errors import InputError
from colmax.eval.compare import compare_runs, load_run, save_run
from colmax.eval.metrics import evaluate

N = 40
QRELS = {f"q{i}": {f"rel{i}": 1, f"other{i}": 0} for i in range(N)}


def ranked(top: dict[str, str]) -> dict[str, dict[str, float]]:
    """A run putting ``top[q]`` first, then the relevant document or a filler."""
    run = {}
    for q in QRELS:
        i = q[1:]
        first = top.get(q, f"rel{i}")
        second = f"rel{i}" if first != f"rel{i}" else f"other{i}"
        run[q] = {first: 2.0, second: 1.0}
    return run


PERFECT = ranked({})
WORSE_ON_30 = ranked({f"q{i}": f"other{i}" for i in range(30)})  # relevant at rank 2
WORSE_ON_2 = ranked({f"q{i}": f"other{i}" for i in range(2)})


def test_a_clear_gain_is_significant_and_noise_is_not() -> None:
    runs = {"base": WORSE_ON_30, "better": PERFECT, "same": dict(WORSE_ON_30)}
    result = compare_runs(QRELS, runs)
    base, better, same = result.rows
    assert result.num_queries == N and base.name == "base" and not base.p_value
    for row, run in zip(result.rows, runs.values()):  # the same numbers colmax eval gives
        assert row.scores["ndcg@10"] == pytest.approx(evaluate(QRELS, run)["ndcg@10"], abs=1e-5)
    gain = 30 * (1 - 1 / 1.584962500721156) / N  # rank 2 -> rank 1 on 30 of 40 queries
    assert better.delta["ndcg@10"] == pytest.approx(gain, abs=1e-5)
    assert better.significant["ndcg@10"] and better.p_value["ndcg@10"] < 0.001
    assert result.p_text(0.0) == "< 0.0001" and result.p_text(0.25) == "0.2500"
    assert better.wins_ties_losses["ndcg@10"] == (30, 10, 0)
    assert same.delta["ndcg@10"] == 0 and same.p_value["ndcg@10"] == pytest.approx(1.0)
    assert not same.significant["ndcg@10"] and same.wins_ties_losses["ndcg@10"] == (0, N, 0)
    # a loss on 2 queries of 40: real, but a paired test cannot tell it from noise
    tiny = compare_runs(QRELS, {"perfect": PERFECT, "two": WORSE_ON_2}).rows[1]
    assert tiny.delta["ndcg@10"] < 0 and not tiny.significant["ndcg@10"]
    assert tiny.wins_ties_losses["ndcg@10"] == (0, N - 2, 2)
    student = compare_runs(QRELS, runs, stat_test="student", metrics=("ndcg@10", "mrr@10"))
    assert student.rows[1].significant == {"ndcg@10": True, "mrr@10": True}


def test_unanswered_queries_score_zero() -> None:
    partial = {q: hits for q, hits in PERFECT.items() if q != "q0"}
    result = compare_runs(QRELS, {"full": PERFECT, "partial": partial})
    assert result.rows[1].scores["ndcg@10"] == pytest.approx((N - 1) / N)
    assert result.rows[1].wins_ties_losses["ndcg@10"] == (0, N - 1, 1)


def test_run_files_round_trip(tmp_path: Path) -> None:
    run = {"q1": {"d2": 0.9, "d1": 0.5}, "q2": {}, "q3": {"d3": -1.25}}
    path = save_run(run, tmp_path / "sub" / "run.trec", name="colmax-exact-v3")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d2", "1", "0.9", "colmax-exact-v3"] and len(lines) == 3
    assert not list(tmp_path.glob("sub/*.tmp"))
    assert load_run(path) == {"q1": {"d2": 0.9, "d1": 0.5}, "q3": {"d3": -1.25}}
    # TREC lines split on whitespace, so ids with spaces need the JSON form
    spaced = {"q 1": {"doc 1": 1.0}}
    with pytest.raises(InputError, match=r"--save-run RUN\.json"):
        save_run(spaced, tmp_path / "spaced.trec", name="x")
    assert load_run(save_run(spaced, tmp_path / "spaced.json", name="x")) == spaced


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--save-run"):
        load_run(tmp_path / "missing.trec")
    junk = tmp_path / "junk.trec"
    junk.write_text("this is not a run\n")
    with pytest.raises(InputError, match="not a TREC run file"):
        load_run(junk)
    with pytest.raises(InputError, match="at least two runs"):
        compare_runs(QRELS, {"one": PERFECT})
    with pytest.raises(InputError, match="another data set or split"):
        compare_runs(QRELS, {"a": PERFECT, "b": {"x": {"d": 1.0}}})
    with pytest.raises(InputError, match="unknown test"):
        compare_runs(QRELS, {"a": PERFECT, "b": PERFECT}, stat_test="wilcoxon")
    with pytest.raises(InputError, match="unknown metric"):
        compare_runs(QRELS, {"a": PERFECT, "b": PERFECT}, metrics=("p@3",))
