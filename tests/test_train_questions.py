"""Written questions (train/questions.py): the committed files, the ``question`` training source
and the held-out question task, with real files and the real MiniLM encoder."""

from __future__ import annotations

import json
import sys

import pytest
from toy_data import write_beir

from colmax.encoder import Encoder
from colmax.errors import InputError
from colmax.train.data import load_train_data
from colmax.train.questions import (
    HELD_OUT_FILE,
    TRAINING_FILE,
    WRITTEN_ON,
    docstring_question_pairs,
    load_questions,
    question_pairs,
    question_task,
    question_task_run,
    reference_paragraphs,
    sentence_hash,
    stdlib_paragraphs,
)

PARAGRAPHS = {
    "json.dumps": [
        "Serialize an object to a JSON formatted string.",
        "If ensure_ascii is false, non-ASCII characters are written as they are.",
        "The indent argument pretty-prints arrays and objects with that many spaces.",
    ],
    "os.listdir": [
        "Return a list containing the names of the entries in the directory.",
        "The list is in arbitrary order.",
        "It does not include the special entries '.' and '..' even if they are present.",
        "Path may also be an open file descriptor on some platforms.",
    ],
}


def write_rows(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def row(doc: str, sentence: int, question: str, text: str | None = None) -> dict:
    text = PARAGRAPHS[doc][sentence] if text is None else text
    return {"doc": doc, "sentence": sentence, "sha": sentence_hash(text), "question": question}


def test_the_committed_questions_are_all_on_the_python_they_were_written_for() -> None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" != WRITTEN_ON:
        pytest.skip(f"the questions name Python {WRITTEN_ON}'s docstrings and manual")
    for path, paragraphs, per_paragraph in (
        (TRAINING_FILE, stdlib_paragraphs(), 3),
        (HELD_OUT_FILE, reference_paragraphs(), 1),
    ):
        questions, missing = load_questions(path, paragraphs)
        assert missing == 0 and len(questions) > 250
        counts: dict[str, int] = {}
        for q in questions:
            counts[q.paragraph] = counts.get(q.paragraph, 0) + 1
            sentence = paragraphs[q.paragraph][q.sentence]
            assert q.text.endswith("?") and 3 <= len(q.text.split()) <= 30
            assert q.text.rstrip("?").lower() not in sentence.lower()  # not a copy
        assert max(counts.values()) <= per_paragraph
    # the held-out questions are about text the training questions never read
    assert not set(stdlib_paragraphs()) & set(reference_paragraphs())


def test_question_pairs_point_each_question_at_its_sentence_among_its_siblings(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    write_rows(
        path,
        [
            row("json.dumps", 2, "How do I pretty-print JSON output with json.dumps?"),
            row("os.listdir", 1, "Does os.listdir sort the names it returns?"),
            row("os.listdir", 2, "Are dot entries part of what os.listdir gives back?"),
        ],
    )
    examples, passages = question_pairs(path=path, paragraphs=PARAGRAPHS)
    assert [e.doc_id for e in examples] == ["stdlib:json.dumps#2", "stdlib:os.listdir#1",
                                            "stdlib:os.listdir#2"]  # fmt: skip
    assert len(passages) == 7 and len({e.key for e in examples}) == 3
    for e in examples:
        assert passages[e.doc_id] == e.positive and e.known == (e.doc_id,)
        assert e.doc_id not in e.siblings and len(e.siblings) + 1 == len(
            PARAGRAPHS[e.doc_id.split(":")[1].split("#")[0]]
        )
        assert all(s.rsplit("#", 1)[0] == e.doc_id.rsplit("#", 1)[0] for s in e.siblings)
    sample, _ = question_pairs(2, seed=3, path=path, paragraphs=PARAGRAPHS)
    assert len(sample) == 2 and sample == question_pairs(2, seed=3, path=path,
                                                         paragraphs=PARAGRAPHS)[0]  # fmt: skip


def test_a_question_whose_sentence_changed_is_left_out_and_counted(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    write_rows(
        path,
        [
            row("json.dumps", 0, "How do I turn an object into a JSON string?"),
            row("json.dumps", 1, "What does ensure_ascii do?", text="an older wording"),
            row("os.listdir", 9, "Is there a tenth sentence?", text="none"),
            row("os.listdir", 0, "A paragraph this Python lacks?") | {"doc": "gone.function"},
        ],
    )
    kept, missing = load_questions(path, PARAGRAPHS)
    assert [q.sentence for q in kept] == [0] and missing == 3
    path.write_text('{"doc": "json.dumps", "question": "no sentence?"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"q.jsonl:1: not a question row"):
        load_questions(path, PARAGRAPHS)
    with pytest.raises(InputError, match="missing"):
        load_questions(tmp_path / "nothing.jsonl", PARAGRAPHS)


@pytest.mark.parametrize("source", ["question", "docquestion"])
def test_the_question_sources_add_passages_and_leave_the_rest_unchanged(tmp_path, source) -> None:
    folder = write_beir(tmp_path / "beir")
    without = load_train_data(folder, mix={"labeled": 1, "title": 1}, val_fraction=0)
    data = load_train_data(
        folder, mix={"labeled": 1, "title": 1, source: 1}, val_fraction=0, max_unsupervised=12
    )
    assert data.examples["title"] == without.examples["title"]
    pairs = data.examples[source]
    assert len(pairs) == 12 and all(e.siblings for e in pairs)
    for e in pairs:
        assert data.corpus.text(e.doc_id, "full") == e.positive
        assert all(s in data.corpus.passages for s in e.siblings)
    assert data.corpus.fingerprint() == without.corpus.fingerprint()  # the caches stay valid


@pytest.mark.slow
def test_the_held_out_question_task_ranks_every_sentence_of_the_manual(tmp_path) -> None:
    """XQuAD-R's shape on text no training reads: MiniLM finds most answers, a copy of the
    sentence always, and a question pointed at the wrong sentence scores lower."""
    paragraphs = dict(list(reference_paragraphs().items())[:60])
    if not paragraphs:
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    base = Encoder.load("colmax-minilm-v1", threads=1)
    written = question_task(base, paragraphs=paragraphs)
    assert written is not None and written["questions"] >= 30
    assert 0.4 < written["ndcg@10"] < 1.0 and written["accuracy@1"] <= written["ndcg@10"]

    copies = tmp_path / "copies.jsonl"
    keys = [(p, 1) for p in list(paragraphs)[:20]]
    write_rows(copies, [{"doc": p, "sentence": i, "sha": sentence_hash(paragraphs[p][i]),
                         "question": paragraphs[p][i]} for p, i in keys])  # fmt: skip
    assert question_task(base, copies, paragraphs)["accuracy@1"] == 1.0

    wrong = tmp_path / "wrong.jsonl"
    questions, _ = load_questions(HELD_OUT_FILE, paragraphs)
    shifted = [(q, (q.sentence + 1) % len(paragraphs[q.paragraph])) for q in questions]
    rows = [
        {"doc": q.paragraph, "sentence": i, "question": q.text,
         "sha": sentence_hash(paragraphs[q.paragraph][i])}
        for q, i in shifted
    ]  # fmt: skip
    write_rows(wrong, rows)
    assert question_task(base, wrong, paragraphs)["ndcg@10"] < written["ndcg@10"] - 0.2
    assert question_task(base, wrong, {}) is None


@pytest.mark.slow
def test_the_paragraph_level_task_ranks_whole_paragraphs(tmp_path) -> None:
    """The passage level: each question's own paragraph is the one relevant document, and a
    sentence copied from a paragraph finds that paragraph."""
    paragraphs = dict(list(reference_paragraphs().items())[:40])
    if not paragraphs:
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    base = Encoder.load("colmax-minilm-v1", threads=1)
    copies = tmp_path / "copies.jsonl"
    keys = [(p, 1) for p in list(paragraphs)[:15]]
    write_rows(copies, [{"doc": p, "sentence": i, "sha": sentence_hash(paragraphs[p][i]),
                         "question": paragraphs[p][i]} for p, i in keys])  # fmt: skip
    qrels, run = question_task_run(base, "paragraph", copies, paragraphs, depth=5)
    assert qrels == {str(n): {p: 1} for n, (p, _) in enumerate(keys)}
    assert all(len(ranked) == 5 and set(ranked) <= set(paragraphs) for ranked in run.values())
    assert question_task(base, copies, paragraphs, level="paragraph")["accuracy@1"] == 1.0
    written = question_task(base, paragraphs=paragraphs, level="paragraph")
    sentences = question_task(base, paragraphs=paragraphs)
    assert written["questions"] == sentences["questions"] >= 20
    assert written["ndcg@10"] > sentences["ndcg@10"]  # 40 paragraphs are fewer to tell apart
    with pytest.raises(InputError, match="level"):
        question_task_run(base, "document", copies, paragraphs)


def test_reference_sections_are_the_manuals_paragraphs_under_their_headings() -> None:
    """The section task's qrels: every manual paragraph sits under a heading, and a section
    holds the paragraphs that discuss it."""
    from colmax.train.drift import reference_manual, reference_sections

    sections = reference_sections()
    if not sections:
        pytest.skip("this Python build has no pydoc_data (the reference manual's topics)")
    pooled = {p for paragraphs in sections.values() for p in paragraphs}
    assert pooled == set(reference_manual(None))
    assert sum(len(set(p)) >= 2 for p in sections.values()) > len(sections) / 3
    assert not any("\n***" in p or "\n===" in p for p in pooled)  # no underlines kept
    assignment = " ".join(sections["Augmented assignment statements"])
    assert "augmented assignment" in assignment.lower()


def test_docstring_questions_point_at_the_whole_docstring_among_its_module(tmp_path) -> None:
    docstrings = {
        "os.listdir": ("os", " ".join(PARAGRAPHS["os.listdir"])),
        "os.scandir": ("os", "Return an iterator of DirEntry objects for the directory entries."),
        "os.getpid": ("os", "Return the current process id."),
        "json.dumps": ("json", " ".join(PARAGRAPHS["json.dumps"])),
    }
    path = tmp_path / "q.jsonl"
    write_rows(
        path,
        [
            row("os.listdir", 1, "Does os.listdir sort the names it returns?"),
            row("json.dumps", 2, "How do I pretty-print JSON with json.dumps?"),  # alone in json
        ],
    )
    (example,), passages = docstring_question_pairs(path=path, docstrings=docstrings)
    assert example.source == "docquestion" and example.positive == docstrings["os.listdir"][1]
    assert example.doc_id == "stdlib:os.listdir" and example.known == ("stdlib:os.listdir",)
    # module-mates only, the one sharing more words with the positive first
    assert example.siblings == ("stdlib:os.scandir", "stdlib:os.getpid")
    assert set(passages) == {"stdlib:os.listdir", "stdlib:os.scandir", "stdlib:os.getpid"}
    assert passages["stdlib:os.getpid"] == "Return the current process id."
