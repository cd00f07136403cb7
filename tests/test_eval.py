"""``colmax eval``: metrics against hand computation, the tokenizer, and every method end to
end through the CLI on a tiny BEIR folder written here (real MiniLM weights, a few seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bundled import DEFAULT_DIM
from typer.testing import CliRunner

from colmax.cli.main import app
from colmax.eval.fusion import fuse, rrf
from colmax.eval.metrics import evaluate
from colmax.eval.tokenize_text import tokenize

DOCS = [
    {
        "_id": "cats",
        "title": "Cats",
        "text": "Cats are small domesticated felines that purr and hunt mice.",
    },
    {
        "_id": "rust",
        "title": "",
        "text": "Rust is a systems programming language focused on memory safety.",
    },
    {
        "_id": "bread",
        "title": "Baking",
        "text": "To bake bread, mix flour, water, salt and yeast, then knead the dough.",
    },
    {
        "_id": "tides",
        "title": "",
        "text": "Ocean tides are caused by the gravity of the moon and the sun.",
    },
    {
        "_id": "volcano",
        "title": "",
        "text": "A volcano erupts when magma rises through the crust of the earth.",
    },
    {
        "_id": "q9",
        "title": "",
        "text": "Python is a programming language with garbage collected memory.",
    },
    {"_id": "empty", "title": "", "text": ""},
    {
        "_id": "berlin",
        "title": "",
        "text": "Berlin ist die Hauptstadt von Deutschland und hat viele Museen.",
    },
    {"_id": "beijing", "title": "", "text": "北京是中国的首都，有很多博物馆。"},
]
QUERIES = [
    {"_id": "q1", "text": "why do cats purr"},
    {"_id": "q2", "text": "programming language memory safety"},
    {"_id": "q3", "text": "what causes ocean tides"},
    {"_id": "q4", "text": "how to bake bread with yeast"},
    {"_id": "q5", "text": "Was ist die Hauptstadt von Deutschland?"},
    {"_id": "q6", "text": "中国的首都是哪里"},
    {"_id": "q7", "text": "a query nobody judged"},
    {"_id": "q9", "text": "garbage collection in python"},
]
QRELS = [
    ("q1", "cats", 2),
    ("q2", "rust", 2),
    ("q2", "q9", 1),
    ("q2", "cats", 0),
    ("q3", "tides", 1),
    ("q4", "bread", 3),
    ("q5", "berlin", 1),
    ("q6", "beijing", 1),
    ("q9", "q9", 1),
]
JUDGED = 7  # q7 has no qrels row


def write_beir(folder: Path, queries: list[dict]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in DOCS)
    (folder / "corpus.jsonl").write_text(lines, encoding="utf-8")
    lines = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    (folder / "queries.jsonl").write_text(lines, encoding="utf-8")
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "tiny", QUERIES)


def run_cli(*args: str | Path) -> dict:
    result = CliRunner().invoke(app, ["eval", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computation() -> None:
    qrels = {
        "a": {"d1": 2, "d2": 0, "d3": 1},  # graded, one judged non-relevant row
        "b": {"d1": 1, "d4": 1},
        "c": {"d9": 0},  # judged, nothing relevant: counts as 0
    }
    run = {"a": {"d2": 3.0, "d1": 2.0, "x": 1.0}, "b": {"d1": 0.9, "x": 0.8, "d4": 0.7}}
    got = evaluate(qrels, run)
    # a: DCG = 2/log2(3); ideal = 2/log2(2) + 1/log2(3). b: ideal = 1 + 1/log2(3).
    ndcg_a = (2 / math.log2(3)) / (2 + 1 / math.log2(3))
    ndcg_b = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((ndcg_a + ndcg_b) / 3)
    assert got["mrr@10"] == pytest.approx((1 / 2 + 1) / 3)
    assert got["recall@100"] == pytest.approx((1 / 2 + 1) / 3)
    assert got["map@100"] == pytest.approx(((1 / 2) / 2 + (1 + 2 / 3) / 2) / 3)


def test_missing_run_scores_zero() -> None:
    assert evaluate({"a": {"d": 1}}, {})["ndcg@10"] == 0.0


def test_fusion() -> None:
    fused = rrf([{"q": {"a": 3.0, "b": 2.0}}, {"q": {"b": 9.0, "c": 1.0}}])
    assert fused["q"]["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert max(fused["q"], key=fused["q"].get) == "b"
    weighted = fuse({"q": {"a": 3.0, "b": 1.0}}, {"q": {"b": 5.0, "c": 1.0}}, "weighted", 0.75)
    assert weighted["q"] == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.0})


# --------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("北京大学", ["北", "京", "大", "学", "北京", "京大", "大学"]),
        ("東京タワー", ["東", "京", "タ", "ワ", "ー", "東京", "京タ", "タワ", "ワー"]),
        ("ไทยง่าย", ["ไ", "ท", "ย", "ง่", "า", "ย", "ไท", "ทย", "ยง่", "ง่า", "าย"]),
        ("مرحبا بالعالم", ["مرحبا", "بالعالم"]),
        ("Привет, МИР!", ["привет", "мир"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("Ελληνικά Γράμματα", ["ελληνικά", "γράμματα"]),
        ("한국어 문장입니다", ["한국어", "문장입니다"]),
        ("Straße, COVID-19 ok", ["straße", "covid", "19", "ok"]),
        ("Tokyo 東京 2020", ["tokyo", "東", "京", "東京", "2020"]),
    ],
)
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


# --------------------------------------------------------------------------- CLI end to end


def test_bm25_end_to_end(beir: Path) -> None:
    row = run_cli(beir, "--method", "bm25")
    assert row["num_queries"] == JUDGED and row["skipped_queries"] == 1
    assert row["empty_docs"] == 1 and row["num_docs"] == len(DOCS) - 1
    for key in (
        "ndcg@10",
        "recall@100",
        "mrr@10",
        "map@100",
        "encode_s",
        "index_s",
        "search_s",
        "search_ms_per_query",
        "threads",
        "method",
        "model",
        "dataset",
    ):
        assert key in row
    assert row["method"] == "bm25" and row["dataset"] == "tiny" and row["split"] == "test"
    # q9's own id is a document id and relevant: no special case, it is found and counts
    assert row["mrr@10"] > 0.8 and row["recall@100"] == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["colmax", "colmax-exact", "biencoder", "maxsim-raw"])
def test_neural_methods(beir: Path, method: str) -> None:
    row = run_cli(beir, "--method", method, "-k", "5")
    assert row["num_queries"] == JUDGED
    assert 0.5 < row["ndcg@10"] <= 1.0, row


@pytest.mark.slow
def test_index_reuse_hybrid_and_two_stage(beir: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    first = run_cli(beir, "--index-dir", index)
    assert first["index_reused"] is False and first["encode_s"] > 0
    assert first["nbits"] == 2 and first["dim"] == DEFAULT_DIM and first["index_bytes"] > 0
    assert first["search_p50_ms"] > 0 and first["search_qps"] > 0 and first["bytes_per_token"] > 0
    exact = run_cli(beir, "--method", "colmax-exact", "--index-dir", index)
    assert exact["doc_vectors"] == "encoded" and exact["encode_s"] == first["encode_s"]
    # a corpus this small stays uncompressed in the index: the same ranking
    assert exact["ndcg@10"] == pytest.approx(first["ndcg@10"], abs=1e-4)
    small = run_cli(beir, "--method", "colmax", "--dim", "64", "--nbits", "4")
    assert (small["dim"], small["nbits"]) == (64, 4) and small["ndcg@10"] > 0.5
    from colmax.eval.methods import clear_cache

    clear_cache()  # as a new process would: the second run must read the folder
    again = run_cli(beir, "--index-dir", index)
    assert again["index_reused"] is True and again["encode_s"] == 0
    assert again["ndcg@10"] == pytest.approx(first["ndcg@10"], abs=1e-6)
    hybrid = run_cli(beir, "--method", "hybrid", "--index-dir", index)
    weighted = run_cli(beir, "--method", "hybrid", "--fusion", "weighted", "--index-dir", index)
    assert hybrid["fusion"] == "rrf" and weighted["fusion"] == "weighted"
    for method in ("bm25>colmax", "biencoder>colmax"):
        row = run_cli(beir, "--method", method, "--index-dir", index)
        assert row["first_stage"] == method.split(">")[0] and row["ndcg@10"] > 0.5
    plain = run_cli(beir, "--method", "bm25>colmax")  # no index: candidates encoded
    assert plain["ndcg@10"] == pytest.approx(
        run_cli(beir, "--method", "bm25>colmax", "--index-dir", index)["ndcg@10"], abs=1e-4
    )


@pytest.mark.slow
def test_queries_from_and_table(beir: Path, tmp_path: Path) -> None:
    german = [
        {"_id": "q1", "text": "Warum schnurren Katzen?"},
        {"_id": "q3", "text": "Was verursacht die Gezeiten?"},
    ]
    other = write_beir(tmp_path / "de", german)
    row = run_cli(beir, "--method", "bm25", "--queries-from", other)
    assert row["num_queries"] == 2 and row["dataset"] == "de->tiny"
    result = CliRunner().invoke(app, ["eval", str(beir), "--method", "bm25"])
    assert result.exit_code == 0 and "ndcg@10" in result.stdout


def test_errors(beir: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(app, ["eval", str(beir), "--method", "nope"])
    assert bad.exit_code == 1 and "unknown method" in bad.output
    missing = CliRunner().invoke(app, ["eval", str(beir), "--split", "dev"])
    assert missing.exit_code == 1 and "no qrels file" in missing.output
    assert CliRunner().invoke(app, ["eval", str(tmp_path)]).exit_code == 1


@pytest.mark.slow
def test_saved_runs_compare_through_the_cli(beir: Path, tmp_path: Path) -> None:
    bm25 = run_cli(beir, "--method", "bm25", "--save-run", tmp_path / "bm25.trec")
    neural = run_cli(beir, "--method", "colmax-exact", "--save-run", tmp_path / "exact.trec")
    assert neural["run_file"] == str(tmp_path / "exact.trec")
    runs = [str(tmp_path / "bm25.trec"), str(tmp_path / "exact.trec")]
    result = CliRunner().invoke(app, ["compare", str(beir), *runs, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["num_queries"] == JUDGED and report["stat_test"] == "fisher"
    first, second = report["rows"]
    assert (first["name"], second["name"]) == ("bm25", "exact")
    assert first["scores"]["ndcg@10"] == pytest.approx(bm25["ndcg@10"], abs=1e-4)
    assert second["scores"]["ndcg@10"] == pytest.approx(neural["ndcg@10"], abs=1e-4)
    assert 0 <= second["p_value"]["ndcg@10"] <= 1
    assert sum(second["wins_ties_losses"]["ndcg@10"]) == JUDGED
    table = CliRunner().invoke(app, ["compare", str(beir), *runs, "--metric", "mrr@10"])
    assert table.exit_code == 0 and "wins/ties/losses" in table.stdout and "mrr@10" in table.stdout
    other = CliRunner().invoke(app, ["compare", str(beir), runs[0], str(tmp_path / "nope.trec")])
    assert other.exit_code == 1 and "--save-run" in other.output
