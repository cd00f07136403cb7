"""The encoder on small checkpoints of both layouts, against an independent reference."""

from __future__ import annotations

import json
import os
import platform
import string
import subprocess
import sys

import numpy as np
import pytest
import torch
from checkpoint_factory import make_pylate, make_stanford
from safetensors.torch import load_file
from transformers import BertConfig, BertModel, BertTokenizerFast

from colmax.encoder import Encoder, EncodeStats
from colmax.errors import CheckpointFormatError, DimensionMismatchError, InputError

DOCS = [
    "Late interaction scores every query token against every document token.",
    "Short one.",
    "Punctuation!!! should; vanish: (mostly) -- from documents, right?",
    " ".join(["long"] * 200),
]
QUERIES = ["what is late interaction?", "short", " ".join(["many words"] * 40)]


def reference_vectors(
    folder,
    text,
    *,
    query,
    marker,
    length,
    expansion,
    attend_mask,
    skip=string.punctuation,
    dense_dir=None,
    prefix="",
):
    """Plain transformers, one text at a time, with ColBERT's recipe written out by hand."""
    tokenizer = BertTokenizerFast.from_pretrained(str(folder))
    ids = tokenizer(text, add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    if len(ids) + 1 > length:
        ids = [*ids[: length - 2], ids[-1]]
    ids = [ids[0], tokenizer.convert_tokens_to_ids(marker), *ids[1:]]
    attention = [1] * len(ids)
    if query and expansion:
        n = length - len(ids)
        ids += [tokenizer.mask_token_id] * n
        attention += [int(attend_mask)] * n
    config = BertConfig.from_pretrained(str(folder))
    model = BertModel(config, add_pooling_layer=False).eval()
    state = load_file(str(folder / "model.safetensors"))
    state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    model.load_state_dict(state, strict=False)
    dense = load_file(str((dense_dir or folder) / ("model.safetensors")))
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention]))[0][
            0
        ]
        out = hidden @ dense["linear.weight"].T
        if "linear.bias" in dense:
            out = out + dense["linear.bias"]
        out = torch.nn.functional.normalize(out, dim=-1).numpy()
    if not query:
        skip_ids = {tokenizer.convert_tokens_to_ids(c) for c in skip}
        out = out[[i not in skip_ids for i in ids]]
    return out


@pytest.fixture(scope="module")
def stanford_dir(tmp_path_factory):
    return make_stanford(tmp_path_factory.mktemp("stanford") / "ckpt")


@pytest.fixture(scope="module")
def pylate_dir(tmp_path_factory):
    return make_pylate(tmp_path_factory.mktemp("pylate") / "ckpt", bias=True)


def test_stanford_settings_come_from_artifact_metadata(stanford_dir):
    enc = Encoder.load(stanford_dir, precision="fp32")
    assert enc.config.query_length == 24 and enc.config.document_length == 40
    assert enc.dim == 16 and enc.config.attend_to_expansion_tokens is True
    assert enc.identity.layout == "stanford"


def test_stanford_vectors_match_reference(stanford_dir):
    enc = Encoder.load(stanford_dir, precision="fp32", batch_size=2)
    queries = enc.encode_queries(QUERIES)
    docs = enc.encode_documents(DOCS)
    for text, got in zip(QUERIES, queries):
        ref = reference_vectors(
            stanford_dir,
            text,
            query=True,
            marker="[unused0]",
            length=24,
            expansion=True,
            attend_mask=True,
            prefix="bert.",
        )
        assert got.shape == (24, 16) and got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3)
    for text, got in zip(DOCS, docs):
        ref = reference_vectors(
            stanford_dir,
            text,
            query=False,
            marker="[unused1]",
            length=40,
            expansion=False,
            attend_mask=False,
            prefix="bert.",
        )
        assert got.shape == ref.shape
        np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3)


def test_pylate_vectors_match_reference_and_ignore_tokenizer_padding(pylate_dir):
    enc = Encoder.load(pylate_dir, precision="fp32", batch_size=3)
    assert enc.identity.layout == "pylate"
    assert (enc.config.query_length, enc.config.document_length) == (20, 30)
    for text, got in zip(QUERIES, enc.encode_queries(QUERIES)):
        ref = reference_vectors(
            pylate_dir,
            text,
            query=True,
            marker="[unused0]",
            length=20,
            expansion=True,
            attend_mask=False,
            dense_dir=pylate_dir / "1_Dense",
        )
        np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3)
    for text, got in zip(DOCS, enc.encode_documents(DOCS)):
        ref = reference_vectors(
            pylate_dir,
            text,
            query=False,
            marker="[unused1]",
            length=30,
            expansion=False,
            attend_mask=False,
            dense_dir=pylate_dir / "1_Dense",
        )
        np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3)


def test_query_augmentation_pads_with_mask_tokens(pylate_dir):
    enc = Encoder.load(pylate_dir, precision="fp32")
    q = enc.encode_queries(["hi"])[0]
    assert q.shape[0] == 20  # [CLS] [Q] hi [SEP] + 16 x [MASK]
    # expansion vectors are real outputs, not zeros
    assert np.all(np.linalg.norm(q.astype(np.float32), axis=1) > 0.99)


def test_without_query_expansion_queries_keep_their_length(tmp_path):
    folder = make_pylate(tmp_path / "noexp", st_config={"do_query_expansion": False})
    enc = Encoder.load(folder, precision="fp32")
    assert enc.encode_queries(["hi"])[0].shape[0] == 4


def test_attention_to_mask_tokens_changes_query_vectors(tmp_path):
    a = Encoder.load(make_stanford(tmp_path / "a", metadata={"attend_to_mask_tokens": True}))
    b = Encoder.load(make_stanford(tmp_path / "b", metadata={"attend_to_mask_tokens": False}))
    qa, qb = a.encode_queries(["late interaction"])[0], b.encode_queries(["late interaction"])[0]
    assert not np.allclose(qa, qb, atol=1e-3)


def test_skiplist_drops_punctuation_vectors(pylate_dir):
    enc = Encoder.load(pylate_dir, precision="fp32")
    plain, punct = enc.encode_documents(["alpha beta", "alpha, beta!!"])
    assert len(plain) == len(punct) == 5  # [CLS] [D] alpha beta [SEP]


def test_skiplist_off_keeps_punctuation(tmp_path):
    enc = Encoder.load(make_stanford(tmp_path / "c", metadata={"mask_punctuation": False}))
    assert len(enc.encode_documents(["alpha, beta!!"])[0]) == 8


def test_truncation_is_counted(pylate_dir):
    enc = Encoder.load(pylate_dir, precision="fp32")
    stats = EncodeStats()
    out = enc.encode_documents(["word " * 500, "short text"], stats=stats)
    assert len(out[0]) == 30 and stats.truncated == 1 and stats.texts == 2
    assert stats.tokens == sum(len(v) for v in out)


def test_huge_document_is_cut_quickly(pylate_dir):
    enc = Encoder.load(pylate_dir)
    out = enc.encode_documents(["token " * 2_000_000])
    assert len(out[0]) == 30


def test_matryoshka_truncation_renormalises_a_prefix(pylate_dir):
    full = Encoder.load(pylate_dir, precision="fp32").encode_documents(DOCS[:1])[0]
    small = Encoder.load(pylate_dir, precision="fp32", dim=8).encode_documents(DOCS[:1])[0]
    assert small.shape[1] == 8
    # the same directions as the first 8 dims of the unnormalised projection
    raw = full.astype(np.float32)[:, :8]
    expect = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(small.astype(np.float32), expect, atol=3e-3)


def test_dim_larger_than_model_is_refused(pylate_dir):
    with pytest.raises(DimensionMismatchError, match="projects to 16"):
        Encoder.load(pylate_dir, dim=32)


def test_bf16_stays_close_to_fp32(pylate_dir):
    a = Encoder.load(pylate_dir, precision="fp32").encode_documents(DOCS)
    b = Encoder.load(pylate_dir, precision="bf16").encode_documents(DOCS)
    for x, y in zip(a, b):
        cos = (x.astype(np.float32) * y.astype(np.float32)).sum(axis=1)
        assert cos.min() > 0.99


def test_results_do_not_depend_on_batching(pylate_dir):
    one = Encoder.load(pylate_dir, precision="fp32", batch_size=1).encode_documents(DOCS)
    many = Encoder.load(pylate_dir, precision="fp32", batch_size=64).encode_documents(DOCS)
    for x, y in zip(one, many):
        np.testing.assert_allclose(x, y, atol=2e-3)


def test_save_round_trip_in_pylate_layout(pylate_dir, tmp_path):
    enc = Encoder.load(pylate_dir, precision="fp32", dim=12)
    saved = enc.save(tmp_path / "saved")
    assert json.loads((saved / "modules.json").read_text())[1]["path"] == "1_Dense"
    st = json.loads((saved / "config_sentence_transformers.json").read_text())
    assert st["query_length"] == 20 and st["document_prefix"] == "[unused1]"
    again = Encoder.load(saved, precision="fp32")
    assert again.dim == 12
    for x, y in zip(enc.encode_documents(DOCS), again.encode_documents(DOCS)):
        np.testing.assert_allclose(x, y, atol=2e-3)


def test_stanford_checkpoint_saves_to_pylate_layout(stanford_dir, tmp_path):
    enc = Encoder.load(stanford_dir, precision="fp32")
    again = Encoder.load(enc.save(tmp_path / "converted"), precision="fp32")
    assert again.identity.layout == "pylate"
    assert again.config.attend_to_expansion_tokens is True
    np.testing.assert_allclose(
        enc.encode_queries(QUERIES)[0], again.encode_queries(QUERIES)[0], atol=2e-3
    )


def test_pytorch_bin_dense_weights_load(tmp_path):
    enc = Encoder.load(make_pylate(tmp_path / "bin", weights="bin"))
    assert enc.dim == 16


# ------------------------------------------------------------------ errors name what is wrong


def test_missing_projection_names_the_file(tmp_path):
    folder = make_pylate(tmp_path / "m")
    (folder / "1_Dense" / "model.safetensors").unlink()
    with pytest.raises(CheckpointFormatError, match=r"1_Dense.*no weights file"):
        Encoder.load(folder)


def test_wrong_projection_shape_names_the_shapes(tmp_path):
    folder = make_stanford(tmp_path / "s")
    state = load_file(str(folder / "model.safetensors"))
    state["linear.weight"] = torch.zeros(16, 33)
    from safetensors.torch import save_file

    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointFormatError, match=r"\(16, 33\).*hidden size 32"):
        Encoder.load(folder)


def test_wrong_backbone_tensor_shape_is_named(tmp_path):
    folder = make_pylate(tmp_path / "b")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["intermediate_size"] = 65
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointFormatError, match=r"intermediate\.dense\.(weight|bias).* has shape .* implies"
    ):
        Encoder.load(folder)


def test_declared_dim_disagreeing_with_weights(tmp_path):
    folder = make_stanford(tmp_path / "d", metadata={"dim": 128})
    with pytest.raises(CheckpointFormatError, match=r"dim 128.*projects to 16"):
        Encoder.load(folder)


def test_unknown_marker_is_reported(tmp_path):
    folder = make_pylate(tmp_path / "u", st_config={"query_prefix": "[NoSuchMarker]"})
    with pytest.raises(CheckpointFormatError, match="NoSuchMarker"):
        Encoder.load(folder)


def test_folder_that_is_no_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointFormatError, match="not a ColBERT checkpoint"):
        Encoder.load(tmp_path)


def test_unknown_model_name_never_downloads():
    from colmax.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="never downloads"):
        Encoder.load("colbert-ir/colbertv2.0")


def test_bad_texts_are_refused(pylate_dir):
    enc = Encoder.load(pylate_dir)
    with pytest.raises(InputError, match="empty"):
        enc.encode_documents(["fine", "   "])
    with pytest.raises(InputError, match="not one string"):
        enc.encode_queries("a string")
    with pytest.raises(InputError, match="not str"):
        enc.encode_documents([b"bytes"])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_malloc_tuning_applies_on_glibc_and_can_be_turned_off():
    code = (
        "from colmax.encoder.memory import release_free_memory, tune_malloc; "
        "print(tune_malloc(), isinstance(release_free_memory(), bool))"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLMAX_MALLOC_TUNING"}
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    off = subprocess.run(
        [sys.executable, "-c", code], env={**env, "COLMAX_MALLOC_TUNING": "0"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert (on.stdout.split(), off.stdout.split()) == (["True", "True"], ["False", "True"]), (
        on.stderr + off.stderr
    )
    trim = "from colmax.encoder.memory import release_free_memory as r; print(r())"
    off_trim = subprocess.run(
        [sys.executable, "-c", trim], env={**env, "COLMAX_MALLOC_TUNING": "0"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert off_trim.stdout.strip() == "False", off_trim.stderr


def test_padding_rounds_shapes_so_onednn_sees_few_of_them():
    from colmax.encoder.encoder import LENGTH_STEP, _pad

    seqs = [[5, 6, 7], [5] * 21, [9] * 17]
    ids, mask = _pad(seqs, [[1] * len(s) for s in seqs], 0, few_shapes=True, max_length=512)
    assert ids.shape == (4, 2 * LENGTH_STEP)  # 3 rows -> 4, 21 tokens -> 32
    assert mask[:3].sum(dim=1).tolist() == [3, 21, 17]
    assert mask[3].tolist() == [1] + [0] * 31  # the extra row attends to one pad token
    assert ids[1, :21].tolist() == [5] * 21 and ids[1, 21:].eq(0).all()
    # never past the model's position limit; exact shapes when asked
    assert _pad([[1] * 510], [[1] * 510], 0, few_shapes=True, max_length=512)[0].shape == (1, 512)
    assert _pad([[1] * 20], [[1] * 20], 0, few_shapes=True, max_length=24)[0].shape == (1, 24)
    assert _pad(seqs, [[1] * len(s) for s in seqs], 0)[0].shape == (3, 21)
