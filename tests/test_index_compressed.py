"""Compression and compressed search: the codec, k-means, the scoring kernel, and search
results checked against brute-force MaxSim."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colmax import Index
from colmax.errors import InputError
from colmax.index.codec import ResidualCodec
from colmax.index.kernels import score_part, score_scratch
from colmax.index.kmeans import kmeans, nearest_centroid, num_centroids
from colmax.index.searcher import SearchParams, decode_docs
from colmax.maxsim import maxsim_ragged, ragged_offsets

DIM = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, centers: np.ndarray, noise: float) -> np.ndarray:
    picks = centers[rng.integers(0, len(centers), n)]
    return unit(picks + noise * rng.standard_normal(picks.shape))


def corpus(seed: int, n_docs: int, dim: int = DIM, clusters: int = 24, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    centers = unit(rng.standard_normal((clusters, dim)))
    docs = [clustered(rng, int(rng.integers(3, 30)), centers, noise) for _ in range(n_docs)]
    queries = [clustered(rng, int(rng.integers(2, 12)), centers, noise) for _ in range(5)]
    return docs, queries


@pytest.fixture(scope="module")
def encoder64(default_encoder):
    small = copy.copy(default_encoder)
    small.config = default_encoder.config.with_overrides(dim=DIM)
    return small


def make_index(path, encoder, docs, **options):
    idx = Index.create(path, encoder, train_min_tokens=64, **options)
    records = [{"id": f"d{i}", "text": f"document {i}"} for i in range(len(docs))]
    idx.add(records, vectors=docs)
    return idx


def decompressed(idx: Index) -> dict[str, np.ndarray]:
    """Every live document's vectors as the index stores them."""
    snap = idx._current()
    out: dict[str, np.ndarray] = {}
    for part, dead in zip(snap.parts, snap.dead, strict=True):
        local, vectors = decode_docs(part, snap.codec, np.flatnonzero(~dead))
        rows = idx._store.fetch(part.doc_ids[local].tolist(), with_text=False)
        for n, chunk in zip(local, np.split(vectors, np.cumsum(part.doc_lens[local])[:-1])):
            out[rows[int(part.doc_ids[n])].ext_id] = chunk
    return out


def brute_force(q: np.ndarray, docs: dict[str, np.ndarray], k: int) -> list[tuple[str, float]]:
    names = sorted(docs)
    arrays = [docs[n] for n in names]
    scores = maxsim_ragged(q, np.concatenate(arrays), ragged_offsets(arrays))
    order = sorted(range(len(names)), key=lambda i: (-scores[i], names[i]))[:k]
    return [(names[i], float(scores[i])) for i in order]


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_codec_round_trip_error_shrinks_with_bits(nbits):
    docs, _ = corpus(0, 300)
    x = np.concatenate(docs)
    codec = ResidualCodec.train(x, nbits, num_centroids_=32)
    codes, packed = codec.encode(x)
    assert packed.shape == (len(x), DIM * nbits // 8) and packed.dtype == np.uint8
    err = np.linalg.norm(codec.decode(codes, packed) - x, axis=1).mean()
    plain = np.linalg.norm(codec.centroids[codes] - x, axis=1).mean()
    assert err < plain  # the residual always helps
    # relative error near that of an optimal scalar quantiser of a bell-shaped variable
    assert err / plain < {1: 0.7, 2: 0.45, 4: 0.2}[nbits]


def test_re_encoding_decoded_blocks_equals_re_encoding_the_decoded_array(monkeypatch):
    import colmax.index.codec as codec_module

    monkeypatch.setattr(codec_module, "ENCODE_BLOCK", 100)  # several blocks
    docs, _ = corpus(1, 120)
    x = np.concatenate(docs)
    old = ResidualCodec.train(x, 2, num_centroids_=16)
    new = ResidualCodec.train(x, 4, num_centroids_=32, seed=1)
    codes, packed = old.encode(x)
    lazy = old.decoded(codes, packed)
    assert len(lazy) == len(x) > 300
    np.testing.assert_array_equal(lazy[5:250], old.decode(codes[5:250], packed[5:250]))
    for got, want in zip(new.encode(lazy), new.encode(old.decode(codes, packed))):
        np.testing.assert_array_equal(got, want)


def test_query_tables_equal_dot_products_with_decoded_residuals():
    docs, queries = corpus(1, 100)
    x = np.concatenate(docs)
    codec = ResidualCodec.train(x, 2, num_centroids_=16)
    codes, packed = codec.encode(x)
    q = queries[0]
    tables = codec.query_tables(q)
    via_tables = np.stack(
        [tables[:, np.arange(packed.shape[1]), row].sum(axis=1) for row in packed], axis=1
    )
    direct = q @ (codec.decode(codes, packed) - codec.centroids[codes]).T
    np.testing.assert_allclose(via_tables, direct, atol=1e-5)


def test_codec_rejects_bad_nbits():
    x = unit(np.random.default_rng(0).standard_normal((50, 6)))
    with pytest.raises(InputError, match="nbits must be one of"):
        ResidualCodec.train(x, 3)
    with pytest.raises(InputError, match="multiple of 8"):
        ResidualCodec.train(x, 1)


def test_kmeans_finds_well_separated_clusters():
    rng = np.random.default_rng(2)
    centers = unit(rng.standard_normal((8, DIM)))
    x = clustered(rng, 2000, centers, 0.05)
    found = kmeans(x, 16, iterations=10)
    assert found.shape == (16, DIM)
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, rtol=1e-5)
    # every true center has a learned centroid next to it, and every centroid is used
    assert (found @ centers.T).max(axis=0).min() > 0.95
    assert set(nearest_centroid(x, found).tolist()) == set(range(16))


def test_kmeans_on_rows_equals_kmeans_on_their_copy():
    # a sample given as row numbers is read in place, and clusters exactly like its copy
    rng = np.random.default_rng(3)
    x = clustered(rng, 3000, unit(rng.standard_normal((8, DIM))), 0.1).astype(np.float16)
    rows = np.sort(rng.choice(len(x), size=1000, replace=False))
    in_place = kmeans(x, 8, iterations=5, rows=rows)
    np.testing.assert_array_equal(in_place, kmeans(x[rows], 8, iterations=5))
    with pytest.raises(ValueError, match="k <= n"):
        kmeans(x, 8, rows=rows[:4])


@pytest.mark.parametrize("k", [3, 700, 9000])
def test_assignment_in_blocks_sized_by_k_equals_the_argmax(monkeypatch, k):
    import colmax.index.kmeans as kmeans_module

    monkeypatch.setattr(kmeans_module, "SCORE_BLOCK", 2**16)  # 64-1,024 rows as k varies
    assert kmeans_module.block_rows(3) == 1024 and kmeans_module.block_rows(9000) == 64
    assert kmeans_module.block_rows(700) == 64  # 2**16 // 700 = 93 -> 64
    rng = np.random.default_rng(k)
    x = unit(rng.standard_normal((2500, DIM))).astype(np.float32)  # not a multiple of a block
    centroids = unit(rng.standard_normal((k, DIM))).astype(np.float32)
    found = nearest_centroid(x, centroids)
    scores = x @ centroids.T
    # bf16 may swap near-ties: the chosen centroid scores within rounding of the best
    best = scores.max(axis=1)
    assert np.all(scores[np.arange(len(x)), found] >= best - 0.02)
    assert np.mean(found == scores.argmax(axis=1)) > 0.8


def test_codec_training_sample_is_bounded_and_drawn_from_all_rows(monkeypatch):
    import colmax.index.codec as codec_module

    monkeypatch.setattr(codec_module, "TRAIN_MAX_TOKENS", 512)
    rng = np.random.default_rng(4)
    # two far-apart halves: a sample from the first rows only would miss the second
    first = clustered(rng, 4000, unit(rng.standard_normal((1, DIM))), 0.05)
    second = clustered(rng, 4000, unit(rng.standard_normal((1, DIM))), 0.05)
    x = np.concatenate([first, second]).astype(np.float16)
    codec = ResidualCodec.train(x, 2, num_centroids_=8)
    assert codec.num_centroids == 8
    nearest = (x.astype(np.float32) @ codec.centroids.T).max(axis=1)
    assert nearest[:4000].mean() > 0.9 and nearest[4000:].mean() > 0.9


def test_num_centroids_scales_with_sqrt_tokens():
    assert num_centroids(1_000_000, 16) == 8192  # PLAID's rule: 2**floor(log2(16000))
    assert num_centroids(1_000_000) == 4096
    assert num_centroids(4_000_000) == 8192
    assert num_centroids(10) == 10 and num_centroids(10**12) == 2**16


# --------------------------------------------------------------------------- kernel


def test_score_part_matches_a_plain_loop_with_imputation():
    rng = np.random.default_rng(3)
    n_docs, n_tokens, n_lists, n_bytes, t, p = 7, 60, 6, 3, 4, 2
    local_doc = np.sort(rng.integers(0, n_docs - 1, n_tokens)).astype(np.uint16)  # doc 6: none
    codes = rng.integers(0, n_lists, n_tokens)
    order = np.argsort(codes, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_lists))])
    residuals = rng.integers(0, 256, (n_tokens, n_bytes)).astype(np.uint8)[order]
    local_doc = local_doc[order]
    tables = rng.standard_normal((t, n_bytes, 256)).astype(np.float32)
    probe = np.stack([rng.choice(n_lists, p, replace=False) for _ in range(t)]).astype(np.int32)
    probe_scores = rng.standard_normal((t, p)).astype(np.float32)
    missing = probe_scores.min(axis=1)
    scratch = score_scratch(n_docs + 5)  # larger than the part, as for a query's bigger parts
    args = (probe, probe_scores, missing, tables, offsets.astype(np.uint32), residuals, local_doc)
    docs, scores = score_part(*args, *scratch)
    assert not scratch[0].any() and not scratch[1][0].any()  # left zeroed for the next part
    again = score_part(*args, *scratch)  # the same scratch, reused: the same answer
    assert again[0].tolist() == docs.tolist() and np.array_equal(again[1], scores)
    expected: dict[int, float] = {}
    best = {}
    for ti in range(t):
        for pi in range(p):
            c = probe[ti, pi]
            for i in range(offsets[c], offsets[c + 1]):
                lookups = (tables[ti, j, residuals[i, j]] for j in range(n_bytes))
                s = probe_scores[ti, pi] + sum(lookups)
                d = int(local_doc[i])
                best[ti, d] = max(best.get((ti, d), -np.inf), s)
    reached = sorted({d for _, d in best})
    for d in reached:
        expected[d] = sum(best.get((ti, d), missing[ti]) for ti in range(t))
    assert docs.tolist() == reached
    np.testing.assert_allclose(scores, [expected[d] for d in reached], rtol=1e-5)


# --------------------------------------------------------------------------- search


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), nbits=st.sampled_from([1, 2, 4]), rescore=st.booleans())
def test_widest_search_returns_the_exact_top_k(tmp_path_factory, encoder64, seed, nbits, rescore):
    """With every list probed, the search is exact MaxSim over what the index stores."""
    docs, queries = corpus(seed, 60)
    path = tmp_path_factory.mktemp("widest") / "idx"
    with make_index(path, encoder64, docs, nbits=nbits, max_parts=2) as idx:
        late, _ = corpus(seed + 1, 1)
        idx.add([{"id": "late", "text": "x"}], vectors=late)  # a second part
        idx.delete(["d5"])
        info = idx.info()
        assert info["raw_parts"] == 0 and info["centroids"] > 1
        stored = decompressed(idx)
        assert "d5" not in stored and len(stored) == 60 and info["parts"] == 2
        params = SearchParams(nprobe=10**6, candidates=10**6, rescore=rescore)
        for q in queries:
            hits = idx.search_vectors(q, k=10, params=params)
            expected = brute_force(q, stored, 10)
            assert [h.id for h in hits] == [n for n, _ in expected]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-4)


def test_default_search_finds_what_exact_maxsim_finds(tmp_path, encoder64):
    docs, _ = corpus(7, 400, clusters=64, noise=0.2)
    rng = np.random.default_rng(8)
    with make_index(tmp_path / "idx", encoder64, docs, nbits=4) as idx:
        overlaps, rescored = [], []
        for i in rng.choice(len(docs), 20, replace=False):
            q = docs[i][:6] + 0.05 * rng.standard_normal(docs[i][:6].shape)
            q = unit(q)
            exact = {n for n, _ in brute_force(q, {f"d{j}": d for j, d in enumerate(docs)}, 10)}
            got = {h.id for h in idx.search_vectors(q, k=10)}
            overlaps.append(len(exact & got) / 10)
            best = idx.search_vectors(q, k=10, params=SearchParams(rescore=True))
            rescored.append(len(exact & {h.id for h in best}) / 10)
            assert best[0].id == f"d{i}" and idx.search_vectors(q, k=1)[0].id == f"d{i}"
        # ranks 2..10 are near-ties on this data; re-scoring removes the estimate's noise
        assert np.mean(overlaps) >= 0.7 and np.mean(rescored) >= 0.8


def test_search_params_are_checked(tmp_path, encoder64):
    docs, queries = corpus(9, 30)
    with make_index(tmp_path / "idx", encoder64, docs) as idx:
        for bad in (0, -3, 2.5):
            with pytest.raises(InputError, match="nprobe must be"):
                idx.search_vectors(queries[0], params=SearchParams(nprobe=bad))
        with pytest.raises(InputError, match="candidates must be"):
            idx.search_vectors(queries[0], params=SearchParams(candidates=0))
        many = idx.search_vectors(queries, k=5, threads=2)
        assert [[h.id for h in hits] for hits in many] == [
            [h.id for h in idx.search_vectors(q, k=5)] for q in queries
        ]


def test_bytes_per_token_is_within_the_budget(tmp_path, encoder64):
    docs, _ = corpus(10, 3000, clusters=64)
    with make_index(tmp_path / "idx", encoder64, docs, nbits=2) as idx:
        info = idx.info()
        # codes + residuals + doc numbers + offsets + centroids, at dim 64 / nbits 2
        assert info["bytes_per_token"] <= DIM * 2 / 8 + 4 + 4, info


def test_precomputed_vectors_are_checked_and_a_bad_add_adds_nothing(tmp_path, encoder64):
    from colmax.errors import DimensionMismatchError

    docs, _ = corpus(11, 20)
    records = [{"id": f"d{i}", "text": f"document {i}"} for i in range(len(docs))]
    with Index.create(tmp_path / "idx", encoder64, train_min_tokens=64) as idx:
        with pytest.raises(InputError, match="got 19 vector arrays for 20 documents"):
            idx.add(records, vectors=docs[:19])
        with pytest.raises(InputError, match="more vector arrays than the 20"):
            idx.add(records, vectors=[*docs, docs[0]])
        bad_dim = [*docs[:5], np.zeros((3, 32), dtype=np.float32), *docs[6:]]
        with pytest.raises(DimensionMismatchError, match=r"vectors\[5\] has dim 32"):
            idx.add(records, vectors=bad_dim)
        nan = [*docs[:7], np.full((2, DIM), np.nan, dtype=np.float32), *docs[8:]]
        with pytest.raises(InputError, match=r"vectors\[7\] holds NaN"):
            idx.add(records, vectors=nan)
        with pytest.raises(InputError, match="non-empty"):
            idx.add(records, vectors=[*docs[:2], np.zeros((0, DIM)), *docs[3:]])
        assert len(idx) == 0 and idx.info()["parts"] == 0
        assert sorted(p.name for p in (idx.path / "parts").iterdir()) == []
        idx.add(records, vectors=(d for d in docs), batch_size=3)  # a generator is fine
        assert len(idx) == 20 and idx.info()["raw_parts"] == 0
