"""Input readers: every supported layout, and an error naming file and line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colmax.errors import InputError
from colmax.io import read_documents, read_queries, read_texts


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def error_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputError) as info:
        list(read_documents(path, **kwargs))  # type: ignore[arg-type]
    return str(info.value)


# --------------------------------------------------------------------------- layouts


def test_jsonl_documents_keep_title_metadata_and_extra_keys(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl",
        [
            {"id": "a", "text": "alpha", "title": "A", "metadata": {"lang": "en"}, "url": "u"},
            {"id": 7, "text": "beta"},
        ],
    )
    docs = list(read_documents(path))
    assert docs == [
        {"id": "a", "text": "alpha", "title": "A", "metadata": {"url": "u", "lang": "en"}},
        {"id": "7", "text": "beta", "title": None, "metadata": {}},
    ]


def test_beir_underscore_id_and_blank_lines_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"_id": "d1", "title": "", "text": "one"}\n\n{"_id": "d2", "text": "two"}'
    )
    assert [(d["id"], d["title"]) for d in read_documents(path)] == [("d1", None), ("d2", None)]


def test_beir_folder_reads_corpus_jsonl(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "1", "title": "T", "text": "body"}])
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "what"}])
    assert [d["id"] for d in read_documents(tmp_path)] == ["1"]
    assert list(read_queries(tmp_path)) == [{"id": "q1", "text": "what"}]


def test_text_folder_ids_are_relative_paths_and_titles_come_from_headings(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "setup.md").write_text("intro\n## Install colmax\nrun pip\n")
    (tmp_path / "notes.txt").write_text("# not a heading in a .txt\nplain notes\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.md").write_text("skipped")
    docs = list(read_documents(tmp_path))
    assert [(d["id"], d["title"]) for d in docs] == [
        ("guide/setup", "Install colmax"),
        ("notes", "notes"),
    ]
    assert docs[0]["metadata"] == {"path": "guide/setup.md"}
    assert docs[0]["text"].startswith("intro")


def test_single_text_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "readme.md"
    path.write_text("# Title\n\nBody text.\n")
    assert list(read_documents(path)) == [
        {"id": "readme", "text": "# Title\n\nBody text.", "title": "Title",
         "metadata": {"path": "readme.md"}},
    ]  # fmt: skip


def test_tsv_documents_and_queries(tmp_path: Path) -> None:
    docs = tmp_path / "collection.tsv"
    docs.write_text("0\tfirst passage\n1\tsecond passage\tA title\n")
    assert [(d["id"], d["text"], d["title"]) for d in read_documents(docs)] == [
        ("0", "first passage", None),
        ("1", "second passage", "A title"),
    ]
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\twhat is colbert\n")
    assert list(read_queries(queries)) == [{"id": "q1", "text": "what is colbert"}]


def test_queries_from_text_file_use_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "queries.txt"
    path.write_text("first question\n\nsecond question\n")
    assert list(read_queries(path)) == [
        {"id": "1", "text": "first question"},
        {"id": "3", "text": "second question"},
    ]


def test_queries_jsonl_accepts_query_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "query": "find me"}])
    assert list(read_queries(path)) == [{"id": "a", "text": "find me"}]


def test_read_texts_from_jsonl_and_lines(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "docs.jsonl", [{"text": "one"}, "two"])
    assert read_texts(jsonl) == ["one", "two"]
    lines = tmp_path / "docs.txt"
    lines.write_text("one\n\ntwo\n")
    assert read_texts(lines) == ["one", "two"]


def test_documents_stream_lazily(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "a", "text": "ok"}\nnot json\n')
    docs = read_documents(path)
    assert next(docs)["id"] == "a"  # the bad line is only read when reached
    with pytest.raises(InputError, match="line 2"):
        next(docs)


def test_skip_empty_leaves_out_empty_documents(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "docs.jsonl", [{"_id": "1", "text": ""}, {"_id": "2", "text": "kept"}]
    )
    assert [d["id"] for d in read_documents(path, skip_empty=True)] == ["2"]


# --------------------------------------------------------------------------- errors


def test_missing_path_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_documents(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no such file"):
        read_queries(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(content)
    assert error_of(path) == f"{path} is empty"


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (['{"id": "a", "text": "x"}', '{"id": "b", "text": '], 2, "bad JSON"),
        (['["a", "x"]'], 1, "expected a JSON object"),
        (['{"text": "x"}'], 1, "missing id"),
        (['{"id": "a", "text": "x"}', '{"id": "  ", "text": "x"}'], 2, "id is empty"),
        (['{"id": true, "text": "x"}'], 1, "id must be a string"),
        (['{"id": "a", "text": "x"}', "", '{"id": "a", "text": "y"}'], 3, "duplicate id 'a'"),
        (['{"id": "a"}'], 1, 'missing "text"'),
        (['{"id": "a", "text": "   "}'], 1, "empty text"),
        (['{"id": "a", "text": 3}'], 1, "must be a string"),
        (['{"id": "a", "text": "x", "metadata": [1]}'], 1, "'metadata' must be a JSON object"),
        (['{"id": "a", "text": "x", "title": 5}'], 1, "'title' must be a string"),
    ],
)
def test_bad_record_names_file_and_line(
    tmp_path: Path, lines: list[str], line: int, words: str
) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    message = error_of(path)
    assert message.startswith(f"{path}, line {line}: ")
    assert words in message


def test_duplicate_id_names_the_first_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    assert f"first seen at {path}, line 1" in error_of(path)


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    message = error_of(path)
    assert message.startswith(f"{path}, line 2: not valid UTF-8")


def test_bad_utf8_in_text_folder_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"line one\nline \xff two\n")
    assert error_of(tmp_path).startswith(f"{tmp_path / 'a.txt'}, line 2: not valid UTF-8")


def test_empty_text_file_in_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.md").write_text("  \n")
    message = error_of(tmp_path)
    assert message.startswith(str(tmp_path / "b.md")) and "empty text" in message


def test_same_id_from_txt_and_md_is_a_duplicate(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "a.md").write_text("two")
    assert "duplicate id 'a'" in error_of(tmp_path)


def test_folder_without_text_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b")
    assert "no corpus.jsonl" in error_of(tmp_path)


def test_tsv_with_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("1\tok\n2\n")
    assert error_of(path).startswith(f"{path}, line 2: expected id<TAB>text")


def test_duplicate_query_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "q.jsonl", [{"_id": "1", "text": "a"}, {"_id": "1", "text": "b"}])
    with pytest.raises(InputError, match=r"line 2: duplicate query id '1'"):
        list(read_queries(path))


def test_read_texts_rejects_empty_and_non_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a"}, 5])
    with pytest.raises(InputError, match="line 2"):
        read_texts(path)
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": ""}])
    with pytest.raises(InputError, match="line 1: empty text"):
        read_texts(path)
