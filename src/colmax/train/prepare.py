"""Everything a training run needs before its first step, computed once and cached.

For each source: the examples, their mined hard negatives and (with distillation) the
teacher's component scores over ``[positive, negatives...]``. For validation: each held-out
query's re-ranking pool (top ``pool_size`` of BM25 + bi-encoder RRF; positives are *not*
added, so the pool is what a real first stage would hand over) and a comparison of candidate
teachers on a deeper pool. MiniLM is only run for what the cache does not already hold.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from colmax.train import mining, teacher
from colmax.train.config import TrainConfig
from colmax.train.data import NEGATIVE_VARIANT, OWN_NEGATIVES, Corpus, Example, load_train_data
from colmax.train.minilm import Features, features

log = logging.getLogger(__name__)

QUERY_TOKENS = 64  # as colmax eval's maxsim-raw
TEACHER_POOL = 100  # validation pool depth for the teacher comparison
#: candidate teachers compared on validation: name -> (maxsim, bm25, biencoder) weights
TEACHER_GRID = {
    "maxsim": (1.0, 0.0, 0.0),
    "bm25": (0.0, 1.0, 0.0),
    "biencoder": (0.0, 0.0, 1.0),
    "maxsim+bm25": (0.5, 0.5, 0.0),
    "maxsim+biencoder": (0.5, 0.0, 0.5),
    "bm25+biencoder": (0.0, 0.5, 0.5),
    "all equal": (1 / 3, 1 / 3, 1 / 3),
    "maxsim .5 bm25 .25 bi .25": (0.5, 0.25, 0.25),
    "maxsim .6 bm25 .3 bi .1": (0.6, 0.3, 0.1),
    "maxsim .7 bm25 .3": (0.7, 0.3, 0.0),
}


@dataclass
class SourceData:
    examples: list[Example]
    negatives: list[list[str]]  # corpus ids, best first
    teacher: dict[str, np.ndarray] | None = None  # component -> [n, 1 + depth]


@dataclass
class Prepared:
    corpus: Corpus
    sources: dict[str, SourceData]
    val_queries: dict[str, str]
    val_qrels: dict[str, dict[str, int]]
    val_pool: dict[str, list[str]]
    report: dict[str, Any] = field(default_factory=dict)


def prepare(data_dir: str | Path, config: TrainConfig, cache_dir: Path) -> Prepared:
    """Load, mine, score with the teacher and build the validation pool (cached)."""
    from colmax.encoder.encoder import cpu_has_fast_bf16

    start = time.perf_counter()
    data = load_train_data(
        data_dir,
        split=config.split,
        val_fraction=config.val_fraction,
        mix=config.mix,
        max_unsupervised=config.max_unsupervised,
        seed=config.seed,
    )
    corpus = data.corpus
    bf16 = config.precision == "bf16" or (config.precision == "auto" and cpu_has_fast_bf16())
    tlen = config.document_length
    base = (corpus.fingerprint(), tlen, bf16)
    feats = _Lazy(corpus, tlen, bf16, config.progress)
    sources: dict[str, SourceData] = {}
    for source, examples in data.examples.items():
        ex_hash = _hash(f"{e.key}\0{e.query}\0{e.positive}" for e in examples)
        if source in OWN_NEGATIVES:
            negatives = [list(e.siblings[: config.mine_depth]) for e in examples]
        else:
            key = mining.cache_key(*base, ex_hash, config.mining, config.mine_depth)
            negatives = _mined(
                source, examples, feats, config, cache_dir / f"negatives-{source}-{key}.json"
            )
        data_for_source = SourceData(examples, negatives)
        if config.distill:
            t_path = cache_dir / (
                f"teacher-{source}-"
                f"{mining.cache_key(*base, ex_hash, _hash(map(str, negatives)))}.npz"
            )
            components = teacher.load_components(t_path)
            if components is None or len(components["maxsim"]) != len(examples):
                log.info("teacher scores for %d %s examples", len(examples), source)
                components = _teacher_scores(source, examples, negatives, feats, config)
                teacher.save_components(t_path, components)
            data_for_source.teacher = components
        sources[source] = data_for_source

    pool_key = mining.cache_key(*base, sorted(data.val_queries.items()), config.pool_size)
    pool_path = cache_dir / f"val-pool-{pool_key}.json"
    cached = mining.read_json_cache(pool_path)
    if cached is None:
        cached = _validation(data.val_queries, data.val_qrels, corpus, feats, config)
        mining.write_json_cache(pool_path, cached)
    report = {
        "examples": {s: len(d.examples) for s, d in sources.items()},
        "validation_queries": len(data.val_queries),
        "teacher_document_length": tlen,
        "bf16": bf16,
        **cached["report"],
        "prepare_s": round(time.perf_counter() - start, 1),
    }
    return Prepared(corpus, sources, data.val_queries, data.val_qrels, cached["pool"], report)


def _mined(
    source: str, examples: list[Example], feats: _Lazy, config: TrainConfig, path: Path
) -> list[list[str]]:
    """Each example's hard negatives (corpus ids), read from ``path`` or mined and saved."""
    negatives = mining.read_json_cache(path)
    if negatives is not None and len(negatives) == len(examples):
        return negatives
    log.info("mining %d %s queries", len(examples), source)
    biencoder = "biencoder" in config.mining
    negatives = mining.mine(
        examples,
        feats.c,
        methods=config.mining,
        depth=config.mine_depth,
        bm25=feats.bm25() if "bm25" in config.mining else None,
        query_embeddings=feats.queries(source, examples).embeddings if biencoder else None,
        doc_embeddings=feats.corpus("full").embeddings if biencoder else None,
    )
    mining.write_json_cache(path, negatives)
    return negatives


class _Lazy:
    """MiniLM features, BM25 and the BM25 scorer, each built on first use only."""

    def __init__(self, corpus: Corpus, max_tokens: int, bf16: bool, progress: bool) -> None:
        self.c, self.max_tokens, self.bf16, self.progress = corpus, max_tokens, bf16, progress
        self.corpus = cache(self._corpus)
        self.bm25 = cache(lambda: mining.Bm25(corpus.full))
        self.scorer = cache(lambda: teacher.Bm25Scorer(corpus.full))
        self.passages = cache(self._passages)
        self._queries: dict[str, Features] = {}

    def _passages(self) -> tuple[dict[str, int], Features]:
        """The corpus's passages (sentences some sources train on): row per id, features."""
        ids = list(self.c.passages)
        rows = {p: i for i, p in enumerate(ids)}
        return rows, self.texts([self.c.passages[p] for p in ids], "MiniLM passages")

    def _corpus(self, variant: str) -> Features:
        texts = self.c.full if variant == "full" else self.c.body
        return self.texts(texts, f"MiniLM corpus ({variant})")

    def texts(self, texts: list[str], desc: str) -> Features:
        return features(
            texts, max_tokens=self.max_tokens, bf16=self.bf16, progress=self.progress, desc=desc
        )

    def queries(self, name: str, examples: list[Example] | list[str]) -> Features:
        if name not in self._queries:
            texts = [e.query if isinstance(e, Example) else e for e in examples]
            self._queries[name] = features(
                texts, max_tokens=QUERY_TOKENS, bf16=self.bf16, desc=f"MiniLM queries ({name})"
            )
        return self._queries[name]


def _teacher_scores(
    source: str,
    examples: list[Example],
    negatives: list[list[str]],
    feats: _Lazy,
    config: TrainConfig,
) -> dict[str, np.ndarray]:
    variant = NEGATIVE_VARIANT[source]
    corpus = feats.c
    own = source == "sentence"  # the positive is a cut-down document: encode it as shown
    if own:
        positives = feats.texts([e.positive for e in examples], "MiniLM positives (sentence)")
    rows, passages = feats.passages() if corpus.passages else ({}, None)
    q = feats.queries(source, examples)

    def features_of(key: str) -> tuple[Features, int]:
        if key.startswith("\0"):
            if own:
                return positives, int(key[1:])
            key = examples[int(key[1:])].doc_id
        if key in rows:
            return passages, rows[key]  # type: ignore[return-value]
        return feats.corpus(variant), corpus.position[key]  # encoded once, on first use

    def tokens_of(key: str) -> np.ndarray:
        table, row = features_of(key)
        return table.tokens[row]  # type: ignore[index]

    def embedding_of(key: str) -> np.ndarray:
        table, row = features_of(key)
        return table.embeddings[row]

    def text_of(key: str) -> str:
        if key.startswith("\0"):
            return examples[int(key[1:])].positive
        return corpus.text(key, variant)

    assert q.tokens is not None
    return teacher.component_scores(
        [e.query for e in examples],
        [[f"\0{i}", *negs] for i, negs in enumerate(negatives)],
        width=1 + config.mine_depth,
        query_embeddings=q.embeddings,
        query_tokens=q.tokens,
        text_of=text_of,
        embedding_of=embedding_of,
        tokens_of=tokens_of,
        bm25=feats.scorer(),
    )


def _validation(
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    corpus: Corpus,
    feats: _Lazy,
    config: TrainConfig,
) -> dict[str, Any]:
    """The re-ranking pool per held-out query, and how candidate teachers rank a deeper pool."""
    if not queries:
        return {"pool": {}, "report": {}}
    from colmax.eval.neural import maxsim_top_k
    from colmax.train.validate import ndcg_at_10

    qids = list(queries)
    texts = [queries[q] for q in qids]
    docs = feats.corpus("full")
    q = feats.queries("validation", texts)
    bm25_rank = feats.bm25().rank(texts, mining.RANK_DEPTH)
    dense = mining.dense_rank(q.embeddings, docs.embeddings, mining.RANK_DEPTH)
    pools = [mining.rrf_pool([b, d], TEACHER_POOL) for b, d in zip(bm25_rank, dense)]
    pool = {
        qid: [corpus.ids[p] for p in rows[: config.pool_size]] for qid, rows in zip(qids, pools)
    }

    def ranked(rankings: list[np.ndarray]) -> dict[str, dict[str, float]]:
        return {
            qid: {corpus.ids[int(p)]: -float(r) for r, p in enumerate(rows)}
            for qid, rows in zip(qids, rankings)
        }

    assert q.tokens is not None and docs.tokens is not None
    maxsim_full = maxsim_top_k(q.tokens, docs.tokens, mining.RANK_DEPTH)
    full_corpus = {
        "bm25": ndcg_at_10(qrels, ranked(bm25_rank)),
        "biencoder": ndcg_at_10(qrels, ranked(dense)),
        "maxsim-raw": ndcg_at_10(qrels, ranked([ids for ids, _ in maxsim_full])),
        "rrf(bm25, biencoder)": ndcg_at_10(qrels, ranked([np.array(p) for p in pools])),
    }
    components = teacher.component_scores(
        texts,
        [[corpus.ids[p] for p in rows] for rows in pools],
        width=TEACHER_POOL,
        query_embeddings=q.embeddings,
        query_tokens=q.tokens,
        text_of=lambda k: corpus.full[corpus.position[k]],
        embedding_of=lambda k: docs.embeddings[corpus.position[k]],
        tokens_of=lambda k: docs.tokens[corpus.position[k]],  # type: ignore[index]
        bm25=feats.scorer(),
    )
    teachers = {}
    for name, (wm, wb, we) in TEACHER_GRID.items():
        weights = {k: w for k, w in zip(teacher.COMPONENTS, (wm, wb, we)) if w}
        fused = teacher.fuse(components, weights)
        run = {
            qid: {corpus.ids[p]: float(s) for p, s in zip(rows, fused[i, : len(rows)]) if s == s}
            for i, (qid, rows) in enumerate(zip(qids, pools))
        }
        teachers[name] = round(ndcg_at_10(qrels, run), 4)
    report = {
        "validation_ndcg@10_full_corpus": {k: round(v, 4) for k, v in full_corpus.items()},
        f"validation_ndcg@10_teachers_rerank_top{TEACHER_POOL}": teachers,
        "validation_pool_size": config.pool_size,
    }
    return {"pool": pool, "report": report}


def _hash(parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode() + b"\1")
    return digest.hexdigest()[:16]
