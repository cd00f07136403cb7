"""Build small random-weight ColBERT checkpoints in both real-world layouts.

Real checkpoints cannot be downloaded here, so the loaders are tested on checkpoints made the
way Stanford ColBERT and PyLate write theirs, with tiny random weights.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizerFast

from colmax.encoder.checkpoints import base_encoder_dir

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _tokenizer_files(folder: Path) -> BertTokenizerFast:
    tokenizer = BertTokenizerFast.from_pretrained(str(base_encoder_dir()))
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def _backbone(config: BertConfig, seed: int) -> BertModel:
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():  # random init gives near-identical vectors; spread them out
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def make_stanford(
    folder: Path,
    *,
    dim: int = 16,
    seed: int = 0,
    metadata: dict | None = None,
    config: BertConfig | None = None,
) -> Path:
    """HF_ColBERT layout: one weights file with ``bert.*`` and ``linear.weight``."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer_files(folder)
    config = config or BertConfig(vocab_size=tokenizer.vocab_size, **TINY)
    model = _backbone(config, seed)
    state = {f"bert.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state["linear.weight"] = torch.randn(
        dim, config.hidden_size, generator=torch.Generator().manual_seed(seed + 1)
    )
    save_file(state, str(folder / "model.safetensors"))
    cfg = config.to_dict()
    cfg["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    meta = {
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "query_maxlen": 24,
        "doc_maxlen": 40,
        "dim": dim,
        "mask_punctuation": True,
        "attend_to_mask_tokens": True,
        "some_future_key": [1, 2],
    }
    meta.update(metadata or {})
    (folder / "artifact.metadata").write_text(json.dumps(meta, indent=4))
    return folder


def make_pylate(
    folder: Path,
    *,
    dim: int = 16,
    seed: int = 0,
    bias: bool = False,
    st_config: dict | None = None,
    config: BertConfig | None = None,
    weights: str = "safetensors",
) -> Path:
    """PyLate layout: transformer at the root, projection in ``1_Dense``; the tokenizer is
    saved with truncation and [MASK] padding switched on, as PyLate does."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer_files(folder)
    config = config or BertConfig(vocab_size=tokenizer.vocab_size, **TINY)
    model = _backbone(config, seed)
    model.save_pretrained(str(folder))
    tok_json = json.loads((folder / "tokenizer.json").read_text())
    tok_json["truncation"] = {
        "direction": "Right",
        "max_length": 29,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    tok_json["padding"] = {
        "strategy": {"Fixed": 29},
        "direction": "Right",
        "pad_to_multiple_of": None,
        "pad_id": 103,
        "pad_type_id": 0,
        "pad_token": "[MASK]",
    }
    (folder / "tokenizer.json").write_text(json.dumps(tok_json))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    st = {
        "query_prefix": "[unused0]",
        "document_prefix": "[unused1]",
        "query_length": 20,
        "document_length": 30,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
        "similarity_fn_name": "MaxSim",
    }
    st.update(st_config or {})
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": st["document_length"] - 1})
    )
    dense = folder / "1_Dense"
    dense.mkdir()
    g = torch.Generator().manual_seed(seed + 1)
    tensors = {"linear.weight": torch.randn(dim, config.hidden_size, generator=g)}
    if bias:
        tensors["linear.bias"] = torch.randn(dim, generator=g)
    if weights == "safetensors":
        save_file(tensors, str(dense / "model.safetensors"))
    else:
        torch.save(tensors, str(dense / "pytorch_model.bin"))
    (dense / "config.json").write_text(
        json.dumps({"in_features": config.hidden_size, "out_features": dim, "bias": bias})
    )
    return folder


def copy_fixture_configs(src: Path, dst: Path) -> Path:
    """Copy a real checkpoint's small files (configs, tokenizer) without weights."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "README.md"))
    return dst
