"""The variants of ``bench/encode.py`` and how each one is built: the :class:`Spec` list, the
models the variants share (colmax fp32, bf16 weights, int8, ONNX exports) and the plain
transformers baseline, each turned into a :class:`Runner` at one thread count.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colmax.encoder import tokenize as tok
from colmax.encoder.checkpoints import base_encoder_dir
from colmax.encoder.encoder import Encoder
from colmax.encoder.model import ColbertModel

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
