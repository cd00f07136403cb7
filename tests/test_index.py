"""The embedded index's public API, on a tiny corpus with the real bundled model."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
from bundled import DEFAULT_DIM, DEFAULT_MODEL

from colmax import Index
from colmax.errors import (
    DimensionMismatchError,
    IndexNotFoundError,
    InputError,
    ModelMismatchError,
    UnknownIdError,
)
from colmax.index import AddReport, Document
from colmax.maxsim import maxsim_ragged, ragged_offsets

CORPUS = [
    {"id": "cat", "text": "The cat sat on the warm mat and purred all afternoon."},
    {"id": "paris", "text": "Paris is the capital and largest city of France.", "title": "Paris"},
    {"id": "python", "text": "Python is a popular programming language for data science."},
    {"id": "banana", "text": "Bananas are yellow fruit rich in potassium."},
    {"id": "everest", "text": "Mount Everest is the highest mountain above sea level."},
    {"id": "photosynthesis", "text": "Plants turn sunlight, water and carbon dioxide into sugar."},
    {"id": "moon", "text": "The Moon orbits the Earth about once every 27 days."},
    {"id": "piano", "text": "A piano has 88 keys and makes sound by hammers striking strings."},
    {"id": "coffee", "text": "Coffee is brewed from roasted beans of the coffea plant."},
    {
        "id": "volcano",
        "text": "A volcano erupts when molten rock called magma reaches the surface.",
    },
    {
        "id": "bees",
        "text": "Honey bees make honey from flower nectar.",
        "metadata": {"topic": "bio"},
    },
    {"id": 12, "text": "The Great Wall of China is thousands of kilometres long."},
]
QUERIES = {
    "what is the capital of France": "paris",
    "tallest mountain in the world": "everest",
    "how do plants make sugar from light": "photosynthesis",
    "how many keys does a piano have": "piano",
    "where does honey come from": "bees",
    "ancient wall in China": "12",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory, default_encoder):
    """CORPUS indexed once per module (closed); tests get a fresh copy of it."""
    path = tmp_path_factory.mktemp("built") / "idx"
    with Index.create(path, default_encoder) as idx:
        idx.add(CORPUS)
    return path


@pytest.fixture(scope="module")
def query_vectors(default_encoder):
    """QUERIES encoded once, for tests about the index rather than the encoder."""
    return dict(zip(QUERIES, default_encoder.encode_queries(list(QUERIES)), strict=True))


@pytest.fixture()
def index(tmp_path, default_encoder, built):
    shutil.copytree(built, tmp_path / "idx")
    idx = Index.open(tmp_path / "idx", model=default_encoder)
    yield idx
    idx.close()


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_search_finds_the_right_document(index):
    assert len(index) == len(CORPUS)
    assert index.search("what is the capital of France", k=3)[0].id == "paris"
    for result in index.search_many(list(QUERIES), k=3):
        assert result.hits[0].id == QUERIES[result.query], result.query


def test_add_report_counts_documents_and_tokens(tmp_path, default_encoder):
    with Index.create(tmp_path / "idx", default_encoder) as idx:
        report = idx.add(CORPUS[:3])
        assert isinstance(report, AddReport)
        assert (report.added, report.replaced, report.truncated) == (3, 0, 0)
        assert report.tokens == idx.info()["tokens"] > 0
        assert idx.add([]) == AddReport(0, 0, 0, 0)


def test_exact_search_equals_brute_force_maxsim(index, default_encoder):
    texts = [f"{d['title']}\n{d['text']}" if d.get("title") else d["text"] for d in CORPUS]
    docs = default_encoder.encode_documents(texts)
    query = "a fruit that is yellow"
    q = default_encoder.encode_queries([query])[0]
    scores = maxsim_ragged(q, np.concatenate(docs), ragged_offsets(docs))
    order = np.argsort(-scores, kind="stable")
    hits = index.search(query, k=len(CORPUS))
    assert ids(hits) == [str(CORPUS[i]["id"]) for i in order]
    np.testing.assert_allclose([h.score for h in hits], scores[order], rtol=1e-5)
    # an index this small keeps raw vectors: exactly what the encoder produced, in order
    (part,) = index._current().parts
    assert part.kind == "raw" and index.info()["centroids"] == 0
    np.testing.assert_array_equal(part.bundle["vectors"], np.concatenate(docs))


def test_search_vectors_and_search_many_agree_with_search(index, query_vectors):
    queries = list(QUERIES)
    many = index.search_many(queries, k=4)
    assert [r.query for r in many] == queries
    for query, result in zip(queries, many, strict=True):
        single = index.search_vectors(query_vectors[query], k=4)
        assert ids(result.hits) == ids(single)
        np.testing.assert_allclose(
            [h.score for h in result.hits], [h.score for h in single], rtol=1e-5
        )
    alone = index.search(queries[0], k=4)  # encoded alone, not in a padded batch: under bf16
    assert ids(alone) == ids(many[0].hits)  # autocast the matmul shapes change the rounding
    assert [h.score for h in alone] == pytest.approx([h.score for h in many[0].hits], rel=1e-3)


def test_reopen_gives_identical_results_and_loads_the_recorded_model(index, default_encoder):
    before = index.search_many(list(QUERIES), k=5)
    path = index.path
    index.close()
    with Index.open(path) as reopened:  # loads the model named in the manifest
        assert reopened.encoder is not default_encoder
        assert reopened.encoder.identity.fingerprint == default_encoder.identity.fingerprint
        assert reopened.encoder.dim == default_encoder.dim
        assert len(reopened) == len(CORPUS)
        assert reopened.search_many(list(QUERIES), k=5) == before


def test_hits_and_get_carry_title_metadata_and_text(index):
    hit = index.search("honey from nectar", k=1)[0]
    assert (hit.id, hit.metadata, hit.title) == ("bees", {"topic": "bio"}, None)
    assert hit.text == CORPUS[10]["text"]
    paris = index.get("paris")
    assert paris == Document("paris", CORPUS[1]["text"], "Paris", {})
    assert index.get("nope") is None
    assert index.get(12) == index.get("12") is not None  # int ids are stored as strings
    assert "cat" in index and index.contains("python") and "dog" not in index


def test_delete_tombstones_and_keeps_other_ids_stable(index, query_vectors):
    query = "tallest mountain in the world"
    before = {h.id: h.score for h in index.search_vectors(query_vectors[query], k=len(CORPUS))}
    assert index.delete(["everest", "cat", "everest"]) == 2
    assert len(index) == len(CORPUS) - 2
    assert index.get("everest") is None and "cat" not in index
    after = index.search_vectors(query_vectors[query], k=len(CORPUS))
    assert "everest" not in ids(after) and "cat" not in ids(after)
    # the same scores as before (up to float32 summation order: BLAS blocks by matrix shape)
    assert {h.id: h.score for h in after} == pytest.approx(
        {i: s for i, s in before.items() if i not in ("everest", "cat")}, rel=1e-5
    )
    info = index.info()
    assert (info["documents"], info["deleted"]) == (len(CORPUS) - 2, 2)
    # a deleted id can be added again, and gets a new internal id
    index.add([{"id": "everest", "text": "Everest, 8849 metres, is the highest peak on Earth."}])
    assert index.search_vectors(query_vectors[query], k=1)[0].id == "everest"
    rows = index._store.conn.execute(
        "SELECT internal_id, deleted FROM documents WHERE ext_id = 'everest' ORDER BY internal_id"
    ).fetchall()
    assert [d for _, d in rows] == [1, 0] and rows[0][0] < rows[1][0]


def test_delete_unknown_ids_deletes_nothing(index):
    with pytest.raises(UnknownIdError, match=r"'ghost'.*nothing was deleted"):
        index.delete(["cat", "ghost"])
    assert "cat" in index and len(index) == len(CORPUS)
    with pytest.raises(InputError, match="list"):
        index.delete("cat")
    assert index.delete([]) == 0


def test_replace(index):
    new = {"id": "coffee", "text": "Tea is brewed by steeping dried leaves in hot water."}
    with pytest.raises(InputError, match=r"'coffee'.*replace=True"):
        index.add([new])
    assert index.get("coffee").text == CORPUS[8]["text"]
    report = index.add(
        [new, {"id": "new", "text": "A brand new document about kites."}], replace=True
    )
    assert (report.added, report.replaced) == (2, 1)
    assert index.get("coffee").text == new["text"]
    assert len(index) == len(CORPUS) + 1
    hits = index.search("steeping tea leaves", k=len(CORPUS) + 1)
    assert hits[0].id == "coffee" and hits[0].text == new["text"]
    assert ids(hits).count("coffee") == 1


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "documents 0 and 1 both have id"),
        ([{"id": "a", "text": "ok"}, {"id": "b", "text": "   "}], "document 1 .*empty text"),
        ([{"text": "no id"}], "document 0 has no 'id'"),
        ([{"id": "", "text": "x"}], "empty id"),
        ([{"id": 1.5, "text": "x"}], "type float"),
        ([{"id": "a"}], "no 'text'"),
        ([{"id": "a", "text": "x", "metadata": [1]}], "'metadata' of type list"),
        ([{"id": "a", "text": "x", "metadata": {"f": object()}}], "not JSON"),
        ([{"id": "a", "text": "x", "url": "u"}], "unknown key.*'url'"),
        ([{"id": "a", "text": "x", "title": 3}], "'title' of type int"),
        (["just a string"], "document 0 is a str"),
        ("a string", "not a single str"),
        ({"id": "a", "text": "x"}, "wrap one document in a list"),
    ],
)
def test_bad_input_is_rejected_before_anything_is_stored(index, docs, message):
    with pytest.raises(InputError, match=message):
        index.add(docs)
    assert len(index) == len(CORPUS) and "a" not in index


def test_bad_queries_and_k(index):
    for bad in ("", "   "):
        with pytest.raises(InputError, match="empty"):
            index.search(bad)
    for k in (0, -1, 1.5):
        with pytest.raises(InputError, match="k must be"):
            index.search("cats", k=k)
    with pytest.raises(InputError, match="list of queries"):
        index.search_many("one query")
    assert index.search_many([]) == []
    with pytest.raises(DimensionMismatchError, match="dim 64"):
        index.search_vectors(np.zeros((4, 64), dtype=np.float32))
    with pytest.raises(InputError, match=r"\[query_len, dim\]"):
        index.search_vectors(np.zeros(DEFAULT_DIM, dtype=np.float32))
    assert len(index.search("cats", k=100)) == len(CORPUS)


def test_empty_index_returns_no_hits(tmp_path, default_encoder):
    with Index.create(tmp_path / "idx", default_encoder) as idx:
        assert idx.search("anything") == [] and len(idx) == 0
        idx.add(CORPUS[:2])
        idx.delete(["cat", "paris"])
        assert idx.search("anything") == []


def test_many_small_adds_make_parts_that_search_like_one(
    tmp_path, default_encoder, built, query_vectors
):
    q = query_vectors["what is the capital of France"]
    with Index.create(tmp_path / "idx", default_encoder, max_parts=100) as idx:
        for i in range(0, len(CORPUS), 2):
            idx.add(CORPUS[i : i + 2])
        assert idx.info()["parts"] == (len(CORPUS) + 1) // 2
        hits = idx.search_vectors(q, k=len(CORPUS))
    with Index.open(tmp_path / "idx", model=default_encoder) as reopened:
        assert reopened.search_vectors(q, k=len(CORPUS)) == hits
        assert reopened.verify() == (len(CORPUS) + 1) // 2
    with Index.open(built, model=default_encoder, readonly=True) as flat:
        assert flat.info()["parts"] == 1
        assert ids(flat.search_vectors(q, k=len(CORPUS))) == ids(hits)


def test_model_mismatch_on_open(index, default_encoder):
    small = copy.copy(default_encoder)
    small.config = default_encoder.config.with_overrides(dim=64)
    assert small.dim == 64
    with pytest.raises(DimensionMismatchError, match=rf"{DEFAULT_DIM}-dim.*64-dim"):
        Index.open(index.path, model=small)
    other = copy.copy(default_encoder)
    other.identity = type(default_encoder.identity)(
        "other-model", "0123456789abcdef", "pylate", "/models/other"
    )
    with pytest.raises(ModelMismatchError, match=r"c.*other-model.*0123456789abcdef"):
        Index.open(index.path, model=other)
    with pytest.raises(ModelMismatchError):
        Index.create(index.path, other, exist_ok=True)


def test_index_with_a_truncated_dim(tmp_path, default_encoder):
    small = copy.copy(default_encoder)
    small.config = default_encoder.config.with_overrides(dim=64)
    with Index.create(tmp_path / "idx", small) as idx:
        idx.add(CORPUS[:4])
        assert idx.info()["dim"] == 64
        assert idx.search("what is the capital of France", k=1)[0].id == "paris"
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["dim"] == manifest["model"]["dim"] == 64


def test_create_refuses_non_empty_folders(tmp_path, default_encoder, index):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not empty"):
        Index.create(tmp_path / "stuff", default_encoder)
    with pytest.raises(InputError, match=r"already exists.*exist_ok"):
        Index.create(index.path, default_encoder)
    with Index.create(index.path, default_encoder, exist_ok=True) as same:
        assert len(same) == len(CORPUS)
    (tmp_path / "empty").mkdir()
    Index.create(tmp_path / "empty", default_encoder).close()  # an empty folder is fine
    with pytest.raises(InputError, match="is a file"):
        Index.create(tmp_path / "stuff" / "notes.txt", default_encoder)


def test_open_something_that_is_not_an_index(tmp_path, default_encoder):
    with pytest.raises(IndexNotFoundError, match=r"no index at .*Index.create"):
        Index.open(tmp_path / "missing", model=default_encoder)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("x")
    with pytest.raises(IndexNotFoundError, match="not a colmax index"):
        Index.open(tmp_path / "plain", model=default_encoder)
    with pytest.raises(IndexNotFoundError, match="is a file"):
        Index.open(tmp_path / "plain" / "a.txt", model=default_encoder)


def test_readonly_open_refuses_writes(index, default_encoder):
    with Index.open(index.path, model=default_encoder, readonly=True) as ro:
        assert ro.search("capital of France", k=1)[0].id == "paris"
        with pytest.raises(InputError, match="readonly"):
            ro.add([{"id": "x", "text": "y"}])
        with pytest.raises(InputError, match="readonly"):
            ro.delete(["cat"])


def test_info_and_close(index):
    info = index.info()
    assert info["format"] == "colmax-index" and info["version"] == 2
    assert info["model"]["name"] == DEFAULT_MODEL and info["dim"] == DEFAULT_DIM
    assert info["documents"] == len(CORPUS) and info["deleted"] == 0
    assert (
        info["bytes"] >= info["index_bytes"] >= info["tokens"] * DEFAULT_DIM * 2 > 0
    )  # raw: small
    assert info["nbits"] == 2 and info["raw_parts"] == info["parts"] == 1
    assert info["path"] == str(index.path)
    index.close()
    index.close()  # idempotent
    with pytest.raises(InputError, match="closed"):
        index.search("cats")
    assert "closed" in repr(index)


def test_create_by_name_records_the_model_without_loading_it(tmp_path, default_encoder):
    rng = np.random.default_rng(0)
    vectors = [rng.standard_normal((6, 64)).astype(np.float32) for _ in range(3)]
    with Index.create(tmp_path / "idx", None, dim=64) as idx:  # the bundled default, by name
        assert idx._encoder is None  # configs only: no weights loaded
        idx.add([{"id": f"d{i}", "text": "x"} for i in range(3)], vectors=vectors)
        assert idx.search_vectors(vectors[1], k=1)[0].id == "d1"
        assert idx._encoder is None
        recorded = idx.manifest["model"]
        assert recorded == {**default_encoder.describe(), "dim": 64}
        assert idx.encoder.dim == 64 and idx.encoder.identity == default_encoder.identity
    with Index.open(tmp_path / "idx", model=idx.encoder) as again:  # the loaded one matches
        assert len(again) == 3
    with pytest.raises(DimensionMismatchError, match=r"dim 100000 is not available"):
        Index.create(tmp_path / "too-wide", None, dim=100_000)
    with pytest.raises(DimensionMismatchError, match=r"dim=64 but the given encoder"):
        Index.create(tmp_path / "mismatch", default_encoder, dim=64)
