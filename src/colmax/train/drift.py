"""Backbone drift and ranking agreement: how far fine-tuning moved a model away from MiniLM.

Fine-tuning on one domain wears away what the base model learned elsewhere: trained on SciFact,
the former default colmax-minilm-v3 fell 1.6 points below untrained MiniLM on XQuAD-R en.
Drift on general text that training never saw is a proxy for that loss that needs no test
set: the mean ``1 - cos`` between the model's and MiniLM's last hidden states, per real token
(the feature anchor's measure, ``losses.anchor_loss``), in eval mode, no markers. Two kinds of
text every Python has: paragraphs of Python's reference manual (``pydoc_data.topics``, not
docstrings, so ``--anchor-text stdlib`` never trains on it) and standard-library docstrings
(the text that anchor holds).

Drift sees the backbone only. :func:`ranking_agreement` sees what backbone and projection rank
together: the mean top-10 overlap between a model's MaxSim ranking and the base model's
(untrained MiniLM's raw 384-dim vectors for colmax's recipe) over reference-manual
paragraphs, each paragraph's first sentence as the query and all of them as documents.
:func:`fragment_accuracy` measures a skill rather than closeness to MiniLM: on the same
paragraphs, how often a few words of one sentence find that sentence among its paragraph's
(the ``fragment`` training source's task, on text no training reads).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from colmax.encoder import Encoder
from colmax.train import losses
from colmax.train.data import is_underline

DRIFT_TEXTS = 200
DRIFT_TOKENS = 128
AGREEMENT_TEXTS = 400
AGREEMENT_K = 10


def reference_manual(limit: int | None = DRIFT_TEXTS) -> list[str]:
    """Paragraphs of 25+ words from Python's reference manual (the first ``limit``; None: all
    771), in a seeded order; empty when the Python build leaves ``pydoc_data`` out."""
    paragraphs = sorted({p for text in _manual_topics() for p in _long_paragraphs(text)})
    random.Random(0).shuffle(paragraphs)
    return paragraphs[:limit]


def _manual_topics() -> list[str]:
    """The reference manual's topic texts; empty when the build leaves ``pydoc_data`` out."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    return list(topics.values())


def _long_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if len(p.split()) >= 25]


def reference_sections() -> dict[str, list[str]]:
    """Section heading -> the paragraphs of 25+ words under it (those of
    :func:`reference_manual`), for every underlined heading of the reference manual; headings
    that recur in several topics pool their paragraphs. Empty without ``pydoc_data``."""
    sections: dict[str, list[str]] = {}
    for text in _manual_topics():
        heading, lines = "", text.split("\n")
        body: list[str] = []
        for line, below in zip(lines, [*lines[1:], ""]):
            if is_underline(line):
                continue
            if line.strip() and is_underline(below) and len(below) >= len(line.strip()) - 1:
                _add_section(sections, heading, body)
                heading, body = line.strip(), []
            else:
                body.append(line)
        _add_section(sections, heading, body)
    return sections


def _add_section(sections: dict[str, list[str]], heading: str, body: list[str]) -> None:
    paragraphs = _long_paragraphs("\n".join(body))
    if heading and paragraphs:
        sections.setdefault(heading, []).extend(paragraphs)


def docstrings(limit: int = DRIFT_TEXTS) -> list[str]:
    from colmax.demo import stdlib_corpus

    texts = [doc["text"] for doc in stdlib_corpus()]
    random.Random(1).shuffle(texts)
    return texts[:limit]


@torch.no_grad()
def backbone_drift(
    model: nn.Module,
    reference: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = DRIFT_TOKENS,
) -> float:
    """Mean ``1 - cos`` between the two backbones' last hidden states over the real tokens."""
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        real = batch["attention_mask"]
        tokens = int(real.sum())
        gap = losses.anchor_loss(model(**batch)[0], reference(**batch)[0], real)
        total += float(gap) * tokens  # anchor_loss is the batch's mean per token
        count += tokens
    return total / max(count, 1)


def general_drift(encoder: Encoder, reference: nn.Module) -> dict[str, float]:
    """``{"reference_manual": ..., "docstrings": ...}``: drift of ``encoder``'s backbone from
    ``reference`` (a run's step-0 backbone: MiniLM for colmax's recipe); a text kind this
    Python lacks is left out."""
    ours = encoder.model.backbone.eval()
    out = {}
    for name, texts in (("reference_manual", reference_manual()), ("docstrings", docstrings())):
        if texts:
            gap = backbone_drift(ours, reference.eval(), encoder.tokenizer, texts)
            out[name] = round(gap, 5)
    return out


def ranking_agreement(
    encoder: Encoder,
    base: Encoder,
    texts: Sequence[str],
    dims: Sequence[int],
    *,
    k: int = AGREEMENT_K,
) -> dict[str, float]:
    """``{str(dim): overlap}``: the mean share of ``base``'s top ``k`` that ``encoder`` also
    ranks in its top ``k`` (its vectors cut to each Matryoshka dim), each text's first sentence
    the query and every text a document."""
    from colmax.eval.neural import maxsim_top_k
    from colmax.train.data import split_sentences
    from colmax.train.validate import truncate

    queries = [split_sentences(text)[0] for text in texts]

    def top(q: list[np.ndarray], d: list[np.ndarray]) -> list[set[int]]:
        return [set(ids.tolist()) for ids, _ in maxsim_top_k(q, d, k)]

    theirs = top(base.encode_queries(queries), base.encode_documents(list(texts)))
    q, d = encoder.encode_queries(queries), encoder.encode_documents(list(texts))
    out = {}
    for dim in dims:
        ours = top(truncate(q, dim), truncate(d, dim))
        out[str(dim)] = round(sum(len(a & b) for a, b in zip(ours, theirs)) / (k * len(ours)), 4)
    return out


def fragment_accuracy(encoder: Encoder, paragraphs: Sequence[str], seed: int = 0) -> float | None:
    """Share of fragment queries (:func:`colmax.train.data.fragment_pairs`, one per paragraph
    with 3+ sentences) whose sentence ``encoder`` scores strictly above every other sentence
    of its paragraph; None when no paragraph has enough sentences."""
    from colmax.eval.neural import maxsim_rerank
    from colmax.train.data import fragment_pairs

    docs = [{"id": f"p{i}", "title": "", "text": text} for i, text in enumerate(paragraphs)]
    examples, passages = fragment_pairs(docs, None, np.random.default_rng([seed, 9]))
    if not examples:
        return None
    row = {p: i for i, p in enumerate(passages)}
    queries = encoder.encode_queries([e.query for e in examples])
    sentences = encoder.encode_documents(list(passages.values()))
    hits = 0
    for example, query in zip(examples, queries):
        candidates = [sentences[row[p]] for p in (example.doc_id, *example.siblings)]
        scores = maxsim_rerank(query, candidates)
        hits += bool((scores[1:] < scores[0]).all())
    return round(hits / len(examples), 4)
