"""Real checkpoints' config files (../shared/fixtures) with random weights of the real shapes.

These catch what tiny hand-made checkpoints cannot: the exact key names, file styles and
settings of answerai-colbert-small-v1 (PyLate layout) and colbertv2.0 (Stanford layout).
"""

from __future__ import annotations

import json
import shutil
import string

import numpy as np
import torch
from checkpoint_factory import copy_fixture_configs
from conftest import shared_path
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from colmax.encoder import Encoder


def _random_backbone_weights(config_path, prefix=""):
    config = BertConfig.from_pretrained(str(config_path.parent))
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False)
    return config, {prefix + k: v.contiguous() for k, v in model.state_dict().items()}


def test_answerai_colbert_small_pylate_layout(tmp_path):
    src = shared_path("fixtures", "checkpoints", "answerai-colbert-small-v1")
    folder = copy_fixture_configs(src, tmp_path / "answerai")
    shutil.copy(src / "1_Dense" / "model.safetensors", folder / "1_Dense" / "model.safetensors")
    _, state = _random_backbone_weights(folder / "config.json")
    save_file(state, str(folder / "model.safetensors"))

    enc = Encoder.load(folder, precision="fp32")
    assert enc.identity.layout == "pylate"
    assert enc.dim == 96
    assert (enc.config.query_length, enc.config.document_length) == (32, 300)
    assert (enc.config.query_marker, enc.config.document_marker) == ("[unused0]", "[unused1]")
    assert enc.config.attend_to_expansion_tokens is False
    assert set(enc.config.skiplist) == set(string.punctuation)
    q = enc.encode_queries(["what does the projection do?"])[0]
    d = enc.encode_documents(["It maps 384 hidden dims to 96, then normalises. " * 60])[0]
    assert q.shape == (32, 96)
    assert d.shape[1] == 96 and d.shape[0] <= 300  # the saved tokenizer truncates at 299: ignored
    assert d.shape[0] > 128
    np.testing.assert_allclose(np.linalg.norm(q.astype(np.float32), axis=1), 1, atol=2e-3)


def test_colbertv2_stanford_layout_with_real_artifact_metadata(tmp_path):
    src = shared_path("fixtures", "checkpoints", "colbertv2.0")
    meta = shared_path(
        "fixtures",
        "checkpoints",
        "_artifact_metadata_examples",
        "elibrowne-focused-legal-rag",
        "artifact.metadata",
    )
    vocab = shared_path("fixtures", "checkpoints", "answerai-colbert-small-v1", "vocab.txt")
    folder = copy_fixture_configs(src, tmp_path / "colbertv2")
    shutil.copy(vocab, folder / "vocab.txt")
    shutil.copy(meta, folder / "artifact.metadata")
    config, state = _random_backbone_weights(folder / "config.json", prefix="bert.")
    state["linear.weight"] = torch.randn(128, config.hidden_size) / config.hidden_size**0.5
    save_file(state, str(folder / "model.safetensors"))

    assert json.loads((folder / "config.json").read_text())["architectures"] == ["HF_ColBERT"]
    enc = Encoder.load(folder, precision="fp32")
    assert enc.identity.layout == "stanford"
    assert enc.dim == 128
    assert (enc.config.query_length, enc.config.document_length) == (32, 256)
    q = enc.encode_queries(["a legal question"])[0]
    docs = enc.encode_documents(["The court held, in short: no.", "word " * 400])
    assert q.shape == (32, 128)
    assert (
        docs[0].shape[0] == 9
    )  # [CLS] [D] the court held in short no [SEP]: 2 commas/colon/period gone
    assert docs[1].shape[0] == 256
