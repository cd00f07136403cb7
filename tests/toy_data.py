"""A toy BEIR data set for the training tests: eight one-topic documents and a query for each."""

from __future__ import annotations

import json
from pathlib import Path

TOY_DOCS = [
    {
        "id": "d0",
        "title": "Volcanoes",
        "text": "Lava erupts from a volcano in bursts. Ash clouds follow the eruption for days.",
    },
    {
        "id": "d1",
        "title": "Cats",
        "text": "Cats purr and hunt mice at night. They sleep in warm barns all day.",
    },
    {
        "id": "d2",
        "title": "Bread",
        "text": "Bake bread with flour, water and yeast. Knead the dough for ten minutes.",
    },
    {
        "id": "d3",
        "title": "Tides",
        "text": "The moon's gravity pulls the ocean into tides. Two high tides come each day.",
    },
    {
        "id": "d4",
        "title": "Rust",
        "text": "Rust is a language focused on memory safety. Its compiler checks every borrow.",
    },
    {
        "id": "d5",
        "title": "Bees",
        "text": "Bees make honey from flower nectar in hives. A queen lays all of the eggs.",
    },
    {
        "id": "d6",
        "title": "Snow",
        "text": "Snow forms when water vapour freezes in clouds. Each flake has six arms.",
    },
    {
        "id": "d7",
        "title": "Chess",
        "text": "Chess players move kings, queens and pawns. A game ends in checkmate or a draw.",
    },
]
TOY_QUERIES = [
    ("q0", "lava from a volcano", "d0"),
    ("q1", "cats hunting mice", "d1"),
    ("q2", "baking bread with yeast", "d2"),
    ("q3", "moon gravity and tides", "d3"),
    ("q4", "memory safe language", "d4"),
    ("q5", "honey made by bees", "d5"),
    ("q6", "how snow forms", "d6"),
    ("q7", "chess pieces kings queens", "d7"),
]


def write_beir(folder: Path, *, extra_sentence: bool = False) -> Path:
    """The toy set as a BEIR folder; ``extra_sentence`` gives each document a third, longer
    sentence (the ``fragment`` source needs three)."""
    folder.mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for d in TOY_DOCS:
            text = d["text"]
            if extra_sentence:
                text += f" This short note about {d['title'].lower()} was written for tests."
            f.write(json.dumps({"_id": d["id"], "title": d["title"], "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for q, text, _ in TOY_QUERIES:
            f.write(json.dumps({"_id": q, "text": text}) + "\n")
    (folder / "qrels").mkdir()
    rows = "".join(f"{q}\t{d}\t1\n" for q, _, d in TOY_QUERIES)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder
