"""Written questions about text every machine has: the ``question`` and ``docquestion``
training sources and a held-out question task.

SciFact's claims are the only real queries in the training data, and none of them is a
question. These files hold questions written for colmax (by its developers, with LLM
assistants, reading each text; never produced by a template): each one is answered by one
sentence of a paragraph, as SQuAD's crowd workers wrote questions about Wikipedia paragraphs.

* ``questions/stdlib.jsonl`` (training): about standard-library docstrings
  (:func:`colmax.demo.stdlib_corpus`), up to three per docstring of 3+ sentences, each about
  a different sentence.
* ``questions/reference.jsonl`` (held out, never trained on): one question per paragraph of
  Python's reference manual with 3+ sentences (:func:`colmax.train.drift.reference_manual`,
  text no training or anchor reads).

A row names its text (docstring or paragraph id, sentence position) and the sentence's hash
instead of copying it; the sentences come from the running Python. Rows whose sentence is not
there, or reads differently (another Python version), are left out and counted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from colmax.errors import InputError

QUESTIONS_DIR = Path(__file__).parent / "questions"
TRAINING_FILE = QUESTIONS_DIR / "stdlib.jsonl"
HELD_OUT_FILE = QUESTIONS_DIR / "reference.jsonl"
MIN_SENTENCES = 3  #: paragraphs with fewer sentences got no questions
WRITTEN_ON = "3.11"  #: the Python whose docstrings and manual the questions were written about


@dataclass(frozen=True)
class Question:
    """A written question and the sentence of one paragraph that answers it."""

    paragraph: str  # the paragraph's id: a docstring's qualified name, or ``ref<i>``
    sentence: int  # position in ``data.paragraph_sentences(paragraph text)``
    text: str


def sentence_hash(sentence: str) -> str:
    return hashlib.sha256(sentence.encode()).hexdigest()[:12]


def stdlib_paragraphs() -> dict[str, list[str]]:
    """Docstring id -> sentences, for the docstrings of 3+ sentences of this Python."""
    return _with_enough_sentences({key: text for key, (_, text) in stdlib_modules().items()})


@cache
def stdlib_modules() -> dict[str, tuple[str, str]]:
    """Docstring id -> (its module, its text), for every docstring of this Python (built once:
    importing the modules is the slow part; callers only read it)."""
    from colmax.demo import stdlib_corpus

    return {d["id"]: (d["metadata"]["module"], d["text"]) for d in stdlib_corpus()}


def manual_documents() -> dict[str, str]:
    """``ref<i>`` -> all 771 paragraphs of the reference manual (``i``: position in
    ``reference_manual(None)``, which is seeded): the ids every held-out task uses."""
    from colmax.train.drift import reference_manual

    return {f"ref{i}": p for i, p in enumerate(reference_manual(None))}


def reference_paragraphs() -> dict[str, list[str]]:
    """``ref<i>`` -> sentences, for the reference manual's paragraphs of 3+ sentences."""
    return _with_enough_sentences(manual_documents())


def load_questions(path: Path, paragraphs: dict[str, list[str]]) -> tuple[list[Question], int]:
    """The questions of ``path`` whose sentence is in ``paragraphs`` as written, and how many
    were left out because it is not."""
    if not path.is_file():
        raise InputError(f"{path}: question file missing; reinstall colmax")
    kept, missing = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question = Question(str(row["doc"]), int(row["sentence"]), str(row["question"]))
            digest = str(row["sha"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a question row ({exc})") from None
        sentences = paragraphs.get(question.paragraph, [])
        if question.sentence < len(sentences) and (
            sentence_hash(sentences[question.sentence]) == digest
        ):
            kept.append(question)
        else:
            missing += 1
    return kept, missing


def question_pairs(
    limit: int | None = None,
    seed: int = 0,
    *,
    path: Path = TRAINING_FILE,
    paragraphs: dict[str, list[str]] | None = None,
) -> tuple[list[Any], dict[str, str]]:
    """The ``question`` source: each written question -> its sentence alone, with the other
    sentences of its docstring as negatives (``Example.siblings``, as ``fragment``); and the
    texts of those sentences by passage id (``stdlib:<docstring>#<i>``). ``limit`` keeps a
    seeded sample of that many questions."""
    from colmax.train.data import Example

    paragraphs = stdlib_paragraphs() if paragraphs is None else paragraphs
    questions, _ = load_questions(path, paragraphs)
    questions = _seeded_sample(questions, limit, seed)
    examples: list[Example] = []
    passages: dict[str, str] = {}
    for n, q in enumerate(questions):
        ids = [f"stdlib:{q.paragraph}#{i}" for i in range(len(paragraphs[q.paragraph]))]
        passages.update(zip(ids, paragraphs[q.paragraph]))
        examples.append(
            Example(
                f"question:{n}",
                "question",
                q.text,
                paragraphs[q.paragraph][q.sentence],
                ids[q.sentence],
                (ids[q.sentence],),
                tuple(i for k, i in enumerate(ids) if k != q.sentence),
            )
        )
    return examples, passages


def docstring_question_pairs(
    limit: int | None = None,
    seed: int = 0,
    *,
    path: Path = TRAINING_FILE,
    docstrings: dict[str, tuple[str, str]] | None = None,
) -> tuple[list[Any], dict[str, str]]:
    """The ``docquestion`` source: the same written questions -> the whole docstring they were
    written about (passage level, as most retrieval sets are), with the other docstrings of
    its module as negatives, those sharing the most words with it first; and the docstrings'
    texts by passage id (``stdlib:<docstring>``). Questions about a module's only docstring
    are left out."""
    from colmax.train.data import Example, overlap_ranked

    docstrings = stdlib_modules() if docstrings is None else docstrings
    paragraphs = _with_enough_sentences({k: text for k, (_, text) in docstrings.items()})
    questions, _ = load_questions(path, paragraphs)
    questions = _seeded_sample(questions, limit, seed)
    by_module: dict[str, list[str]] = {}
    for key, (module, _) in docstrings.items():
        by_module.setdefault(module, []).append(key)
    words = {key: set(text.lower().split()) for key, (_, text) in docstrings.items()}
    examples: list[Example] = []
    passages: dict[str, str] = {}
    for n, q in enumerate(questions):
        mates = overlap_ranked(q.paragraph, by_module[docstrings[q.paragraph][0]], words)
        if not mates:
            continue  # a module of one docstring: nothing to tell it apart from
        ids = [f"stdlib:{k}" for k in (q.paragraph, *mates)]
        passages.update((i, docstrings[k][1]) for i, k in zip(ids, (q.paragraph, *mates)))
        text = docstrings[q.paragraph][1]
        examples.append(
            Example(
                f"docquestion:{n}", "docquestion", q.text, text, ids[0], (ids[0],), tuple(ids[1:])
            )
        )
    return examples, passages


LEVELS = ("sentence", "paragraph", "section", "docstring")


def check_level(level: str) -> None:
    if level not in LEVELS:
        raise InputError(f"unknown question task level {level!r}; use one of {', '.join(LEVELS)}")


def question_task_run(
    encoder: Any,
    level: str = "sentence",
    path: Path = HELD_OUT_FILE,
    paragraphs: dict[str, list[str]] | None = None,
    *,
    depth: int = 10,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]] | None:
    """Qrels and ``encoder``'s top-``depth`` run of the held-out question task; None when none
    of the file's sentences is on this Python.

    ``sentence`` is XQuAD-R's shape: every sentence of every paragraph is a document and each
    question has one relevant sentence. ``paragraph`` is the passage level of most retrieval
    sets: each question's own paragraph is relevant, among all 771 paragraphs of the reference
    manual (those of fewer than 3 sentences too; with ``paragraphs`` given, among those).
    ``section`` is topical, as Cranfield is: the queries are the manual's section headings, not
    the written questions, and each has all the paragraphs of its section relevant
    (:func:`section_task_run`; ``path`` and ``paragraphs`` do not apply). ``docstring`` is
    technical text from other fields: SciPy's function summaries against their docstrings'
    prose (:func:`docstring_task_run`; ``path`` and ``paragraphs`` do not apply)."""
    check_level(level)
    if level == "section":
        return section_task_run(encoder, depth=depth)
    if level == "docstring":
        return docstring_task_run(encoder, depth=depth)
    whole_manual = paragraphs is None
    paragraphs = reference_paragraphs() if paragraphs is None else paragraphs
    questions, _ = load_questions(path, paragraphs)
    if not questions:
        return None
    documents: dict[str, str]
    if level == "sentence":
        documents = {
            f"{p}#{i}": sentence
            for p, sentences in paragraphs.items()
            for i, sentence in enumerate(sentences)
        }
        relevant = [f"{q.paragraph}#{q.sentence}" for q in questions]
    else:
        if whole_manual:
            documents = manual_documents()
        else:
            documents = {key: " ".join(sentences) for key, sentences in paragraphs.items()}
        relevant = [q.paragraph for q in questions]
    qrels = {str(n): {doc: 1} for n, doc in enumerate(relevant)}
    return qrels, _ranked(encoder, [q.text for q in questions], documents, depth)


def section_task_run(
    encoder: Any, *, depth: int = 10
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]] | None:
    """Qrels and run of the topical task: each section heading of Python's reference manual
    (:func:`colmax.train.drift.reference_sections`) against the manual's 771 paragraphs, the
    section's paragraphs relevant (several per heading); None without ``pydoc_data``."""
    from colmax.train.drift import reference_sections

    documents = manual_documents()
    key_of = {text: key for key, text in documents.items()}
    sections = {
        heading: {key_of[p]: 1 for p in paragraphs if p in key_of}
        for heading, paragraphs in reference_sections().items()
    }
    headings = [h for h, relevant in sections.items() if relevant]
    if not headings:
        return None
    qrels = {str(n): sections[h] for n, h in enumerate(headings)}
    return qrels, _ranked(encoder, headings, documents, depth)


def docstring_task_run(
    encoder: Any, *, depth: int = 10
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]] | None:
    """Qrels and run of the technical-docstring task
    (:func:`colmax.train.library_docs.scipy_docstrings`): each summary line against all the
    docstrings' prose, its own relevant; None without SciPy."""
    from colmax.train.library_docs import scipy_docstrings

    entries = scipy_docstrings()
    if not entries:
        return None
    keys = list(entries)
    qrels = {str(n): {key: 1} for n, key in enumerate(keys)}
    prose = {key: entries[key][1] for key in keys}
    return qrels, _ranked(encoder, [entries[key][0] for key in keys], prose, depth)


def _ranked(
    encoder: Any, queries: list[str], documents: dict[str, str], depth: int
) -> dict[str, dict[str, float]]:
    """``encoder``'s top-``depth`` MaxSim run of ``queries`` (ids ``"0"``, ``"1"``, ...)."""
    from colmax.eval.neural import maxsim_top_k

    ids = list(documents)
    found = maxsim_top_k(
        encoder.encode_queries(queries), encoder.encode_documents(list(documents.values())), depth
    )
    return {
        str(n): {ids[d]: float(score) for d, score in zip(top.tolist(), scores.tolist())}
        for n, (top, scores) in enumerate(found)
    }


def question_task(
    encoder: Any,
    path: Path = HELD_OUT_FILE,
    paragraphs: dict[str, list[str]] | None = None,
    level: str = "sentence",
) -> dict[str, float] | None:
    """The held-out question task (:func:`question_task_run`) at ``encoder``'s full dim:
    nDCG@10, the share of queries whose first hit is relevant (``accuracy@1``) and the number
    of queries; None when none of the file's sentences is on this Python."""
    task = question_task_run(encoder, level, path, paragraphs)
    if task is None:
        return None
    from colmax.eval.metrics import evaluate

    qrels, run = task
    found = evaluate(qrels, run, ("ndcg@10", "precision@1"))
    return {
        "ndcg@10": round(found["ndcg@10"], 4),
        "accuracy@1": round(found["precision@1"], 4),  # = recall@1 with one relevant text
        "questions": len(qrels),
    }


def _with_enough_sentences(texts: dict[str, str]) -> dict[str, list[str]]:
    from colmax.train.data import paragraph_sentences

    out = {}
    for key, text in texts.items():
        sentences = paragraph_sentences(text)
        if len(sentences) >= MIN_SENTENCES:
            out[key] = sentences
    return out


def _seeded_sample(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    if limit is None or limit >= len(questions):
        return questions
    keep = np.random.default_rng([seed, 10]).choice(len(questions), size=limit, replace=False)
    return [questions[i] for i in sorted(keep)]
