"""colmax.train's data side: teacher fusion, BM25 and mining helpers, training pairs, the
batch plan, config checks and the PCA initialisation (no model training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_data import TOY_DOCS, write_beir

from colmax.errors import InputError
from colmax.train import mining, teacher
from colmax.train.batches import BatchPlan, sample_negatives
from colmax.train.config import TrainConfig, differences, parse_mix
from colmax.train.data import (
    cloze_pairs,
    cloze_question,
    fragment_pairs,
    fragment_question,
    load_train_data,
    sentence_pairs,
    split_sentences,
    split_validation,
)
from colmax.train.student import fit_pca

# --------------------------------------------------------------------------- teacher, mining


def test_teacher_zscore_fusion():
    comps = {
        "maxsim": np.array([[3.0, 1.0, 2.0, np.nan]]),
        "bm25": np.array([[10.0, 30.0, 20.0, np.nan]]),
        "biencoder": np.zeros((1, 4)),
    }
    z = teacher.zscore(comps["maxsim"])
    assert np.allclose(z[0, :3], [1.2247449, -1.2247449, 0.0]) and np.isnan(z[0, 3])
    fused = teacher.fuse(comps, {"maxsim": 1.0, "bm25": 1.0})
    assert np.allclose(fused[0, :3], 0.0)
    assert teacher.teacher_weights("maxsim", {}) == {"maxsim": 1.0}
    with pytest.raises(InputError):
        teacher.teacher_weights("fusion", {"bm25": 0.0})


def test_bm25_scorer_matches_bm25s():
    import bm25s

    from colmax.eval.tokenize_text import tokenize, tokenize_many

    texts = [d["text"] for d in TOY_DOCS]
    scorer = teacher.Bm25Scorer(texts)
    model = bm25s.BM25(k1=0.9, b=0.4)
    model.index(tokenize_many(texts), show_progress=False)
    query = "volcano lava eruption"
    want = model.get_scores([w for w in tokenize(query) if w in model.vocab_dict])
    assert np.allclose(scorer.score(query, texts), want, atol=1e-4)


def test_merge_interleaves_dedupes_and_skips_positives():
    assert mining.merge([[5, 1, 2], [1, 7, 3]], skip={2}, depth=4) == [5, 1, 7, 3]
    assert mining.rrf_pool([[1, 2], [2, 3]], 2) == [2, 1]


# --------------------------------------------------------------------------- data


def test_split_validation_is_seeded_and_disjoint():
    ids = [f"q{i}" for i in range(100)]
    train, val = split_validation(ids, 0.15, seed=3)
    assert len(val) == 15 and not set(train) & set(val) and len(train) + len(val) == 100
    assert split_validation(ids, 0.15, seed=3) == (train, val)
    assert split_validation(ids, 0.15, seed=4)[1] != val


def test_sentence_pairs_cut_the_sentence_out():
    assert split_sentences("One two. Three four! 5 six? seven") == [
        "One two.",
        "Three four!",
        "5 six? seven",
    ]
    doc = {
        "id": "x",
        "title": "T",
        "text": "The first sentence has several words in it. The second one also has words.",
    }
    (pair,) = sentence_pairs([doc], None, np.random.default_rng(0))
    assert pair.query not in pair.positive and pair.positive.startswith("T\n")
    assert pair.known == ("x",) and pair.doc_id == "x"


def test_cloze_pairs_ask_about_a_sentence_the_document_keeps():
    text = "Short one. In 1998 the Boston team measured 42 samples of river water carefully."
    doc = {"id": "x", "title": "T", "text": text}
    (pair,) = cloze_pairs([doc], None, np.random.default_rng(0))
    assert pair.positive == f"T\n{text}" and pair.known == ("x",) and pair.source == "cloze"
    assert pair.query.endswith("?")
    wh, _, rest = pair.query[:-1].partition(" ")
    if wh == "How":
        rest = rest.removeprefix("many ")
    words = text.split(". ", 1)[1].rstrip(".").split()
    kept = rest.split()
    assert 8 - 3 <= len(kept) < len(words) and set(kept) <= set(words)  # a 1-3 word span cut
    # the span is a capitalised word or a number after the first word, and the question word
    # follows it
    for seed in range(30):
        question = cloze_question(
            "In 1998 the team measured many samples", np.random.default_rng(seed)
        )
        assert question.startswith("When ") and "1998" not in question
        question = cloze_question(
            "The team measured 42 samples of water", np.random.default_rng(seed)
        )
        assert question.startswith("How many ") and "42" not in question


def test_adding_the_cloze_source_leaves_the_other_sources_unchanged(tmp_path):
    folder = write_beir(tmp_path / "beir")
    without = load_train_data(folder, mix={"labeled": 1, "sentence": 1}, val_fraction=0)
    with_cloze = load_train_data(
        folder, mix={"labeled": 1, "sentence": 1, "cloze": 1}, val_fraction=0
    )
    assert with_cloze.examples["sentence"] == without.examples["sentence"]
    assert with_cloze.examples["cloze"]


def test_fragment_pairs_point_a_few_words_at_one_sentence_among_its_siblings():
    text = (
        "Too short. The first real sentence here has eight words. A second sentence of the "
        "abstract is here too. The third one talks about river water and its salt."
    )
    docs = [
        {"id": "x", "title": "T", "text": text},
        {"id": "y", "title": "U", "text": "Only two sentences here. Not enough for siblings."},
    ]
    (pair,), passages = fragment_pairs(docs, None, np.random.default_rng(0))
    sentences = split_sentences(text)[1:]  # "Too short." has fewer than 4 words: no passage
    assert sorted(passages.values()) == sorted(sentences) and pair.source == "fragment"
    assert pair.positive in sentences and passages[pair.doc_id] == pair.positive
    assert pair.known == (pair.doc_id,) and pair.doc_id not in pair.siblings
    assert sorted(passages[s] for s in pair.siblings) == sorted(
        s for s in sentences if s != pair.positive
    )
    for seed in range(20):  # the kept words are a subsequence of the sentence, at least 2
        sentence = "Lava from the volcano reached the sea after three long days"
        question = fragment_question(sentence, np.random.default_rng(seed))
        assert question.startswith("What ") and question.endswith("?")
        kept, words = question[5:-1].split(), iter(sentence.split())
        assert len(kept) >= 2 and all(w in words for w in kept)
    lengths = [
        len(fragment_question(" ".join(["w"] * 100), np.random.default_rng(s)).split()) - 1
        for s in range(20)
    ]
    assert 15 <= np.mean(lengths) <= 35  # about a quarter of the words stay


def test_the_fragment_source_adds_passages_and_leaves_the_rest_unchanged(tmp_path):
    folder = write_beir(tmp_path / "beir", extra_sentence=True)
    without = load_train_data(folder, mix={"labeled": 1, "sentence": 1}, val_fraction=0)
    data = load_train_data(folder, mix={"labeled": 1, "sentence": 1, "fragment": 1}, val_fraction=0)
    assert data.examples["sentence"] == without.examples["sentence"] and not without.corpus.passages
    pairs = data.examples["fragment"]
    assert len(pairs) == len(TOY_DOCS) and all(len(e.siblings) == 2 for e in pairs)
    for e in pairs:
        abstract = data.corpus.text(e.doc_id.split("#")[0], "body")
        assert data.corpus.text(e.doc_id, "full") == e.positive and e.positive in abstract
        assert all(data.corpus.text(s, "body") in abstract for s in e.siblings)
    assert data.corpus.fingerprint() == without.corpus.fingerprint()  # the caches stay valid


def test_batch_plan_is_a_pure_function_of_seed_and_epoch():
    plan = BatchPlan({"labeled": 10, "title": 6}, {"labeled": 2.0, "title": 0.5}, 4, seed=1)
    epoch = plan.epoch(0)
    counts = {"labeled": 0, "title": 0}
    for b in epoch:
        counts[b.source] += len(b.rows)
    assert counts == {"labeled": 20, "title": 3}
    again = BatchPlan({"labeled": 10, "title": 6}, {"labeled": 2.0, "title": 0.5}, 4, seed=1)
    assert again.epoch(0) == epoch and again.epoch(1) != epoch
    batch, nxt = plan.at((0, len(epoch)))  # past the end: next epoch
    assert batch.epoch == 1 and nxt == (1, 1)
    picks = sample_negatives([["a", "b", "c"]] * 10, batch.rows, 2, 0, batch)
    assert picks == sample_negatives([["a", "b", "c"]] * 10, batch.rows, 2, 0, batch)
    assert all(len(set(p)) == 2 for p in picks)


def test_config_rejects_bad_settings():
    with pytest.raises(InputError, match="test"):
        TrainConfig(split="test").validate()
    with pytest.raises(InputError, match="Matryoshka"):
        TrainConfig(dim=64, dims=(128, 64)).validate()
    with pytest.raises(InputError, match="mix"):
        TrainConfig(mix={"wiki": 1.0}).validate()
    with pytest.raises(InputError, match="anchor_text"):
        TrainConfig(anchor_text="wiki").validate()
    with pytest.raises(InputError, match="anchor_distill_weight"):
        TrainConfig(anchor_distill_weight=-1).validate()
    with pytest.raises(InputError, match="source=weight"):
        parse_mix("labeled")
    assert parse_mix("labeled=2, title=0.5") == {"labeled": 2.0, "title": 0.5}
    a, b = TrainConfig(), TrainConfig(lr=1e-4, threads=1)
    assert differences(a, b) == ["lr: 3e-05 -> 0.0001"]


def test_fit_pca_orders_components_and_centres():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) * np.array([5.0, 2.0, 1.0, 0.1]) + 3.0
    w, b = fit_pca(x.astype(np.float32), 2)
    assert w.shape == (2, 4) and b.shape == (2,)
    assert abs(w[0, 0]) > 0.99 and abs(w[1, 1]) > 0.99
    projected = torch.from_numpy(x).float() @ w.T + b
    assert projected.mean(0).abs().max() < 1e-3
