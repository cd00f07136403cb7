"""The ``colmax`` command line, with the real default model and real files.

A few runs go through the console script in a subprocess (what a user types); the rest use
typer's in-process runner, where the model loads faster after the first time. Bad input fails
before the model loads, so the error tests are quick.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundled import DEFAULT_DIM, DEFAULT_MODEL
from typer.testing import CliRunner

from colmax.cli.main import app

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "cats", "title": "Cats", "text": "Cats are small domesticated felines that purr."},
    {"id": "rust", "text": "Rust is a systems programming language focused on memory safety."},
    {"id": "bread", "text": "To bake bread, mix flour, water, salt and yeast, then knead."},
    {"id": "tides", "text": "Ocean tides are caused by the gravity of the moon and the sun.",
     "metadata": {"topic": "science"}},
]  # fmt: skip


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def colmax(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "colmax.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def invoke(*args: str | Path):  # -> click.testing.Result
    """Run the CLI in this process."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of DOCS built by the real console script."""
    root = tmp_path_factory.mktemp("cli")
    docs = write_jsonl(root / "docs.jsonl", DOCS)
    result = colmax("index", docs, "--index", root / "idx")
    assert result.returncode == 0, result.stderr
    assert "indexed 4 documents" in result.stdout
    assert "holds 4 documents" in result.stdout
    return root / "idx"


@pytest.fixture
def index_copy(built: Path, tmp_path: Path) -> Path:
    """A copy of the built index that a test may change."""
    return Path(shutil.copytree(built, tmp_path / "idx"))


# --------------------------------------------------------------------------- subprocess runs


def test_search_prints_a_table(built: Path) -> None:
    result = colmax("search", "why does the sea rise and fall", "--index", built, "-k", "2")
    assert result.returncode == 0, result.stderr
    assert "tides" in result.stdout
    assert "score" in result.stdout


def test_search_json_is_exactly_one_object(built: Path) -> None:
    result = colmax("search", "a language without memory bugs", "--index", built, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # fails if anything else is on stdout
    assert data["query"] == "a language without memory bugs"
    assert len(data["hits"]) == 4
    top = data["hits"][0]
    assert top["id"] == "rust"
    assert {"id", "score", "text", "metadata"} <= top.keys()
    assert [h["score"] for h in data["hits"]] == sorted((h["score"] for h in data["hits"]),
                                                        reverse=True)  # fmt: skip
    tides = next(h for h in data["hits"] if h["id"] == "tides")
    assert tides["metadata"] == {"topic": "science"}


def test_bad_json_line_fails_in_a_subprocess_without_traceback(tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": oops}\n')
    result = colmax("index", docs, "--index", tmp_path / "idx")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert f"{docs}, line 2: bad JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "idx").exists()  # nothing was created


def test_search_of_a_missing_index_fails(tmp_path: Path) -> None:
    result = colmax("search", "anything", "--index", tmp_path / "nowhere")
    assert result.returncode == 1
    assert "error: there is no index at" in result.stderr
    assert str(tmp_path / "nowhere") in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- in process


def test_reindex_adds_and_refuses_existing_ids_unless_replace(index_copy: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "tea", "text": "Green tea is brewed."}])
    result = invoke("index", more, "--index", index_copy)
    assert result.exit_code == 0, result.stderr
    assert "indexed 1 document," in result.stdout and "holds 5 documents" in result.stdout

    again = invoke("index", more, "--index", index_copy)
    assert again.exit_code == 1
    assert "already in the index" in again.stderr and "'tea'" in again.stderr

    replaced = invoke("index", more, "--index", index_copy, "--replace")
    assert replaced.exit_code == 0, replaced.stderr
    assert "1 replaced" in replaced.stdout and "holds 5 documents" in replaced.stdout


def test_get_and_delete(index_copy: Path) -> None:
    got = invoke("get", "tides", "--index", index_copy, "--json")
    assert got.exit_code == 0, got.stderr
    assert json.loads(got.stdout)["metadata"] == {"topic": "science"}

    deleted = invoke("delete", "tides", "cats", "--index", index_copy)
    assert deleted.exit_code == 0, deleted.stderr
    assert "deleted 2 documents" in deleted.stdout and "holds 2 documents" in deleted.stdout

    gone = invoke("get", "tides", "--index", index_copy)
    assert gone.exit_code == 1 and "no document with id 'tides'" in gone.stderr
    unknown = invoke("delete", "nope", "--index", index_copy)
    assert unknown.exit_code == 1 and "'nope'" in unknown.stderr


BAD_INPUTS = [
    # (file name, bytes, words the message must hold)
    ("empty.jsonl", b"", "is empty"),
    ("badjson.jsonl", b'{"id": "a", "text": "x"}\n{"id": "b", "text": }\n', "line 2: bad JSON"),
    ("dup.jsonl", b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
     "line 3: duplicate id 'a'"),
    ("noid.jsonl", b'{"id": "a", "text": "x"}\n{"text": "y"}\n', "line 2: missing id"),
    ("emptytext.jsonl", b'{"id": "a", "text": "  "}\n', "line 1: document 'a' has empty text"),
    ("utf8.jsonl", b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n',
     "line 2: not valid UTF-8"),
    ("array.jsonl", b'[1, 2]\n', "line 1: expected a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "words"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_file_and_line(tmp_path: Path, name: str, content: bytes,
                                       words: str) -> None:  # fmt: skip
    path = tmp_path / name
    path.write_bytes(content)
    result = invoke("index", path, "--index", tmp_path / "idx")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert str(path) in result.stderr and words in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "idx").exists()


def test_missing_input_file(tmp_path: Path) -> None:
    result = invoke("index", tmp_path / "nope.jsonl", "--index", tmp_path / "idx")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.jsonl'}: no such file" in result.stderr


def test_skip_empty_indexes_the_rest(tmp_path: Path) -> None:
    docs = write_jsonl(tmp_path / "d.jsonl", [{"_id": "1", "text": ""}, {"_id": "2", "text": "x"}])
    result = invoke("index", docs, "--index", tmp_path / "idx", "--skip-empty")
    assert result.exit_code == 0, result.stderr
    assert "holds 1 document" in result.stdout


def test_corrupt_manifest_is_an_error_not_a_traceback(index_copy: Path) -> None:
    (index_copy / "manifest.json").write_text("{ this is not json")
    result = invoke("search", "cats", "--index", index_copy)
    assert result.exit_code == 1
    assert "manifest.json" in result.stderr and "Traceback" not in result.stderr
    info = invoke("info", "--index", index_copy)
    assert info.exit_code == 1 and "manifest.json" in info.stderr


def test_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "stuff.txt").write_text("not an index")
    result = invoke("search", "x", "--index", tmp_path)
    assert result.exit_code == 1 and "is not a colmax index" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert invoke("search", "x").exit_code == 2  # --index is required
    assert invoke("search", "x", "--index", tmp_path, "-k", "0").exit_code == 2


def test_heldout_needs_two_models_and_a_known_level() -> None:
    one = invoke("heldout", "colmax-minilm-v1")
    assert one.exit_code == 1 and "at least two models" in one.stderr
    level = invoke("heldout", "colmax-minilm-v1", "colmax-minilm-v1", "--level", "document")
    assert level.exit_code == 1
    assert "use one of sentence, paragraph, section, docstring" in level.stderr


def test_rerank_json(tmp_path: Path) -> None:
    docs = tmp_path / "cands.txt"
    docs.write_text("\n".join(d["text"] for d in DOCS) + "\n")
    result = invoke("rerank", "how is bread made", docs, "--top-n", "2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hits"][0]["index"] == 2
    assert len(data["hits"]) == 2 and data["hits"][0]["text"] == DOCS[2]["text"]


def test_encode_documents_and_queries(tmp_path: Path) -> None:
    docs = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    out = tmp_path / "vecs" / "docs.npz"
    result = invoke("encode", docs, "--output", out, "--dim", "64")
    assert result.exit_code == 0, result.stderr
    with np.load(out) as npz:
        assert npz["ids"].tolist() == [d["id"] for d in DOCS]
        offsets, vectors = npz["offsets"], npz["vectors"]
        assert offsets.shape == (len(DOCS) + 1,) and offsets[0] == 0
        assert vectors.shape == (offsets[-1], 64) and vectors.dtype == np.float16
        assert np.all(np.diff(offsets) > 0)
        assert str(npz["kind"]) == "documents"

    queries = tmp_path / "queries.txt"
    queries.write_text("first question\nsecond question\n")
    qout = tmp_path / "q.npz"
    result = invoke("encode", queries, "--output", qout, "--queries")
    assert result.exit_code == 0, result.stderr
    with np.load(qout) as npz:
        assert npz["ids"].tolist() == ["1", "2"]
        # the default model does not pad queries: [CLS] [Q] first question [SEP]
        assert np.diff(npz["offsets"]).tolist() == [5, 5]
        assert npz["vectors"].shape[1] == DEFAULT_DIM

    bad = invoke("encode", queries, "--output", tmp_path / "q.txt")
    assert bad.exit_code == 1 and "must end in .npz" in bad.stderr


def test_info_with_and_without_an_index(built: Path) -> None:
    install = invoke("info", "--json")
    assert install.exit_code == 0, install.stderr
    data = json.loads(install.stdout)
    assert DEFAULT_MODEL in data["bundled_models"] and isinstance(data["bf16"], bool)

    index = invoke("info", "--index", built, "--json")
    assert index.exit_code == 0, index.stderr
    info = json.loads(index.stdout)
    assert info["documents"] == 4 and info["dim"] == DEFAULT_DIM

    table = invoke("info", "--index", built)
    assert table.exit_code == 0 and "documents" in table.stdout


def test_version_and_help() -> None:
    from colmax import __version__

    assert invoke("--version").stdout.strip() == f"colmax {__version__}"
    assert "search" in invoke("--help").stdout


# --------------------------------------------------------------------------- demo


def test_stdlib_corpus_is_deterministic_and_clean() -> None:
    from colmax.demo import MIN_CHARS, stdlib_corpus

    docs = stdlib_corpus()
    assert 1000 < len(docs) <= 3000
    assert docs == stdlib_corpus()
    ids = [d["id"] for d in docs]
    assert len(set(ids)) == len(ids)
    assert {"json.loads", "hashlib.sha256", "subprocess.run", "heapq.nlargest"} <= set(ids)
    assert all(len(d["text"]) >= MIN_CHARS for d in docs)
    assert not any(i.startswith("typing.Text.") for i in ids)  # typing.Text is str
    small = stdlib_corpus(limit=200)
    assert len(small) == 200
    assert len({d["metadata"]["module"] for d in small}) > 50  # round-robin over modules


def test_demo_command_answers_the_demo_questions(tmp_path: Path) -> None:
    from colmax.demo import DEMO_QUERIES

    result = invoke("demo", "--index", tmp_path / "demo", "--limit", "40")
    assert result.exit_code == 0, result.stderr
    assert "indexed 40 docstrings" in result.stdout
    for query in DEMO_QUERIES:
        assert query in result.stdout


def test_compact_optimize_and_search_options(index_copy: Path) -> None:
    assert invoke("delete", "cats", "--index", index_copy).exit_code == 0
    compacted = invoke("compact", "--index", index_copy)
    assert compacted.exit_code == 0, compacted.output
    assert "dropped 1 deleted document" in compacted.output
    info = json.loads(invoke("info", "--index", index_copy, "--json").stdout)
    assert info["deleted"] == 0 and info["parts"] == 1
    optimized = invoke("optimize", "--index", index_copy)
    assert optimized.exit_code == 0 and "optimized in" in optimized.output, optimized.output
    result = invoke(
        "search", "tides", "--index", index_copy, "--nprobe", "4", "--rescore", "--json"
    )
    assert result.exit_code == 0 and json.loads(result.stdout)["hits"][0]["id"] == "tides"
    assert invoke("search", "x", "--index", index_copy, "--nprobe", "0").exit_code == 2
    missing = invoke("compact", "--index", index_copy.parent / "nope")
    assert missing.exit_code == 1 and "no index" in missing.output
