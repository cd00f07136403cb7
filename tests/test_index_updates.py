"""Changing an index: delete, replace, compaction, re-training (optimize, by hand and by
itself), merging parts, the raw -> compressed switch, and readers beside a writer.

Documents carry random unit vectors (``vectors=``), so nothing is encoded; a small
``train_min_tokens`` gives a compressed index on tiny data.
"""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from stored_index import files_on_disk, named_files, unit_vectors

from colmax import Index
from colmax.errors import InputError, UnknownIdError
from colmax.index.searcher import SearchParams

EXACT = SearchParams(nprobe=4096, candidates=8, rescore=True)  # all lists, then exact MaxSim


def doc(i: int, text: str = "") -> dict:
    return {"id": f"d{i}", "text": text or f"document number {i}"}


def vecs(i: int) -> np.ndarray:
    return unit_vectors(i, 5 + i % 7)


def add(idx: Index, numbers, **kwargs):
    numbers = list(numbers)
    return idx.add([doc(i) for i in numbers], vectors=[vecs(i) for i in numbers], **kwargs)


def top(idx: Index, numbers, k: int = 3, params: SearchParams = EXACT) -> dict[str, list]:
    """``d{i}`` -> its hits as ``(id, score)`` when searched with its own vectors."""
    numbers = list(numbers)
    found = idx.search_vectors(
        [vecs(i) for i in numbers], k=k, params=params, with_text=False, threads=2
    )
    return {f"d{i}": [(h.id, h.score) for h in hits] for i, hits in zip(numbers, found)}


def assert_each_finds_itself(idx: Index, numbers, params: SearchParams = EXACT) -> None:
    for name, hits in top(idx, numbers, params=params).items():
        assert hits and hits[0][0] == name, (name, hits)


def assert_same_hits(after: dict[str, list], before: dict[str, list]) -> None:
    for name, hits in before.items():
        assert [h[0] for h in after[name]] == [h[0] for h in hits], name
        assert [h[1] for h in after[name]] == pytest.approx([h[1] for h in hits], abs=1e-5)


N = 40


@pytest.fixture()
def index(tmp_path, default_encoder):
    """A compressed index of d0..d39 in four parts; no automatic merging or re-training."""
    idx = Index.create(
        tmp_path / "idx", default_encoder, train_min_tokens=200, max_parts=8, auto_optimize=False
    )
    for start in range(0, N, 10):
        add(idx, range(start, start + 10))
    info = idx.info()
    assert info["raw_parts"] == 0 and info["centroids"] > 0 and info["parts"] == 3
    yield idx
    idx.close()


# --------------------------------------------------------------------------- delete and replace


def test_delete_leaves_the_other_documents_and_their_results_alone(index):
    gone = [3, 10, 17, 25, 33]
    kept = [i for i in range(N) if i not in gone]
    before = top(index, kept)
    assert index.delete([f"d{i}" for i in gone]) == len(gone)
    assert len(index) == N - len(gone)
    info = index.info()
    assert info["documents"] == N - len(gone) and info["deleted"] == len(gone)
    for i in gone:
        assert index.get(f"d{i}") is None and f"d{i}" not in index
    for i in kept:
        assert index.get(f"d{i}").text == doc(i)["text"]
    after = top(index, kept)
    dropped = {f"d{i}" for i in gone}
    want = {name: [h for h in hits if h[0] not in dropped] for name, hits in before.items()}
    assert_same_hits({name: after[name][: len(hits)] for name, hits in want.items()}, want)
    everything = index.search_vectors([vecs(i) for i in gone], k=N, params=EXACT)
    assert not {h.id for hits in everything for h in hits} & {f"d{i}" for i in gone}
    # a deleted id is free again
    add(index, [3])
    assert_each_finds_itself(index, [3])
    assert index.info()["deleted"] == len(gone)


def test_delete_of_an_unknown_id_deletes_nothing(index):
    with pytest.raises(UnknownIdError, match=r"1 id\(s\).*'nope'.*nothing was deleted"):
        index.delete(["d1", "nope", "d2"])
    assert len(index) == N and "d1" in index and "d2" in index
    assert index.info()["deleted"] == 0
    index.delete(["d1"])
    with pytest.raises(UnknownIdError, match="'d1'"):  # already deleted
        index.delete(["d1"])
    assert len(index) == N - 1


def test_replace_swaps_a_documents_text_and_vectors(index):
    new = unit_vectors(999, 9)
    with pytest.raises(InputError, match=r"already in the index.*'d5'.*replace=True"):
        index.add([{"id": "d5", "text": "other"}], vectors=[new])
    assert index.get("d5").text == doc(5)["text"]
    own = index.search_vectors(vecs(5), k=1, params=EXACT)[0]
    assert own.id == "d5"
    report = index.add(
        [{"id": "d5", "text": "replaced", "title": "New"}, doc(100)],
        vectors=[new, vecs(100)],
        replace=True,
    )
    assert (report.added, report.replaced) == (2, 1)
    got = index.get("d5")
    assert (got.text, got.title) == ("replaced", "New")
    assert len(index) == N + 1 and index.info()["deleted"] == 1
    assert index.search_vectors(new, k=1, params=EXACT)[0].id == "d5"
    old_hits = index.search_vectors(vecs(5), k=N, params=EXACT)
    assert old_hits[0].id != "d5"  # the old vectors are gone with the old version
    by_id = {h.id: h.score for h in old_hits}
    assert by_id.get("d5", -np.inf) < own.score / 2
    assert_each_finds_itself(index, [i for i in range(N) if i != 5] + [100])


# --------------------------------------------------------------------------- compaction


@pytest.mark.parametrize("raw", [False, True], ids=["compressed", "raw"])
def test_compact_drops_tombstones_and_keeps_results(tmp_path, default_encoder, raw):
    path = tmp_path / "idx"
    with Index.create(
        path, default_encoder, train_min_tokens=10**6 if raw else 200, auto_optimize=False
    ) as idx:
        for start in range(0, N, 10):
            add(idx, range(start, start + 10))
        gone = list(range(0, N, 4))
        kept = [i for i in range(N) if i not in gone]
        idx.delete([f"d{i}" for i in gone])
        before, info_before = top(idx, kept), idx.info()
        assert info_before["deleted"] == len(gone) and info_before["parts"] >= 3
        assert info_before["raw_parts"] == (info_before["parts"] if raw else 0)

        assert idx.compact() == len(gone)
        info = idx.info()
        assert info["deleted"] == 0 and info["documents"] == len(kept) == len(idx)
        assert info["parts"] == 1 and info["index_bytes"] < info_before["index_bytes"]
        assert info["tokens"] == info_before["tokens"]  # live tokens
        assert info["centroids"] == info_before["centroids"]  # same codec: codes copied
        after = top(idx, kept)
        assert_same_hits(after, before)
        assert files_on_disk(path) == named_files(path)  # the replaced parts are deleted
        assert idx.compact() == 0 and top(idx, kept) == after
        for i in gone:
            assert f"d{i}" not in idx
        assert idx.verify() == len(named_files(path))


# --------------------------------------------------------------------------- re-training


def test_optimize_retrains_the_codec_on_the_current_documents(index):
    path = index.path
    first = index.info()
    add(index, range(N, 4 * N))  # grows well past what the codec was trained on
    assert index.info()["centroids_trained_on_tokens"] == first["centroids_trained_on_tokens"]
    index.delete(["d0", "d1"])
    old_codec = {n for n in named_files(path) if n.endswith(".codec")}

    info = index.optimize()
    assert info["centroids_trained_on_tokens"] == info["tokens"] > first["tokens"]
    assert info["centroids"] > first["centroids"]
    assert info["deleted"] == 0 and info["parts"] == 1 and info["raw_parts"] == 0
    new_codec = {n for n in named_files(path) if n.endswith(".codec")}
    assert new_codec and new_codec != old_codec
    assert files_on_disk(path) == named_files(path)  # the old codec and parts are deleted
    assert_each_finds_itself(index, range(2, 4 * N, 2))
    # without exact re-scoring too, nearly always the document itself
    plain = top(index, range(3, 4 * N, 2), k=1, params=SearchParams())
    assert sum(hits[0][0] == name for name, hits in plain.items()) >= 0.95 * len(plain)
    assert index.verify() == len(named_files(path))


@pytest.mark.parametrize("auto", [True, False])
def test_auto_optimize_once_the_index_grew_regrow_times(tmp_path, default_encoder, auto):
    regrow = 1.5
    idx = Index.create(
        tmp_path / "idx", default_encoder, train_min_tokens=200, regrow=regrow, auto_optimize=auto
    )
    trained_on = []
    with idx:
        for start in range(0, 120, 8):
            add(idx, range(start, start + 8))
            info = idx.info()
            if info["centroids"]:
                trained_on.append(info["centroids_trained_on_tokens"])
                if auto:
                    assert info["tokens"] < regrow * trained_on[-1]
        assert_each_finds_itself(idx, range(0, 120, 3))
    if auto:
        assert trained_on[-1] > 2 * trained_on[0] and len(set(trained_on)) >= 3
    else:
        assert len(set(trained_on)) == 1


def test_auto_merge_keeps_at_most_max_parts(tmp_path, default_encoder):
    path = tmp_path / "idx"
    counts = []
    with Index.create(
        path, default_encoder, train_min_tokens=200, max_parts=4, auto_optimize=False
    ) as idx:
        for start in range(0, 120, 4):
            add(idx, range(start, start + 4))
            counts.append(idx.info()["parts"])
            assert files_on_disk(path) == named_files(path)
        assert_each_finds_itself(idx, range(120))
        assert idx.verify() == len(named_files(path))
    assert max(counts) == 4 and min(counts[5:]) < 4  # parts pile up, then get merged


def test_raw_parts_until_train_min_tokens_then_compressed(tmp_path, default_encoder):
    threshold = 300
    path = tmp_path / "idx"
    with Index.create(path, default_encoder, train_min_tokens=threshold) as idx:
        numbers: list[int] = []
        for start in range(0, 80, 8):
            add(idx, range(start, start + 8))
            numbers += range(start, start + 8)
            info = idx.info()
            if info["tokens"] < threshold:
                assert info["raw_parts"] == info["parts"] > 0 and info["centroids"] == 0
                assert not any(n.endswith(".codec") for n in files_on_disk(path))
                # raw parts are searched exactly: the score is MaxSim over float16 vectors
                q = vecs(numbers[0])[:3]
                stored = vecs(numbers[1]).astype(np.float16).astype(np.float32)
                hits = idx.search_vectors(q, k=len(numbers))
                score = {h.id: h.score for h in hits}[f"d{numbers[1]}"]
                assert score == pytest.approx((q @ stored.T).max(axis=1).sum(), abs=1e-3)
            else:
                assert info["raw_parts"] == 0 and info["centroids"] > 0
            assert_each_finds_itself(idx, numbers[::4] + numbers[-8:])
        assert_each_finds_itself(idx, numbers)
        assert info["raw_parts"] == 0 and info["tokens"] > 2 * threshold
        assert files_on_disk(path) == named_files(path)


def test_one_big_add_crosses_train_min_tokens(tmp_path, default_encoder):
    with Index.create(tmp_path / "idx", default_encoder, train_min_tokens=200) as idx:
        add(idx, range(3))
        assert idx.info()["raw_parts"] == 1
        add(idx, range(3, 100), batch_size=7)
        info = idx.info()
        assert info["raw_parts"] == 0 and info["centroids"] > 0 and info["documents"] == 100
        assert_each_finds_itself(idx, range(100))


# --------------------------------------------------------------------------- readers and writers


def test_a_reader_in_the_same_process_follows_the_writer(index):
    with Index.open(index.path, readonly=True) as reader:
        assert_each_finds_itself(reader, range(N))
        add(index, range(N, N + 20))
        assert len(reader) == N + 20
        assert_each_finds_itself(reader, range(N + 20))
        index.delete([f"d{i}" for i in range(0, 10)])
        assert "d0" not in reader and len(reader) == N + 10
        index.compact()
        assert reader.info()["deleted"] == 0
        assert_each_finds_itself(reader, range(10, N + 20))
        index.optimize()
        assert reader.info()["centroids"] == index.info()["centroids"]
        assert_each_finds_itself(reader, range(10, N + 20))
        hits = reader.search_vectors([vecs(i) for i in range(10)], k=N, params=EXACT)
        assert not {h.id for found in hits for h in found} & {f"d{i}" for i in range(10)}


def test_a_reader_that_loses_the_race_with_a_compaction_reads_the_parts_again(index, monkeypatch):
    """The writer deletes the files it replaced right after its commit; a reader that read the
    parts table just before must not call that corruption but read the table again."""
    from colmax.index.docstore import DocStore

    with Index.open(index.path, readonly=True) as reader:
        assert_each_finds_itself(reader, range(3))
        add(index, [N])  # the reader's next search reloads
        original, raced = DocStore.parts, []

        def parts_then_compaction(store):
            listed = original(store)
            if store is reader._store and not raced:
                raced.append(listed)
                index.delete(["d0"])
                index.compact()  # replaces, then deletes, every file the reader just listed
            return listed

        monkeypatch.setattr(DocStore, "parts", parts_then_compaction)
        assert_each_finds_itself(reader, range(1, N + 1))
        assert raced and "d0" not in reader and reader.info()["deleted"] == 0


def test_readers_search_while_a_writer_thread_adds_compacts_and_optimizes(index):
    """Two reader threads (one on a read-only Index, one on the writer's own Index object)
    search without pause while another thread writes; d0..d39 are never touched, so each
    must keep finding itself, whatever the writer has done."""
    errors: list[BaseException] = []
    searches = [0, 0]
    done = threading.Event()

    def read(idx: Index, slot: int) -> None:
        rng = random.Random(slot)
        try:
            while not done.is_set():
                i = rng.randrange(N)
                hits = idx.search_vectors(vecs(i), k=3, params=EXACT, with_text=False)
                assert hits[0].id == f"d{i}", (i, hits)
                searches[slot] += 1
        except BaseException as exc:
            errors.append(exc)

    def write() -> None:
        try:
            for round_ in range(4):
                base = 1000 + 100 * round_
                add(index, range(base, base + 30))
                index.delete([f"d{i}" for i in range(base, base + 10)])
                add(index, range(base + 10, base + 15), replace=True)
                index.compact()
                if round_ % 2:
                    index.optimize()
        except BaseException as exc:
            errors.append(exc)

    with Index.open(index.path, readonly=True) as reader:
        threads = [
            threading.Thread(target=read, args=(reader, 0)),
            threading.Thread(target=read, args=(index, 1)),
        ]
        for t in threads:
            t.start()
        writer = threading.Thread(target=write)
        writer.start()
        writer.join(timeout=120)
        done.set()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert min(searches) > 5
        assert len(reader) == len(index) == N + 4 * 20
        assert_each_finds_itself(reader, range(N))


def test_build_settings_are_recorded_and_overridable_per_session(tmp_path, default_encoder):
    path = tmp_path / "idx"
    Index.create(path, default_encoder, train_min_tokens=200, max_parts=3, regrow=1.5).close()
    with Index.open(path, model=default_encoder) as idx:
        assert (idx.settings.train_min_tokens, idx.settings.max_parts) == (200, 3)
        assert idx.settings.regrow == 1.5
    with Index.open(path, model=default_encoder, max_parts=5) as idx:  # this session only
        assert idx.settings.max_parts == 5 and idx.settings.train_min_tokens == 200
    with Index.open(path, model=default_encoder) as idx:
        assert idx.settings.max_parts == 3
    with pytest.raises(InputError, match="unknown index option"):
        Index.open(path, model=default_encoder, max_partz=5)


def test_concat_sorts_documents_and_moves_their_tokens_with_them():
    from colmax.index.parts import DocBatch
    from colmax.index.writer import concat

    def batch(ids: list[int], lens: list[int]) -> DocBatch:
        # each token's value is its document id, so a token that moves to the wrong place shows
        vectors = np.repeat(np.array(ids, dtype=np.float16), lens)[:, None].repeat(4, axis=1)
        return DocBatch(np.array(ids, dtype=np.int64), np.array(lens, dtype=np.int32), vectors)

    joined = concat([batch([7, 9], [2, 3]), batch([1, 8], [4, 1])])
    assert joined.doc_ids.tolist() == [1, 7, 8, 9]
    assert joined.doc_lens.tolist() == [4, 2, 1, 3]
    expected = np.repeat([1, 7, 8, 9], [4, 2, 1, 3])
    np.testing.assert_array_equal(joined.vectors[:, 0], expected)
    np.testing.assert_array_equal(joined.vectors[:, 3], expected)
    # already in order: joined as they are; a single batch is not even copied
    in_order = concat([batch([1, 2], [1, 2]), batch([5], [3])])
    np.testing.assert_array_equal(in_order.vectors[:, 0], np.repeat([1, 2, 5], [1, 2, 3]))
    single = batch([3, 4], [2, 2])
    assert concat([single]).vectors is single.vectors
