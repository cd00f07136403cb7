"""Retrieval metrics, computed by ranx (the numbers BEIR's pytrec_eval gives).

* nDCG uses the graded score as the gain, linearly (trec_eval / pytrec_eval / ranx
  ``ndcg``: gain = rel, discount = log2(rank + 1)), not 2^rel - 1.
* Rows with score <= 0 are judged non-relevant: they add no gain and no recall.
* Every judged query counts in the average, also one whose rows are all <= 0 (it scores 0
  on every metric, as in pytrec_eval); ranx cannot hold such a query, so it is averaged in
  by hand.
"""

from __future__ import annotations

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "recall@10", "ndcg@100")


def positive_qrels(qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The relevant rows (score > 0) of the queries that have any: what ranx can hold."""
    positive = {q: {d: s for d, s in rows.items() if s > 0} for q, rows in qrels.items()}
    return {q: rows for q, rows in positive.items() if rows}


def run_for(
    queries: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """``run`` with an entry for every query, as ranx needs; a query with no hits gets one dummy
    hit, so it scores 0."""
    return {
        q: ({d: float(s) for d, s in run[q].items()} if run.get(q) else {"\x00none": 0.0})
        for q in queries
    }


def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, float]:
    """Mean of each metric over the queries in ``qrels`` (a missing run entry scores 0)."""
    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    positive = positive_qrels(qrels)
    if not positive:
        return {m: 0.0 for m in metrics}
    scores = ranx_evaluate(
        Qrels.from_dict(positive), Run.from_dict(run_for(positive, run)), list(metrics)
    )
    if isinstance(scores, float):  # one metric comes back bare
        scores = {metrics[0]: scores}
    scale = len(positive) / len(qrels)
    return {m: float(scores[m]) * scale for m in metrics}
