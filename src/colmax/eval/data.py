"""A BEIR folder in memory: corpus, the judged queries of one split, and graded qrels.

Reads through :mod:`colmax.io.readers` (the same parsing as ``colmax index``). Queries without
any qrels row in the split are dropped, as BEIR does; rows with score <= 0 stay in ``qrels``
(judged non-relevant) and :mod:`colmax.eval.metrics` decides what they count for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from colmax.errors import InputError
from colmax.io import read_documents, read_queries


@dataclass
class EvalData:
    """Everything one evaluation run reads, with the documents' texts as the index sees them."""

    name: str
    corpus_dir: Path
    doc_ids: list[str]
    doc_texts: list[str]  # title + "\n" + text when there is a title (as Index.add encodes)
    docs: list[dict]  # the records as read, for Index.add
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    skipped_queries: int = 0
    empty_docs: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def doc_text(doc: dict) -> str:
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels: ``query-id<TAB>corpus-id<TAB>score`` with a header line."""
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.tsv"))
        hint = f"; splits here: {', '.join(found)}" if found else ""
        raise InputError(f"no qrels file {path}{hint}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\r\n").split("\t")
            if number == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
                continue
            if not line.strip():
                continue
            if len(parts) < 3:
                raise InputError(f"{path}:{number}: expected query-id, corpus-id, score")
            try:
                score = int(float(parts[2]))
            except ValueError:
                raise InputError(f"{path}:{number}: score {parts[2]!r} is not a number") from None
            qrels.setdefault(parts[0], {})[parts[1]] = score
    return qrels


def _name(folder: Path) -> str:
    return folder.expanduser().resolve().name


def load(
    data_dir: str | Path, split: str = "test", queries_from: str | Path | None = None
) -> EvalData:
    """Load a BEIR folder; ``queries_from`` takes the query texts from another folder."""
    root = Path(data_dir).expanduser()
    if not (root / "corpus.jsonl").is_file():
        raise InputError(f"{root} is not a BEIR folder (no corpus.jsonl)")
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    docs = list(read_documents(root, skip_empty=True))
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        total_docs = sum(1 for line in f if line.strip())
    queries = {q["id"]: q["text"] for q in read_queries(Path(queries_from or root))}
    judged = [qid for qid in queries if qid in qrels]
    if not judged:
        raise InputError(
            f"none of the queries in {Path(queries_from or root)} has a qrels row in "
            f"{root / 'qrels' / (split + '.tsv')}; check the split and the query ids"
        )
    name = _name(root) if queries_from is None else f"{_name(Path(queries_from))}->{_name(root)}"
    return EvalData(
        name=name,
        corpus_dir=root,
        doc_ids=[d["id"] for d in docs],
        doc_texts=[doc_text(d) for d in docs],
        docs=docs,
        query_ids=judged,
        query_texts=[queries[q] for q in judged],
        qrels={q: qrels[q] for q in judged},
        skipped_queries=len(queries) - len(judged),
        empty_docs=total_docs - len(docs),
    )
