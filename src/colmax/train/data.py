"""Training examples: where each query, its positive and its negatives come from.

Three default sources, each a list of :class:`Example` (a query, its positive text, and the
corpus ids that must never be its negatives):

* ``labeled``: (query, positive document) for every positive qrels row of the training split,
  minus the validation hold-out (a seeded share of the split's queries);
* ``title``: a document's title -> its abstract (the text without the title);
* ``sentence``: one sentence of an abstract -> the title and the rest of the abstract.

The last two need no labels, nor do two more, off by default: ``cloze`` (a crude question
about one sentence -> the whole document) and ``fragment`` (a few words of one sentence -> that
sentence, against the other sentences of its abstract; see :func:`fragment_pairs`). Two more,
``question`` and ``docquestion``, are written questions about standard-library docstrings
(:mod:`colmax.train.questions`), answered by one sentence or by the whole docstring, and
``summary`` is a docstring's summary line -> the rest of its prose, on the standard library's
and torch's docstrings (:func:`colmax.train.library_docs.summary_pairs`). Negatives
of the first four are mined elsewhere (:mod:`colmax.train.mining`); for
``title`` pairs they are shown without their titles too, so that "has a title" never tells
the positive apart. The order they are seen in is :mod:`colmax.train.batches`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colmax.errors import InputError
from colmax.eval.data import doc_text
from colmax.train.config import SOURCES

#: how each source shows its mined negatives: the whole document or its text only
NEGATIVE_VARIANT = {
    "labeled": "full",
    "title": "body",
    "sentence": "full",
    "cloze": "full",
    "fragment": "full",
    "question": "full",
    "docquestion": "full",
    "summary": "full",
}
#: sources whose examples bring their negatives (``Example.siblings``) instead of mining them
OWN_NEGATIVES = frozenset({"fragment", "question", "docquestion", "summary"})
MIN_SENTENCE_WORDS = 6
MIN_CLOZE_WORDS = 8
FRAGMENT_DROP = 0.75  #: share of a sentence's words a ``fragment`` query leaves out
MIN_FRAGMENT_WORDS = 2  #: words a ``fragment`` query keeps at least
MIN_FRAGMENT_SENTENCE_WORDS = 8  #: words of a sentence a ``fragment`` query is cut from
MIN_PASSAGE_WORDS = 4  #: shorter sentences are not ``fragment`` negatives
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


@dataclass(frozen=True)
class Example:
    """One training query with its positive; ``key`` is unique across all sources."""

    key: str
    source: str
    query: str
    positive: str
    doc_id: str  # the corpus document the positive is (or is cut from), or a passage id
    known: tuple[str, ...]  # corpus ids that are positives (never used as negatives)
    #: fixed negatives (passage ids) for sources that bring their own instead of mining
    siblings: tuple[str, ...] = ()


@dataclass
class Corpus:
    """The documents, as the index would see them (``full``) and without their title, plus
    ``passages``: pieces cut from them (sentences, by id) that some sources train on."""

    ids: list[str]
    full: list[str]
    body: list[str]
    passages: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.position = {d: i for i, d in enumerate(self.ids)}

    def text(self, doc_id: str, variant: str) -> str:
        if doc_id in self.passages:
            return self.passages[doc_id]
        i = self.position[doc_id]
        return self.full[i] if variant == "full" else self.body[i]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for doc_id, text in zip(self.ids, self.full):
            digest.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
        return digest.hexdigest()[:16]


@dataclass
class TrainData:
    corpus: Corpus
    examples: dict[str, list[Example]]
    val_queries: dict[str, str]  # held-out query id -> text
    val_qrels: dict[str, dict[str, int]]


def load_train_data(
    data_dir: str | Path,
    *,
    split: str = "train",
    val_fraction: float = 0.15,
    mix: dict[str, float] | None = None,
    max_unsupervised: int | None = None,
    seed: int = 0,
) -> TrainData:
    """Read a BEIR folder's corpus and ``split`` and build every source with weight > 0."""
    from colmax.eval.data import load

    if split == "test":
        raise InputError("the test split is for evaluation only; train on 'train'")
    mix = mix if mix is not None else {s: 1.0 for s in SOURCES}
    beir = load(data_dir, split)
    corpus = Corpus(
        ids=beir.doc_ids,
        full=beir.doc_texts,
        body=[d["text"] for d in beir.docs],
    )
    train_ids, val_ids = split_validation(beir.query_ids, val_fraction, seed)
    texts = dict(zip(beir.query_ids, beir.query_texts))
    examples: dict[str, list[Example]] = {}
    if mix.get("labeled", 0) > 0:
        examples["labeled"] = labeled_pairs(train_ids, texts, beir.qrels, corpus)
    rng = np.random.default_rng([seed, 7])
    if mix.get("title", 0) > 0:
        examples["title"] = title_pairs(beir.docs, max_unsupervised, rng)
    if mix.get("sentence", 0) > 0:
        examples["sentence"] = sentence_pairs(beir.docs, max_unsupervised, rng)
    if mix.get("cloze", 0) > 0:  # its own generator: adding it leaves the others unchanged
        cloze_rng = np.random.default_rng([seed, 8])
        examples["cloze"] = cloze_pairs(beir.docs, max_unsupervised, cloze_rng)
    if mix.get("fragment", 0) > 0:  # its own generator too
        fragment_rng = np.random.default_rng([seed, 9])
        examples["fragment"], passages = fragment_pairs(beir.docs, max_unsupervised, fragment_rng)
        _add_passages(corpus, passages, "fragment")
    if mix.get("question", 0) > 0:  # written questions about docstrings (colmax.train.questions)
        from colmax.train.questions import question_pairs

        examples["question"], passages = question_pairs(max_unsupervised, seed)
        _add_passages(corpus, passages, "question")
    if mix.get("docquestion", 0) > 0:  # the same questions -> their whole docstring
        from colmax.train.questions import docstring_question_pairs

        examples["docquestion"], passages = docstring_question_pairs(max_unsupervised, seed)
        _add_passages(corpus, passages, "docquestion")
    if mix.get("summary", 0) > 0:  # docstring summary line -> its prose (stdlib, torch)
        from colmax.train.library_docs import summary_pairs

        examples["summary"], passages = summary_pairs(max_unsupervised, seed)
        _add_passages(corpus, passages, "summary")
    for source, rows in examples.items():
        if not rows:
            raise InputError(f"{data_dir}: the {source!r} source has no examples; drop it from mix")
    return TrainData(
        corpus=corpus,
        examples=examples,
        val_queries={q: texts[q] for q in val_ids},
        val_qrels={q: beir.qrels[q] for q in val_ids},
    )


def _add_passages(corpus: Corpus, passages: dict[str, str], source: str) -> None:
    clash = next((p for p in passages if p in corpus.position), None)
    if clash is not None:
        raise InputError(f"corpus id {clash!r} looks like a sentence id; drop {source!r}")
    corpus.passages.update(passages)


def split_validation(
    query_ids: list[str], fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """A seeded hold-out of ``fraction`` of the queries: (train ids, validation ids)."""
    order = np.random.default_rng([seed, 1]).permutation(len(query_ids))
    n_val = round(fraction * len(query_ids))
    val = {query_ids[i] for i in order[:n_val]}
    return [q for q in query_ids if q not in val], [q for q in query_ids if q in val]


def labeled_pairs(
    query_ids: list[str],
    texts: dict[str, str],
    qrels: dict[str, dict[str, int]],
    corpus: Corpus,
) -> list[Example]:
    out = []
    for qid in query_ids:
        positives = sorted(d for d, s in qrels[qid].items() if s > 0 and d in corpus.position)
        for doc_id in positives:
            out.append(
                Example(
                    key=f"q:{qid}:{doc_id}",
                    source="labeled",
                    query=texts[qid],
                    positive=corpus.text(doc_id, "full"),
                    doc_id=doc_id,
                    known=tuple(positives),
                )
            )
    return out


def title_pairs(docs: list[dict], limit: int | None, rng: np.random.Generator) -> list[Example]:
    """Title -> abstract for documents with both (at most ``limit``, a seeded sample)."""
    usable = [d for d in docs if d.get("title", "").strip() and d["text"].strip()]
    out = [
        Example(f"title:{d['id']}", "title", d["title"].strip(), d["text"], d["id"], (d["id"],))
        for d in _sample(usable, limit, rng)
    ]
    return out


def sentence_pairs(docs: list[dict], limit: int | None, rng: np.random.Generator) -> list[Example]:
    """One seeded sentence of each abstract -> the title and the rest of the abstract."""
    out = []
    for d in _sample(docs, limit, rng):
        sentences = split_sentences(d["text"])
        usable = [i for i, s in enumerate(sentences) if len(s.split()) >= MIN_SENTENCE_WORDS]
        if len(sentences) < 2 or not usable:
            continue
        pick = usable[int(rng.integers(len(usable)))]
        rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
        positive = f"{d['title']}\n{rest}" if d.get("title") else rest
        out.append(
            Example(
                f"sentence:{d['id']}:{pick}",
                "sentence",
                sentences[pick],
                positive,
                d["id"],
                (d["id"],),
            )
        )
    return out


def cloze_pairs(docs: list[dict], limit: int | None, rng: np.random.Generator) -> list[Example]:
    """A question made from one seeded sentence of each document -> the whole document.

    The question is the sentence with an "answer" span cut out and a question word in front
    (:func:`cloze_question`), and the document keeps the sentence: the query shares most of
    its words with one sentence of its positive, as questions about a passage do. (The
    ``sentence`` source cuts the sentence out instead, which teaches topical matching only;
    ORQA's inverse cloze task keeps it in 10% of pairs for the same reason.)
    """
    out = []
    for d in _sample(docs, limit, rng):
        sentences = split_sentences(d["text"])
        usable = [i for i, s in enumerate(sentences) if len(s.split()) >= MIN_CLOZE_WORDS]
        if not usable:
            continue
        pick = usable[int(rng.integers(len(usable)))]
        out.append(
            Example(
                f"cloze:{d['id']}:{pick}",
                "cloze",
                cloze_question(sentences[pick], rng),
                doc_text(d),  # the sentence stays in
                d["id"],
                (d["id"],),
            )
        )
    return out


def fragment_pairs(
    docs: list[dict], limit: int | None, rng: np.random.Generator
) -> tuple[list[Example], dict[str, str]]:
    """A few words of one seeded sentence of each abstract -> that sentence alone, with the
    abstract's other sentences as its negatives; and the texts of those sentences by id.

    The query keeps each word of the sentence with probability ``1 - FRAGMENT_DROP`` (at least
    ``MIN_FRAGMENT_WORDS``, in their order) and is asked as "What ...?". It shares a few words
    with its sentence and the topic with every negative, so matching the topic is not enough:
    the model has to find the one sentence those words come from, as a question about a
    paragraph points at one of its sentences. With 75 % of the words dropped, untrained
    MiniLM MaxSim finds the sentence for 90 % of SciFact queries (docs/TRAINING.md).
    """
    examples: list[Example] = []
    passages: dict[str, str] = {}
    for d in _sample(docs, limit, rng):
        sentences = paragraph_sentences(d["text"])
        usable = [
            i for i, s in enumerate(sentences) if len(s.split()) >= MIN_FRAGMENT_SENTENCE_WORDS
        ]
        if len(sentences) < 3 or not usable:
            continue
        pick = usable[int(rng.integers(len(usable)))]
        ids = [f"{d['id']}#{i}" for i in range(len(sentences))]
        passages.update(zip(ids, sentences))
        examples.append(
            Example(
                f"fragment:{d['id']}:{pick}",
                "fragment",
                fragment_question(sentences[pick], rng),
                sentences[pick],
                ids[pick],
                (ids[pick],),
                tuple(i for k, i in enumerate(ids) if k != pick),
            )
        )
    return examples, passages


def fragment_question(sentence: str, rng: np.random.Generator) -> str:
    """``sentence`` with ``FRAGMENT_DROP`` of its words left out at random, as "What ...?"."""
    words = sentence.rstrip(".!?").split()
    keep = rng.random(len(words)) >= FRAGMENT_DROP
    short = MIN_FRAGMENT_WORDS - int(keep.sum())
    if short > 0:
        keep[rng.choice(np.flatnonzero(~keep), size=short, replace=False)] = True
    return "What " + " ".join(w for w, k in zip(words, keep) if k) + "?"


_YEAR = re.compile(r"^(1[5-9]|20)\d\d$")


def cloze_question(sentence: str, rng: np.random.Generator) -> str:
    """``sentence`` as a crude question: a span of 1-3 words (a run of capitalised words or
    numbers after the first word when there is one, else a random span) is cut out and
    "When" (a year), "How many" (another number) or "What" goes in front."""
    words = sentence.rstrip(".!?").split()
    named = [
        i
        for i, w in enumerate(words)
        if i > 0 and (w[:1].isupper() or w.strip("(),;:%").replace(".", "").isdigit())
    ]
    start = named[int(rng.integers(len(named)))] if named else int(rng.integers(len(words)))
    length = 1 + int(rng.integers(3))
    span = words[start : start + length]
    core = span[0].strip("(),;:%")
    if _YEAR.match(core):
        wh = "When"
    elif core.replace(".", "").isdigit():
        wh = "How many"
    else:
        wh = "What"
    rest = words[:start] + words[start + length :]
    return f"{wh} {' '.join(rest)}?"


def split_sentences(text: str) -> list[str]:
    """Sentences at ``.``, ``!`` or ``?`` followed by a space and a capital, digit or bracket."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def paragraph_sentences(text: str) -> list[str]:
    """The sentences of ``text`` a query may point at (``fragment``, ``question``): 4+ words."""
    return [s for s in split_sentences(text) if len(s.split()) >= MIN_PASSAGE_WORDS]


def overlap_ranked(key: str, group: list[str], words: dict[str, set[str]]) -> list[str]:
    """The other keys of ``group``, those sharing the most ``words`` with ``key`` first (ties
    in ``group``'s order): the hard negatives of sources that bring their own."""
    return sorted((k for k in group if k != key), key=lambda k: -len(words[k] & words[key]))


def is_underline(line: str, marks: str = "*=-~^") -> bool:
    """Whether ``line`` underlines a reST heading: 3+ of one of ``marks`` and nothing else
    (numpydoc's section headings use ``-`` only)."""
    return len(line) >= 3 and len(set(line)) == 1 and line[0] in marks


def _sample(docs: list[dict], limit: int | None, rng: np.random.Generator) -> list[dict]:
    if limit is None or limit >= len(docs):
        return docs
    keep = np.sort(rng.choice(len(docs), size=limit, replace=False))
    return [docs[i] for i in keep]
