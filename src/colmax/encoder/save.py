"""Write an encoder in the PyLate / sentence-transformers layout, so other tools can load it.

Layout: the transformer at the root (config.json, model.safetensors, tokenizer files),
``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json`` and the
projection in ``1_Dense/`` (``linear.weight`` [dim, hidden], plus ``linear.bias`` when the model
has one). The projection is saved at the encoder's current dim, so a Matryoshka-truncated
encoder reloads with the same vectors. Files are written into a temporary folder first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from colmax.encoder.config import to_sentence_transformers

if TYPE_CHECKING:
    from colmax.encoder.encoder import Encoder

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_pylate(encoder: Encoder, target: Path, *, half: bool = False) -> Path:
    """Save ``encoder`` to ``target`` (created; must not exist or be empty).

    ``half=True`` stores float16 weights (what colmax ships, half the size).
    """
    target = target.expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty; choose a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".colmax-save-", dir=target.parent))
    try:
        _write_all(encoder, staging, half)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_all(encoder: Encoder, folder: Path, half: bool) -> None:
    dtype = torch.float16 if half else torch.float32
    model = encoder.model
    backbone = model.backbone
    backbone.config.save_pretrained(str(folder))
    state = {
        k: v.detach().to(dtype).contiguous()
        for k, v in backbone.state_dict().items()
        if "position_ids" not in k
    }
    save_file(state, str(folder / "model.safetensors"))
    encoder.tokenizer.save_pretrained(str(folder))
    config = encoder.config
    _write_json(folder / "modules.json", MODULES)
    _write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": config.document_length - 1, "do_lower_case": False},
    )
    _write_json(folder / "config_sentence_transformers.json", to_sentence_transformers(config))
    dense = folder / "1_Dense"
    dense.mkdir()
    dim = encoder.dim
    weight = model.projection.weight.detach()[:dim].to(dtype).contiguous()
    tensors = {"linear.weight": weight}
    if model.projection.bias is not None:
        tensors["linear.bias"] = model.projection.bias.detach()[:dim].to(dtype).contiguous()
    save_file(tensors, str(dense / "model.safetensors"))
    _write_json(
        dense / "config.json",
        {
            "in_features": int(weight.shape[1]),
            "out_features": dim,
            "bias": model.projection.bias is not None,
            "activation_function": "torch.nn.modules.linear.Identity",
        },
    )
