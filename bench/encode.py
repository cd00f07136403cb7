"""Encoder throughput and latency: colmax's ``Encoder`` against a plain transformers forward.

Run from the repository root::

    .venv/bin/python bench/encode.py --docs 160 --queries 200 --threads 1,2

What is measured, at each ``--threads`` value (``torch.set_num_threads``; ONNX Runtime gets
the same number of intra-op threads):

* **Documents.** The first ``--docs`` documents of BEIR SciFact (title + " " + text), tokenized
  the colmax way (``[CLS] [D] … [SEP]``, cut at ``encoder.config.document_length``), encoded end
  to end (tokenization included) into float16 token vectors with punctuation vectors dropped.
  Reported: documents/s and real (non-padding) tokens/s, best of ``--repeats`` runs after a
  warm-up, and the speed-up over the baseline at the same thread count.
* **baseline.** What a plain user writes: ``transformers.AutoModel`` loaded from the same
  backbone folder, fp32, ``torch.no_grad()``, batches of 32 in input order padded to each
  batch's longest text, then the same linear projection + L2 normalisation. Same token ids.
* **colmax variants.** ``Encoder`` with precision fp32 and bf16 (autocast), batch sizes 8-64,
  the backbone's weights cast to bfloat16 once instead of autocast (``bf16w``: not an
  ``Encoder`` option, built here to see whether it should be one), ``torch.no_grad``
  instead of the encoder's ``inference_mode``, int8 dynamic quantisation of
  the backbone's Linear layers (``torch.ao.quantization.quantize_dynamic``), and the backbone
  exported to ONNX and run by ONNX Runtime in fp32 and int8 (skipped when ``onnxruntime`` /
  ``onnx`` are not installed). Every variant goes through ``Encoder`` itself (length-sorted
  batches, same post-processing), so only the backbone's execution differs.
* **Quality** of each variant against colmax fp32 (batch 32): the cosine between corresponding
  token vectors (documents and queries; mean and minimum) and the largest absolute difference
  of MaxSim scores over a grid of ``--maxsim-queries`` x ``--maxsim-docs`` pairs.
* **Query latency.** ``encode_queries([q])`` one query at a time for ``--latency-queries``
  queries after warm-up: p50 / p95 in milliseconds. Also batched queries/s.

Results go to ``docs/bench/encode.json`` and ``docs/bench/encode.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    REPO_ROOT,
    BenchTexts,
    CpuMonitor,
    load_average,
    load_texts,
    machine_info,
    usable_cores,
    wait_for_quiet,
)
from torch import nn

from colmax.encoder import tokenize as tok
from colmax.encoder.checkpoints import base_encoder_dir
from colmax.encoder.encoder import Encoder
from colmax.encoder.model import ColbertModel

EQUAL_QUALITY = 0.999  # mean token cosine to fp32 that counts as "same vectors"
# A timing is "contended" when other processes used more CPU than the cores it left free plus
# this share of the machine. At 1 thread on 2 cores a busy neighbour on the other core is
# tolerated; measured here it slows fp32 by 0-5% and bf16 by 3-8% (shared caches, memory).
CONTENDED = 0.1

EncodeFn = Callable[[list[str]], list[np.ndarray]]


# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Spec:
    """One way of encoding, built per thread count by :func:`build_runner`."""

    name: str
    description: str
    kind: str  # baseline | colmax | bf16-weights | int8 | int8-pc | onnx | onnx-int8
    precision: str = "fp32"
    batch_size: int = 32
    grad_mode: str = "inference_mode"  # or "no_grad"
    latency: bool = False  # also measure single-query latency


SPECS: tuple[Spec, ...] = (
    Spec("baseline", "transformers AutoModel fp32, no_grad, input order, batch 32", "baseline",
         latency=True),
    Spec("colmax-fp32-b32", "Encoder precision=fp32, batch 32 (quality reference)", "colmax",
         latency=True),
    Spec("colmax-fp32-b8", "Encoder precision=fp32, batch 8", "colmax", batch_size=8),
    Spec("colmax-fp32-b16", "Encoder precision=fp32, batch 16", "colmax", batch_size=16),
    Spec("colmax-fp32-b64", "Encoder precision=fp32, batch 64", "colmax", batch_size=64),
    Spec("colmax-fp32-b32-no_grad", "Encoder fp32, torch.no_grad instead of inference_mode",
         "colmax", grad_mode="no_grad"),
    Spec("colmax-bf16-b32", "Encoder precision=bf16 (autocast), batch 32", "colmax",
         precision="bf16", latency=True),
    Spec("colmax-bf16-b8", "Encoder precision=bf16, batch 8", "colmax", precision="bf16",
         batch_size=8),
    Spec("colmax-bf16-b16", "Encoder precision=bf16, batch 16", "colmax", precision="bf16",
         batch_size=16),
    Spec("colmax-bf16-b64", "Encoder precision=bf16, batch 64", "colmax", precision="bf16",
         batch_size=64),
    Spec("colmax-bf16-b32-no_grad", "Encoder bf16, torch.no_grad instead of inference_mode",
         "colmax", precision="bf16", grad_mode="no_grad"),
    Spec("colmax-bf16w-b8", "backbone weights cast to bf16 once (no autocast), batch 8",
         "bf16-weights", batch_size=8),
    Spec("colmax-bf16w-b16", "backbone weights cast to bf16 once (no autocast), batch 16; "
         "built here, not an Encoder option", "bf16-weights", batch_size=16, latency=True),
    Spec("colmax-bf16w-b32", "backbone weights cast to bf16 once (no autocast), batch 32",
         "bf16-weights"),
    Spec("torch-int8-b32", "Encoder fp32 + quantize_dynamic(qint8, per-tensor, the default) "
         "on the backbone's Linear layers", "int8"),
    Spec("torch-int8pc-b32", "as torch-int8 with per-channel weight scales", "int8-pc",
         latency=True),
    Spec("onnx-fp32-b32", "Encoder with the backbone run by ONNX Runtime, fp32", "onnx",
         latency=True),
    Spec("onnx-int8-b32", "ONNX Runtime, weights quantize_dynamic(QInt8, per channel)",
         "onnx-int8", latency=True),
)  # fmt: skip


@dataclass
class Runner:
    """A variant ready to run at one thread count."""

    docs: EncodeFn
    queries: EncodeFn


class NoGradEncoder(Encoder):
    """``Encoder`` with ``torch.no_grad`` where colmax uses ``torch.inference_mode``."""

    grad_mode = torch.no_grad


class OrtBackbone(nn.Module):
    """A backbone stand-in that runs an ONNX Runtime session (returns a 1-tuple like HF)."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return (torch.from_numpy(self.session.run(None, feed)[0]),)


class _HiddenStates(nn.Module):
    """Export wrapper: (ids, mask) -> last hidden state."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]


@dataclass
class Models:
    """Everything the variants share, loaded or built once."""

    base: Encoder  # colmax fp32, the quality reference
    workdir: Path
    _hf: nn.Module | None = None
    _int8: dict[bool, ColbertModel] = field(default_factory=dict)
    _bf16: ColbertModel | None = None
    _onnx: dict[str, Path] = field(default_factory=dict)

    def encoder(self, spec: Spec, threads: int, model: ColbertModel | None = None) -> Encoder:
        cls = NoGradEncoder if spec.grad_mode == "no_grad" else Encoder
        return cls(
            model or self.base.model,
            self.base.tokenizer,
            self.base.config,
            self.base.identity,
            threads=threads,
            precision=spec.precision,
            batch_size=spec.batch_size,
        )

    def hf_model(self) -> nn.Module:
        if self._hf is None:
            from transformers import AutoModel

            self._hf = AutoModel.from_pretrained(str(base_encoder_dir())).float().eval()
        return self._hf

    def bf16_model(self) -> ColbertModel:
        """The backbone with bfloat16 weights (cast once); the projection stays fp32."""
        if self._bf16 is None:
            backbone = copy.deepcopy(self.base.model.backbone).to(torch.bfloat16)
            self._bf16 = self._with_backbone(backbone)
        return self._bf16

    def int8_model(self, per_channel: bool) -> ColbertModel:
        if per_channel not in self._int8:
            from torch.ao.quantization import (
                default_dynamic_qconfig,
                per_channel_dynamic_qconfig,
                quantize_dynamic,
            )

            qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated
                backbone = quantize_dynamic(
                    copy.deepcopy(self.base.model.backbone), {nn.Linear: qconfig}, dtype=torch.qint8
                )
            self._int8[per_channel] = self._with_backbone(backbone)
        return self._int8[per_channel]

    def onnx_file(self, quantized: bool) -> Path:
        key = "int8" if quantized else "fp32"
        if key not in self._onnx:
            self._onnx.update(export_onnx(self.base.model.backbone, self.workdir))
        return self._onnx[key]

    def _with_backbone(self, backbone: nn.Module) -> ColbertModel:
        proj = self.base.model.projection
        bias = None if proj.bias is None else proj.bias.detach()
        return ColbertModel(backbone, proj.weight.detach(), bias).eval()


def export_onnx(backbone: nn.Module, workdir: Path) -> dict[str, Path]:
    """Export the backbone (a copy: the TorchScript exporter alters the module it traces),
    fuse what ORT's BERT optimizer can, and quantize the weights to int8."""
    import onnxruntime  # noqa: F401 - fail early when ORT is missing
    from onnxruntime.quantization import QuantType, quantize_dynamic

    plain = workdir / "backbone.onnx"
    ids = torch.randint(1000, 2000, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    dynamic = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "seq"},
        "hidden": {0: "batch", 1: "seq"},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _HiddenStates(copy.deepcopy(backbone)).eval(),
            (ids, mask),
            str(plain),
            input_names=["input_ids", "attention_mask"],
            output_names=["hidden"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    fp32 = plain
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        hidden = int(backbone.config.hidden_size)
        heads = int(backbone.config.num_attention_heads)
        optimized = optimize_model(
            str(plain), model_type="bert", num_heads=heads, hidden_size=hidden
        )
        fp32 = workdir / "backbone.opt.onnx"
        optimized.save_model_to_file(str(fp32))
    except Exception as exc:  # the optimizer is a convenience; the plain graph still runs
        print(f"  ORT transformer optimizer failed ({exc}); using the plain export")
    int8 = workdir / "backbone.int8.onnx"
    # DefaultTensorType 1 (FLOAT): shape inference cannot type the fused ops' outputs
    quantize_dynamic(
        str(fp32),
        str(int8),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},
    )
    return {"fp32": fp32, "int8": int8}


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_runner(spec: Spec, models: Models, threads: int) -> Runner:
    if spec.kind == "baseline":
        return baseline_runner(models, threads, spec.batch_size)
    if spec.kind == "colmax":
        encoder = models.encoder(spec, threads)
    elif spec.kind == "bf16-weights":
        encoder = models.encoder(spec, threads, models.bf16_model())
    elif spec.kind in ("int8", "int8-pc"):
        encoder = models.encoder(spec, threads, models.int8_model(spec.kind == "int8-pc"))
    elif spec.kind in ("onnx", "onnx-int8"):
        session = ort_session(models.onnx_file(spec.kind == "onnx-int8"), threads)
        encoder = models.encoder(spec, threads, models._with_backbone(OrtBackbone(session)))
    else:
        raise ValueError(f"unknown variant kind {spec.kind!r}")
    return Runner(docs=encoder.encode_documents, queries=encoder.encode_queries)


# --------------------------------------------------------------------------- the baseline


def baseline_runner(models: Models, threads: int, batch_size: int) -> Runner:
    """A plain forward: HF AutoModel, fp32, no_grad, input order, padded to the batch max."""
    hf = models.hf_model()
    projection = models.base.model.projection
    tokenizer, config = models.base.tokenizer, models.base.config
    ids = tok.special_ids(tokenizer, config)

    def run(batch: tok.TokenizedBatch, keep_skiplist: bool) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                for start in range(0, len(batch.input_ids), batch_size):
                    seqs = batch.input_ids[start : start + batch_size]
                    input_ids, mask = pad(seqs, batch.attend[start : start + batch_size], ids.pad)
                    hidden = hf(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    vectors = F.normalize(projection(hidden), p=2, dim=-1).numpy()
                    for row, seq in enumerate(seqs):
                        vec = vectors[row, : len(seq)]
                        if not keep_skiplist:
                            vec = vec[tok.keep_mask(seq, ids)]
                        out.append(vec.astype(np.float16))
        finally:
            torch.set_num_threads(previous)
        return out

    def docs(texts: list[str]) -> list[np.ndarray]:
        return run(tok.tokenize_documents(tokenizer, texts, config, ids), keep_skiplist=False)

    def queries(texts: list[str]) -> list[np.ndarray]:
        return run(tok.tokenize_queries(tokenizer, texts, config, ids), keep_skiplist=True)

    return Runner(docs=docs, queries=queries)


def pad(
    seqs: list[list[int]], attend: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for row, (s, a) in enumerate(zip(seqs, attend, strict=True)):
        input_ids[row, : len(s)] = torch.tensor(s)
        mask[row, : len(a)] = torch.tensor(a)
    return input_ids, mask


# --------------------------------------------------------------------------- measurements


def time_documents(
    runner: Runner, docs: list[str], repeats: int
) -> tuple[list[float], list[float | None], list[np.ndarray]]:
    """Wall times of ``repeats`` full runs, other processes' CPU share during each, and the
    vectors of the first run."""
    times: list[float] = []
    others: list[float | None] = []
    first: list[np.ndarray] = []
    for i in range(repeats):
        with CpuMonitor() as monitor:
            start = time.perf_counter()
            out = runner.docs(docs)
            times.append(time.perf_counter() - start)
        others.append(monitor.others)
        if i == 0:
            first = out
    return times, others, first


def query_latency(runner: Runner, queries: list[str], n: int, warmup: int = 10) -> dict[str, Any]:
    """Milliseconds per ``queries([q])`` call, one query at a time."""
    for q in queries[:warmup]:
        runner.queries([q])
    times = []
    with CpuMonitor() as monitor:
        for i in range(n):
            q = queries[i % len(queries)]
            start = time.perf_counter()
            runner.queries([q])
            times.append((time.perf_counter() - start) * 1000)
    arr = np.asarray(times)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "mean_ms": float(arr.mean()),
        "n": n,
        "others_cpu": monitor.others,
    }


def allowed_others(threads: int) -> float:
    """The share of the machine other processes may use without slowing a ``threads`` run."""
    cores = usable_cores()
    return max(0, cores - threads) / cores + CONTENDED


def _contended(others: float | None, threads: int) -> bool:
    return others is not None and others > allowed_others(threads)


def token_cosines(got: list[np.ndarray], ref: list[np.ndarray]) -> np.ndarray:
    if [len(g) for g in got] != [len(r) for r in ref]:
        raise AssertionError("a variant kept a different number of token vectors")
    a = np.concatenate(got).astype(np.float32)
    b = np.concatenate(ref).astype(np.float32)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def maxsim_grid(queries: list[np.ndarray], docs: list[np.ndarray]) -> np.ndarray:
    """``[n_queries, n_docs]`` MaxSim scores (sum over query tokens of the best doc token)."""
    flat = np.concatenate(docs).astype(np.float32)
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    scores = np.empty((len(queries), len(docs)), dtype=np.float32)
    for i, q in enumerate(queries):
        sims = q.astype(np.float32) @ flat.T
        scores[i] = np.maximum.reduceat(sims, starts, axis=1).sum(0)
    return scores


def quality(
    docs: list[np.ndarray],
    queries: list[np.ndarray],
    ref_docs: list[np.ndarray],
    ref_queries: list[np.ndarray],
    n_q: int,
    n_d: int,
) -> dict[str, float]:
    doc_cos = token_cosines(docs, ref_docs)
    query_cos = token_cosines(queries, ref_queries)
    got = maxsim_grid(queries[:n_q], docs[:n_d])
    ref = maxsim_grid(ref_queries[:n_q], ref_docs[:n_d])
    diff = np.abs(got - ref)
    same_top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
    return {
        "doc_cos_mean": float(doc_cos.mean()),
        "doc_cos_min": float(doc_cos.min()),
        "query_cos_mean": float(query_cos.mean()),
        "query_cos_min": float(query_cos.min()),
        "maxsim_max_abs_diff": float(diff.max()),
        "maxsim_mean_abs_diff": float(diff.mean()),
        "maxsim_mean_score": float(np.abs(ref).mean()),
        "maxsim_same_top1": same_top1,
    }


def padding_share(lengths: list[int], batch_size: int, sort: bool) -> float:
    """Fraction of the padded token grid that is padding."""
    order = sorted(lengths) if sort else lengths
    grid = sum(
        max(order[i : i + batch_size]) * len(order[i : i + batch_size])
        for i in range(0, len(order), batch_size)
    )
    return 1 - sum(lengths) / grid


# --------------------------------------------------------------------------- the run


def run_benchmark(args: argparse.Namespace, texts: BenchTexts) -> dict[str, Any]:
    """Measure every selected variant at every thread count, saving after each one.

    With ``--resume``, rows of an earlier run (same data and model) that did not run
    contended are kept and only the missing or contended ones are measured again.
    """
    logging.getLogger("colmax").setLevel(logging.ERROR)  # truncation notices, once per call
    thread_counts = [int(t) for t in args.threads.split(",")]
    wanted = set(args.variants.split(",")) if args.variants else None
    specs = [s for s in SPECS if wanted is None or s.name in wanted]
    if wanted and (unknown := wanted - {s.name for s in SPECS}):
        sys.exit(f"unknown variants: {sorted(unknown)}; known: {[s.name for s in SPECS]}")

    base = Encoder.load(None, threads=max(thread_counts), precision="fp32", batch_size=32)
    auto = Encoder(base.model, base.tokenizer, base.config, base.identity, precision="auto")
    ids = tok.special_ids(base.tokenizer, base.config)
    batch = tok.tokenize_documents(base.tokenizer, texts.documents, base.config, ids)
    lengths = [len(x) for x in batch.input_ids]
    real_tokens = sum(lengths)
    report: dict[str, Any] = {
        "machine": machine_info(),
        "runs": [],
        "data": {
            "source": texts.source,
            "documents": len(texts.documents),
            "queries": len(texts.queries),
            "document_tokens": real_tokens,
            "document_tokens_mean": real_tokens / len(lengths),
            "documents_cut": batch.truncated,
            "document_length": base.config.document_length,
            "query_length": base.config.query_length,
            "padding_share_unsorted_b32": padding_share(lengths, 32, sort=False),
            "padding_share_sorted_b32": padding_share(lengths, 32, sort=True),
        },
        "model": base.describe(),
        "auto_precision": "bf16" if auto.use_bf16 else "fp32",
        "default_threads": auto.threads,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": [],
        "skipped": {},
        "partial": True,
    }
    kept = previous_rows(args, report) if args.resume else []
    earlier = json.loads(args.json.read_text(encoding="utf-8")) if kept else {}
    report["runs"] = earlier.get("runs", [])
    report["notes"] = earlier.get("notes", [])
    report["runs"].append(
        {
            "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
            "date": report["machine"]["date"],
            "measured": [],
        }
    )
    report["results"] = kept
    done = {(r["variant"], r["threads"]) for r in kept}
    print(
        f"{len(texts.documents)} documents, {real_tokens} tokens "
        f"(mean {real_tokens / len(lengths):.0f}, cut at {base.config.document_length}); "
        f"{len(texts.queries)} queries; auto precision -> {report['auto_precision']}; "
        f"{len(kept)} rows kept from {args.json}",
        flush=True,
    )

    print("reference: colmax fp32, batch 32 ...", flush=True)
    ref_docs = base.encode_documents(texts.documents)
    ref_queries = base.encode_queries(texts.queries)

    order = {
        (s.name, t): i for i, (t, s) in enumerate((t, s) for t in thread_counts for s in SPECS)
    }
    with tempfile.TemporaryDirectory(prefix="colmax-bench-") as tmp:
        models = Models(base=base, workdir=Path(tmp))
        for threads in thread_counts:
            for spec in specs:
                if spec.name in report["skipped"] or (spec.name, threads) in done:
                    continue
                try:
                    runner = build_runner(spec, models, threads)
                except Exception as exc:  # optional backends: report, do not abort
                    report["skipped"][spec.name] = f"{type(exc).__name__}: {exc}"
                    print(f"  skip {spec.name}: {report['skipped'][spec.name]}", flush=True)
                    continue
                row = measure(
                    spec, runner, threads, texts, real_tokens, args, ref_docs, ref_queries
                )
                report["results"] = [
                    r
                    for r in report["results"]
                    if (r["variant"], r["threads"]) != (spec.name, threads)
                ] + [row]
                report["results"].sort(key=lambda r: order.get((r["variant"], r["threads"]), 1e9))
                report["runs"][-1]["measured"].append(f"{spec.name}@{threads}")
                save(report, args)
    report["partial"] = False
    return report


def previous_rows(args: argparse.Namespace, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Uncontended rows of an earlier results file measured on the same data and model."""
    if not args.json.exists():
        return []
    old = json.loads(args.json.read_text(encoding="utf-8"))
    differ = [key for key in ("data", "model") if old.get(key) != report[key]]
    for key in ("repeats", "latency_queries", "maxsim_queries", "maxsim_docs", "warmup_docs"):
        if old.get("settings", {}).get(key) != report["settings"][key]:
            differ.append(f"settings.{key}")
    if differ:
        print(f"note: {args.json} differs in {', '.join(differ)}; measuring everything")
        return []
    return [r for r in old["results"] if not r["contended"]]


def save(report: dict[str, Any], args: argparse.Namespace) -> None:
    for row in report["results"]:
        base_row = next(
            (
                r
                for r in report["results"]
                if r["variant"] == "baseline" and r["threads"] == row["threads"]
            ),
            None,
        )
        row["speedup_vs_baseline"] = (
            row["docs_per_s"] / base_row["docs_per_s"] if base_row else None
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, args.md)


def measure(
    spec: Spec,
    runner: Runner,
    threads: int,
    texts: BenchTexts,
    real_tokens: int,
    args: argparse.Namespace,
    ref_docs: list[np.ndarray],
    ref_queries: list[np.ndarray],
) -> dict[str, Any]:
    """Time one variant; rounds whose best run shared the CPUs with other work are redone
    (after waiting for a quiet machine) up to ``args.retries`` times, keeping the fastest."""
    waited = wait_for_quiet(args.max_wait, allowed_others(threads))
    runner.docs(texts.documents[: args.warmup_docs])  # warm-up: thread pool, kernels
    runner.queries(texts.queries[:4])
    times, others, docs_out = time_documents(runner, texts.documents, args.repeats)
    for _ in range(args.retries):
        if not _contended(others[int(np.argmin(times))], threads):
            break
        waited += wait_for_quiet(args.max_wait, allowed_others(threads))
        more_times, more_others, _ = time_documents(runner, texts.documents, args.repeats)
        times += more_times
        others += more_others
    start = time.perf_counter()
    queries_out = runner.queries(texts.queries)
    queries_s = time.perf_counter() - start
    latency = None
    if spec.latency:
        latency = query_latency(runner, texts.queries, args.latency_queries)
        for _ in range(args.retries):
            if not _contended(latency["others_cpu"], threads):
                break
            waited += wait_for_quiet(args.max_wait, allowed_others(threads))
            again = query_latency(runner, texts.queries, args.latency_queries)
            if again["p50_ms"] < latency["p50_ms"]:
                latency = again
    best_i = int(np.argmin(times))
    best = times[best_i]
    row: dict[str, Any] = {
        "variant": spec.name,
        "description": spec.description,
        "threads": threads,
        "batch_size": spec.batch_size,
        "times_s": [round(t, 4) for t in times],
        "others_cpu": [None if o is None else round(o, 3) for o in others],
        "best_s": best,
        "median_s": statistics.median(times),
        "spread": max(times) / best,
        "contended": _contended(others[best_i], threads)
        or (latency is not None and _contended(latency["others_cpu"], threads)),
        "waited_s": round(waited, 1),
        "docs_per_s": len(texts.documents) / best,
        "tokens_per_s": real_tokens / best,
        "queries_per_s_batched": len(texts.queries) / queries_s,
        "latency": latency,
        "quality": quality(
            docs_out, queries_out, ref_docs, ref_queries, args.maxsim_queries, args.maxsim_docs
        ),
        "loadavg": load_average(),
    }
    lat = f"p50 {latency['p50_ms']:.1f} ms p95 {latency['p95_ms']:.1f} ms" if latency else ""
    flag = "  CONTENDED" if row["contended"] else ""
    print(
        f"  t={threads} {spec.name:26s} {row['docs_per_s']:7.1f} docs/s "
        f"{row['tokens_per_s']:8.0f} tok/s  times {row['times_s']} others {row['others_cpu']} "
        f"cos {row['quality']['doc_cos_mean']:.5f}  {lat}{flag}",
        flush=True,
    )
    return row


# --------------------------------------------------------------------------- reports


def equal_quality(row: dict[str, Any]) -> bool:
    q = row["quality"]
    return min(q["doc_cos_mean"], q["query_cos_mean"]) >= EQUAL_QUALITY


def write_markdown(report: dict[str, Any], path: Path) -> None:
    m, d, rows = report["machine"], report["data"], report["results"]
    lines = [
        "# Encoder benchmark",
        "",
        "Generated by `bench/encode.py` (see its docstring for what each number means).",
        "",
        f"- Machine: {m['cpu']}, {m['usable_cores']} usable cores "
        f"(flags: {', '.join(m['cpu_flags']) or 'none'}; torch capability "
        f"{m['torch_cpu_capability']}), torch {m['torch']}, transformers {m['transformers']}, "
        f"onnxruntime {m['onnxruntime'] or 'not installed'}, {m['date']}",
        f"- Model: `{report['model']['name']}` (all-MiniLM-L6-v2 backbone + projection to "
        f"{report['model']['dim']} dims)",
        f"- Data: {d['source']}: {d['documents']} documents, {d['document_tokens']} tokens "
        f"(mean {d['document_tokens_mean']:.0f}, {d['documents_cut']} cut at "
        f"{d['document_length']}); {d['queries']} queries of {d['query_length']} tokens",
        f"- Padding share of the token grid at batch 32: input order "
        f"{d['padding_share_unsorted_b32']:.1%}, length-sorted {d['padding_share_sorted_b32']:.1%}",
        f'- `precision="auto"` picks **{report["auto_precision"]}** on this machine; '
        f"default threads = {report['default_threads']}",
        f"- Throughput = best of {report['settings']['repeats']} runs (tokenization included), "
        "re-timed when other processes used the CPUs meanwhile; tokens/s counts real tokens, "
        'not padding. "others\' CPU" = their share of the machine during the best run.',
        "",
        "Command"
        + (
            " (later --resume runs measured missing or contended rows):"
            if len(report["runs"]) > 1
            else ":"
        ),
        "",
        "```",
        *(run["command"] for run in report["runs"]),
        "```",
        "",
        *(["**Partial results: the run was interrupted.**", ""] if report["partial"] else []),
        "## Throughput and latency",
        "",
        "| variant | threads | docs/s | tokens/s | vs baseline | queries/s (batched) "
        "| 1-query p50 ms | p95 ms | others' CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat = r["latency"]
        p50, p95 = (f"{lat['p50_ms']:.1f}", f"{lat['p95_ms']:.1f}") if lat else ("–", "–")
        lines.append(
            f"| {r['variant']} | {r['threads']} | {r['docs_per_s']:.1f} | "
            f"{r['tokens_per_s']:,.0f} | {_x(r['speedup_vs_baseline'])} | "
            f"{r['queries_per_s_batched']:.0f} | {p50} | {p95} "
            f"| {_share(r)}{' (contended)' if r['contended'] else ''} |"
        )
    lines += [
        "",
        "## Quality against colmax fp32",
        "",
        "Cosine between corresponding token vectors (mean / min over all document or query "
        "tokens), and |MaxSim difference| over the query x document grid "
        f"({report['settings']['maxsim_queries']} x {report['settings']['maxsim_docs']}).",
        "",
        "| variant | doc cos mean | doc cos min | query cos mean | query cos min "
        "| MaxSim max abs diff | MaxSim mean abs diff | same top-1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["threads"] != rows[0]["threads"]:
            continue
        q = r["quality"]
        lines.append(
            f"| {r['variant']} | {q['doc_cos_mean']:.5f} | {q['doc_cos_min']:.4f} | "
            f"{q['query_cos_mean']:.5f} | {q['query_cos_min']:.4f} | "
            f"{q['maxsim_max_abs_diff']:.4f} | {q['maxsim_mean_abs_diff']:.4f} | "
            f"{q['maxsim_same_top1']:.0%} |"
        )
    lines.append(f"\n(MaxSim scores here average {rows[0]['quality']['maxsim_mean_score']:.1f}.)")
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in report["skipped"].items())]
    if report.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in report["notes"])]
    lines += ["", "## What we keep", ""]
    if report.get("conclusion"):
        lines += [report["conclusion"], ""]
    lines += summary(report)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _share(row: dict[str, Any]) -> str:
    others = row["others_cpu"][int(np.argmin(row["times_s"]))]
    return "?" if others is None else f"{others:.0%}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def summary(report: dict[str, Any]) -> list[str]:
    """Findings drawn from the numbers: what is fastest at equal quality, per thread count."""
    rows = report["results"]
    out: list[str] = [f'- `precision="auto"` runs **{report["auto_precision"]}** here.']
    thread_counts = sorted({r["threads"] for r in rows})
    for threads in thread_counts:
        at = [r for r in rows if r["threads"] == threads]
        good = [r for r in at if equal_quality(r)]
        if not good:
            continue
        best = max(good, key=lambda r: r["docs_per_s"])
        line = (
            f"- {threads} thread(s): the fastest at equal quality (token cosine to fp32 >= "
            f"{EQUAL_QUALITY}) is **{best['variant']}**, {best['docs_per_s']:.1f} docs/s, "
            f"{_x(best['speedup_vs_baseline'])} the baseline"
        )
        timed = [r for r in good if r["latency"]]
        if timed:
            quick = min(timed, key=lambda r: r["latency"]["p50_ms"])
            line += (
                f"; the lowest single-query latency at equal quality is {quick['variant']}, "
                f"p50 {quick['latency']['p50_ms']:.1f} ms"
            )
        out.append(line + ".")
        families: dict[str, list[dict[str, Any]]] = {}
        for r in at:
            if r["variant"].startswith("colmax-") and "no_grad" not in r["variant"]:
                families.setdefault(r["variant"].rsplit("-b", 1)[0], []).append(r)
        sizes = [
            f"{family}: batch {max(members, key=lambda r: r['docs_per_s'])['batch_size']}"
            for family, members in families.items()
            if len(members) > 1
        ]
        if sizes:
            out.append(f"  - Best batch size at {threads} thread(s): " + ", ".join(sizes) + ".")
        faster_lossy = [
            r for r in at if not equal_quality(r) and r["docs_per_s"] > best["docs_per_s"]
        ]
        lossy = [r for r in at if not equal_quality(r)]
        if lossy and not faster_lossy:
            out.append(
                f"  - No lower-quality variant ({', '.join(r['variant'] for r in lossy)}) is "
                f"faster than {best['variant']}."
            )
        for r in faster_lossy:
            out.append(
                f"  - {r['variant']} is faster ({r['docs_per_s']:.1f} docs/s) but moves token "
                f"vectors to cosine {r['quality']['doc_cos_mean']:.4f}."
            )
    if len(thread_counts) > 1:
        lo, hi = thread_counts[0], thread_counts[-1]
        for name in ("colmax-fp32-b32", "colmax-bf16-b32", "colmax-bf16w-b16"):
            one = next((r for r in rows if r["variant"] == name and r["threads"] == lo), None)
            many = next((r for r in rows if r["variant"] == name and r["threads"] == hi), None)
            if one and many:
                out.append(
                    f"- {name}: {hi} threads encode "
                    f"{many['docs_per_s'] / one['docs_per_s']:.2f}x as fast as {lo}."
                )
    if any(r["contended"] for r in rows):
        out.append(
            "- Rows marked contended shared their cores with other processes (more than the "
            f"cores they left free plus {CONTENDED:.0%} of the machine) even after waiting and "
            "retrying; their numbers are pessimistic."
        )
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with corpus.jsonl and queries.jsonl (default: "
        "../shared/data/scifact; stdlib docstrings when missing)",
    )
    p.add_argument("--docs", type=int, default=160, help="documents to encode (default 160)")
    p.add_argument("--queries", type=int, default=200, help="queries (default 200)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per variant (best kept)")
    p.add_argument(
        "--max-wait",
        type=float,
        default=60,
        help="seconds to wait for other processes to go quiet before each timing",
    )
    p.add_argument(
        "--retries", type=int, default=2, help="re-timings of a variant that ran contended"
    )
    p.add_argument("--warmup-docs", type=int, default=16, help="documents encoded before timing")
    p.add_argument(
        "--latency-queries", type=int, default=100, help="single-query calls timed per variant"
    )
    p.add_argument("--maxsim-queries", type=int, default=20)
    p.add_argument("--maxsim-docs", type=int, default=100)
    p.add_argument(
        "--variants",
        default="",
        help=f"comma-separated subset of: {', '.join(s.name for s in SPECS)}",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the uncontended rows of an earlier --json (same data, model and settings) "
        "and measure only what is missing or ran contended",
    )
    p.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    p.add_argument(
        "--conclusion", default="", help="a paragraph for 'What we keep' (with --render-only)"
    )
    p.add_argument(
        "--render-only", action="store_true", help="rewrite --md from --json (and --note)"
    )
    p.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "bench" / "encode.json")
    p.add_argument("--md", type=Path, default=REPO_ROOT / "docs" / "bench" / "encode.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render_only:
        report = json.loads(args.json.read_text(encoding="utf-8"))
        report.setdefault("notes", []).extend(args.note)
        if args.conclusion:
            report["conclusion"] = args.conclusion
        save(report, args)
        print(f"re-rendered {args.md} from {args.json}")
        return
    texts = load_texts(args.data, args.docs, args.queries)
    start = time.perf_counter()
    report = run_benchmark(args, texts)
    report["runs"][-1]["wall_s"] = round(time.perf_counter() - start, 1)
    report.setdefault("notes", []).extend(args.note)
    save(report, args)
    print(f"wrote {args.json} and {args.md} ({report['runs'][-1]['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
