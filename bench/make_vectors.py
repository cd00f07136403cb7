"""Encode a BEIR folder once with colmax's encoder and write plain token-vector files, so that
colmax and peer engines (bench/peers/) can be benchmarked on exactly the same vectors.

Run from the repository root with colmax's venv::

    .venv/bin/python bench/make_vectors.py                 # SciFact, PCA to 128 dims
    .venv/bin/python bench/make_vectors.py --dim 384       # the encoder's own 384 dims
    .venv/bin/python bench/make_vectors.py --limit-docs 500 --out bench/out/vectors/small

Steps (each cached; ``--force`` redoes them):

1. Encode every document (``colmax.eval.data.load``: title + "\\n" + text, empty documents
   skipped, as ``colmax index`` does) and the judged queries of ``--split`` with
   ``Encoder.load(--model)``. Documents are encoded in chunks written to
   ``<raw>/_parts/`` so an interrupted run resumes where it stopped. The full-dimension result
   is a vectors folder of its own (``bench/out/vectors/<dataset>-full``, or ``--raw-out``).
2. ``--dim`` below the model's: PCA fitted on ``--pca-sample`` random document token vectors
   (seed ``--seed``), by default *without* centering (the projection that best keeps the raw
   dot products, i.e. the top eigenvectors of E[x x^T]); ``--center`` subtracts the sample mean
   first (the mean is then subtracted from queries too). Every projected token is
   L2-normalised again. Queries use the same projection.

Output folder (default ``bench/out/vectors/<dataset>-pca<D>``; ``<dataset>-full`` without PCA;
``<dataset>-n<N>-...`` with ``--limit-docs N``):
``doc_vectors.npy`` float16 [total_tokens, D], ``doc_lens.npy`` int64 [n_docs],
``doc_ids.json``, ``query_vectors.npy``, ``query_lens.npy``, ``query_ids.json``,
``qrels.json`` ({qid: {docid: grade}}), ``meta.json``. Document i's tokens are rows
``offsets[i]:offsets[i+1]`` with ``offsets = concat([0], cumsum(doc_lens))``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "scifact"
FILES = (
    "doc_vectors.npy",
    "doc_lens.npy",
    "doc_ids.json",
    "query_vectors.npy",
    "query_lens.npy",
    "query_ids.json",
    "qrels.json",
    "meta.json",
)


def log(msg: str) -> None:
    print(f"[make_vectors {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FILES)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1 if path.name == "meta.json" else None))
    tmp.replace(path)


def save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def stack(vectors: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    lens = np.array([len(v) for v in vectors], dtype=np.int64)
    flat = np.concatenate(vectors, axis=0) if vectors else np.zeros((0, dim), np.float16)
    return flat.astype(np.float16, copy=False), lens


def link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


# ---------------------------------------------------------------------- step 1: encode


def encode_raw(args: argparse.Namespace, raw_dir: Path) -> None:
    """Full-dimension vectors of documents and queries into ``raw_dir`` (resumable)."""
    if complete(raw_dir) and not args.force:
        log(f"encoded vectors already in {raw_dir} (use --force to redo)")
        return
    if args.force and raw_dir.exists():
        shutil.rmtree(raw_dir)
    from colmax import Encoder
    from colmax.eval.data import load

    t0 = time.perf_counter()
    data = load(args.data, split=args.split)
    doc_ids, doc_texts = data.doc_ids, data.doc_texts
    if args.limit_docs:
        doc_ids, doc_texts = doc_ids[: args.limit_docs], doc_texts[: args.limit_docs]
    log(
        f"{data.name}: {len(doc_ids)} documents ({data.empty_docs} empty skipped), "
        f"{len(data.query_ids)} judged {args.split} queries"
    )
    encoder = Encoder.load(args.model, threads=args.threads)
    log(
        f"encoder {encoder.model_name} dim={encoder.dim} threads={encoder.threads} "
        f"bf16={encoder.use_bf16} document_length={encoder.config.document_length} "
        f"query_length={encoder.config.query_length}"
    )

    parts = raw_dir / "_parts"
    parts.mkdir(parents=True, exist_ok=True)
    chunk = args.chunk
    n_chunks = (len(doc_texts) + chunk - 1) // chunk
    enc_s = 0.0
    for c in range(n_chunks):
        part = parts / f"docs_{c:05d}.npz"
        if part.is_file():
            continue
        lo, hi = c * chunk, min((c + 1) * chunk, len(doc_texts))
        t = time.perf_counter()
        vecs = encoder.encode_documents(doc_texts[lo:hi], progress=args.progress)
        enc_s += time.perf_counter() - t
        flat, lens = stack(vecs, encoder.dim)
        tmp = parts / f"docs_{c:05d}.tmp.npz"
        np.savez(tmp, vectors=flat, lens=lens)
        tmp.replace(part)
        log(f"documents chunk {c + 1}/{n_chunks} ({hi} docs) {time.perf_counter() - t:.1f}s")

    flats, lens = [], []
    for c in range(n_chunks):
        with np.load(parts / f"docs_{c:05d}.npz") as z:
            flats.append(z["vectors"])
            lens.append(z["lens"])
    doc_flat = np.concatenate(flats)
    doc_lens = np.concatenate(lens)
    t = time.perf_counter()
    qvecs = encoder.encode_queries(data.query_texts, progress=args.progress)
    q_s = time.perf_counter() - t
    q_flat, q_lens = stack(qvecs, encoder.dim)

    raw_dir.mkdir(parents=True, exist_ok=True)
    save_npy(raw_dir / "doc_vectors.npy", doc_flat)
    save_npy(raw_dir / "doc_lens.npy", doc_lens)
    write_json(raw_dir / "doc_ids.json", list(doc_ids))
    save_npy(raw_dir / "query_vectors.npy", q_flat)
    save_npy(raw_dir / "query_lens.npy", q_lens)
    write_json(raw_dir / "query_ids.json", list(data.query_ids))
    write_json(raw_dir / "qrels.json", data.qrels)
    meta = {
        "dataset": data.name,
        "data_dir": str(Path(args.data).resolve()),
        "split": args.split,
        "model": encoder.describe(),
        "encoder": {
            "threads": encoder.threads,
            "bf16_autocast": encoder.use_bf16,
            "document_length": encoder.config.document_length,
            "query_length": encoder.config.query_length,
            "query_expansion": encoder.config.query_expansion,
            "doc_text": "title + '\\n' + text (colmax.eval.data.doc_text); punctuation vectors "
            "dropped; queries keep every position"
            + (" incl. [MASK] expansion" if encoder.config.query_expansion else " (no expansion)"),
        },
        "dim": int(encoder.dim),
        "pca": None,
        "n_docs": len(doc_lens),
        "n_doc_tokens": int(doc_lens.sum()),
        "doc_tokens_mean": float(doc_lens.mean()) if len(doc_lens) else 0.0,
        "doc_tokens_max": int(doc_lens.max()) if len(doc_lens) else 0,
        "n_queries": len(q_lens),
        "n_query_tokens": int(q_lens.sum()),
        "limit_docs": args.limit_docs,
        "encode_docs_s_this_run": round(enc_s, 1),
        "encode_queries_s": round(q_s, 2),
        "total_s_this_run": round(time.perf_counter() - t0, 1),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "layout": "doc i = doc_vectors[offsets[i]:offsets[i+1]], offsets = [0]+cumsum(doc_lens)",
    }
    write_json(raw_dir / "meta.json", meta)  # last: marks the folder complete
    shutil.rmtree(parts, ignore_errors=True)
    log(
        f"wrote {raw_dir}: {meta['n_docs']} docs, {meta['n_doc_tokens']} doc tokens, "
        f"{meta['n_queries']} queries"
    )


# ---------------------------------------------------------------------- step 2: PCA


def pca(args: argparse.Namespace, raw_dir: Path, out: Path) -> None:
    if complete(out) and not args.force:
        log(f"{out} already complete (use --force to redo)")
        return
    meta = json.loads((raw_dir / "meta.json").read_text())
    docs = np.load(raw_dir / "doc_vectors.npy", mmap_mode="r")
    queries = np.load(raw_dir / "query_vectors.npy")
    rng = np.random.default_rng(args.seed)
    n = len(docs)
    take = min(args.pca_sample, n)
    idx = np.sort(rng.choice(n, size=take, replace=False))
    sample = np.asarray(docs[idx], dtype=np.float64)
    mean = sample.mean(axis=0) if args.center else np.zeros(sample.shape[1])
    x = sample - mean
    cov = x.T @ x / len(x)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    w = evecs[:, : args.dim].astype(np.float32)  # [D_in, dim]
    kept = float(evals[: args.dim].sum() / evals.sum())
    log(
        f"PCA {meta['dim']}->{args.dim} on {take} sampled tokens, center={args.center}: "
        f"keeps {kept:.4f} of the {'variance' if args.center else 'second moment'}"
    )

    def project(v: np.ndarray, what: str) -> np.ndarray:
        out_arr = np.empty((len(v), args.dim), dtype=np.float16)
        step = 200_000
        for lo in range(0, len(v), step):
            block = np.asarray(v[lo : lo + step], dtype=np.float32) - mean.astype(np.float32)
            p = block @ w
            p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
            out_arr[lo : lo + step] = p.astype(np.float16)
            if args.progress:
                log(f"  projected {what} {min(lo + step, len(v))}/{len(v)}")
        return out_arr

    out.mkdir(parents=True, exist_ok=True)
    if (out / "meta.json").exists():
        (out / "meta.json").unlink()
    save_npy(out / "doc_vectors.npy", project(docs, "document tokens"))
    save_npy(out / "query_vectors.npy", project(queries, "query tokens"))
    for name in ("doc_lens.npy", "query_lens.npy", "doc_ids.json", "query_ids.json", "qrels.json"):
        link_or_copy(raw_dir / name, out / name)
    np.save(out / "pca_components.npy", w.T.astype(np.float32))  # [dim, D_in]
    np.save(out / "pca_mean.npy", mean.astype(np.float32))
    meta = dict(meta)
    meta["dim"] = args.dim
    meta["pca"] = {
        "from_dim": int(sample.shape[1]),
        "to_dim": args.dim,
        "source": str(raw_dir),
        "sample_tokens": int(take),
        "seed": args.seed,
        "centered": bool(args.center),
        "method": "eigendecomposition of the sample's "
        + ("covariance (mean subtracted)" if args.center else "uncentered second moment x^T x/n")
        + " in float64; y = (x - mean) @ components.T (mean = 0 when uncentered); then each "
        "token L2-normalised; float16 output",
        "energy_kept": round(kept, 6),
        "files": [
            "pca_components.npy [to_dim, from_dim] float32",
            "pca_mean.npy (zeros if uncentered)",
        ],
    }
    meta["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(out / "meta.json", meta)
    log(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR folder (SciFact)")
    p.add_argument("--split", default="test", help="qrels split whose judged queries to encode")
    p.add_argument(
        "--model",
        default="colmax-minilm-v1",
        help="colmax model name/path (default colmax-minilm-v1: untrained MiniLM token vectors, "
        "the vectors the search benchmark's targets were set on)",
    )
    p.add_argument(
        "--dim",
        type=int,
        default=128,
        help="output dims; below the model's dim -> PCA (default 128)",
    )
    p.add_argument(
        "--center",
        action="store_true",
        help="subtract the sample mean before PCA (default: uncentered)",
    )
    p.add_argument(
        "--pca-sample", type=int, default=200_000, help="document tokens sampled to fit the PCA"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-docs", type=int, default=0, help="only the first N documents")
    p.add_argument("--threads", type=int, default=None, help="torch threads for encoding")
    p.add_argument("--chunk", type=int, default=512, help="documents per cached chunk")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument(
        "--raw-out",
        type=Path,
        default=None,
        help="where the full-dimension encoding is cached (default <dataset>-full)",
    )
    p.add_argument("--force", action="store_true", help="redo cached steps")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)

    base_name = Path(args.data).resolve().name + (f"-n{args.limit_docs}" if args.limit_docs else "")
    vec_root = REPO_ROOT / "bench" / "out" / "vectors"
    raw_dir = args.raw_out or vec_root / f"{base_name}-full"
    t0 = time.perf_counter()
    encode_raw(args, raw_dir)
    model_dim = json.loads((raw_dir / "meta.json").read_text())["dim"]
    if args.dim > model_dim:
        sys.exit(f"--dim {args.dim} is above the model's {model_dim} dims")
    if args.dim == model_dim:
        out = args.out or raw_dir
        if out.resolve() != raw_dir.resolve():
            out.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                link_or_copy(raw_dir / name, out / name)
        log(f"vectors ({model_dim} dims, no PCA) in {out}")
    else:
        out = args.out or vec_root / f"{base_name}-pca{args.dim}{'c' if args.center else ''}"
        pca(args, raw_dir, out)
    log(f"done in {time.perf_counter() - t0:.1f}s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
