"""Paired significance tests between saved runs (``colmax eval --save-run``, ``colmax compare``).

Two models' nDCG@10 on a few hundred queries differ by a point or two from noise alone, so a
claim that one model "beats" another should come with a paired test over the same queries.
ranx does the statistics (Fisher's randomization test by default, Student's paired t-test as an
option); this module reads and writes the TREC run files and shapes ranx's report.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from colmax.errors import InputError
from colmax.eval.metrics import METRICS, positive_qrels, run_for

STAT_TESTS = ("fisher", "student")


def _kind(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "trec"


def save_run(run: dict[str, dict[str, float]], path: str | Path, name: str) -> Path:
    """Write ``run`` atomically: a TREC run file (``qid Q0 docid rank score name`` per line), or
    ranx's JSON form when the name ends in ``.json``."""
    from ranx import Run

    path = Path(path).expanduser()
    kept = {q: hits for q, hits in run.items() if hits}  # a query with no hits has no line
    if _kind(path) == "trec":
        spaced = next((i for q, h in kept.items() for i in (q, *h) if len(i.split()) != 1), None)
        if spaced is not None:
            raise InputError(
                f"id {spaced!r} holds whitespace, which a TREC run file cannot; "
                "use --save-run RUN.json instead"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Run.from_dict(kept, name=name).save(str(tmp), kind=_kind(path))
    os.replace(tmp, path)
    return path


def load_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a run file (TREC, or JSON for ``.json``); a clear error when it is missing or bad."""
    from ranx import Run

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"no run file at {path}; write one with colmax eval --save-run {path}")
    try:
        run = Run.from_file(str(path), kind=_kind(path)).to_dict()
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path} is not a {_kind(path).upper()} run file "
            f"(TREC: qid Q0 docid rank score name per line): {exc}"
        ) from exc
    return {str(q): {str(d): float(s) for d, s in hits.items()} for q, hits in run.items()}


@dataclass
class Row:
    """One run against the baseline (the first run)."""

    name: str
    scores: dict[str, float]
    delta: dict[str, float] = field(default_factory=dict)
    p_value: dict[str, float] = field(default_factory=dict)
    significant: dict[str, bool] = field(default_factory=dict)
    wins_ties_losses: dict[str, tuple[int, int, int]] = field(default_factory=dict)


@dataclass
class Comparison:
    stat_test: str
    max_p: float
    num_queries: int
    metrics: list[str]
    rows: list[Row]
    permutations: int  # Fisher's test: a p-value of 0 means "below 1 / permutations"

    def p_text(self, p: float) -> str:
        if self.stat_test == "fisher" and p == 0:
            return f"< {1 / self.permutations:g}"
        return f"{p:.4f}"

    def to_dict(self) -> dict:
        return asdict(self)


def compare_runs(
    qrels: dict[str, dict[str, int]],
    runs: dict[str, dict[str, dict[str, float]]],
    *,
    metrics: tuple[str, ...] = ("ndcg@10",),
    stat_test: str = "fisher",
    max_p: float = 0.05,
    permutations: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Score every run on the queries with a relevant document, and test each against the first.

    A query a run has no line for scores 0 there, as in ``colmax eval``.
    """
    from ranx import Qrels, Run, compare

    if len(runs) < 2:
        raise InputError("compare needs at least two runs: a baseline, then the runs to test")
    if stat_test not in STAT_TESTS:
        raise InputError(f"unknown test {stat_test!r}; use one of {', '.join(STAT_TESTS)}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; use one of {', '.join(METRICS)}")
    positive = positive_qrels(qrels)
    for name, run in runs.items():
        if not positive.keys() & run.keys():
            raise InputError(
                f"run {name!r} answers none of the {len(positive)} judged queries; "
                "was it made on another data set or split?"
            )
    report = compare(
        Qrels.from_dict(positive),
        [Run.from_dict(run_for(positive, run), name=name) for name, run in runs.items()],
        list(metrics),
        stat_test=stat_test,
        n_permutations=permutations,
        max_p=max_p,
        random_seed=seed,
        rounding_digits=5,
    ).to_dict()
    names = list(runs)
    base = names[0]
    rows = [Row(base, _scores(report, base, metrics))]
    for name in names[1:]:
        row = Row(name, _scores(report, name, metrics))
        for m in metrics:
            p = float(report[name]["comparisons"][base][m])
            wtl = report[name]["win_tie_loss"][base][m]
            row.delta[m] = row.scores[m] - rows[0].scores[m]
            row.p_value[m] = p
            row.significant[m] = p < max_p
            row.wins_ties_losses[m] = (int(wtl["W"]), int(wtl["T"]), int(wtl["L"]))
        rows.append(row)
    return Comparison(stat_test, max_p, len(positive), list(metrics), rows, permutations)


def _scores(report: dict, name: str, metrics: tuple[str, ...]) -> dict[str, float]:
    return {m: float(report[name]["scores"][m]) for m in metrics}
