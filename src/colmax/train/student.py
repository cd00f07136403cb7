"""The model being trained: a :class:`~colmax.encoder.model.ColbertModel` with its tokenizer and
settings, built from the base encoder (or any checkpoint), and run on batches of text.

Projection init (``projection_init="pca"``): a centred PCA of the backbone's token vectors over
a seeded sample of the training corpus (documents tokenized exactly as in training, punctuation
dropped), ``W = top components`` and ``b = -W @ mean``. The components come out ordered by
variance, so the Matryoshka prefixes (128 -> 96 -> 64) start as the best linear
reconstructions of their size, and the untrained model's MaxSim is already close to MiniLM's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colmax.encoder import tokenize as tok
from colmax.encoder.checkpoints import ModelIdentity, load_checkpoint
from colmax.encoder.config import EncoderConfig
from colmax.encoder.encoder import Encoder, _pad
from colmax.encoder.model import ColbertModel
from colmax.errors import InputError
from colmax.maxsim import maxsim_padded
from colmax.train.config import TrainConfig

# init 'base': untrained MiniLM (not DEFAULT_MODEL, which is the trained model once one ships)
BASE_CHECKPOINT = "colmax-minilm-v1"
PCA_MAX_TOKENS = 400_000


@dataclass
class Encoded:
    """A training batch through the student."""

    vectors: torch.Tensor  #: ``[n, len, dim]`` unit vectors
    mask: torch.Tensor  #: ``[n, len]`` true where a vector counts (MaxSim, losses)
    tokens: int  #: real (unpadded) tokens
    hidden: torch.Tensor  #: ``[n, len, hidden]`` the backbone's states (for the feature anchor)
    input_ids: torch.Tensor
    attention: torch.Tensor


def prefix_maxsim(queries: Encoded, docs: Encoded, dim: int) -> torch.Tensor:
    """``[n_queries, n_docs]`` MaxSim on the first ``dim`` dims of each vector, re-normalised
    (a Matryoshka prefix, as ``ColbertModel.forward(dim=)``); differentiable."""
    return maxsim_padded(
        F.normalize(queries.vectors[..., :dim], dim=-1),
        F.normalize(docs.vectors[..., :dim], dim=-1),
        docs.mask,
        queries.mask,
    )


@dataclass
class Student:
    model: ColbertModel
    tokenizer: Any
    config: EncoderConfig  # the training settings (document_length = training length)
    ids: tok.SpecialIds
    identity: ModelIdentity
    base: str  # where the backbone came from

    def forward(self, texts: list[str], *, queries: bool) -> Encoded:
        """Encode a batch for training (see :class:`Encoded`).

        Queries keep every position they have (with expansion, all ``query_length``);
        documents drop padding and skiplist (punctuation) positions, as at inference.
        """
        fn = tok.tokenize_queries if queries else tok.tokenize_documents
        batch = fn(self.tokenizer, texts, self.config, self.ids)
        ids, attention = _pad(batch.input_ids, batch.attend, self.ids.pad)
        hidden = self.model.backbone(input_ids=ids, attention_mask=attention)[0]
        vectors = self.model.project(hidden)
        mask = torch.zeros(ids.shape, dtype=torch.bool)
        for row, seq in enumerate(batch.input_ids):
            keep = np.ones(len(seq), bool) if queries else tok.keep_mask(seq, self.ids)
            mask[row, : len(seq)] = torch.from_numpy(keep)
        tokens = sum(len(s) for s in batch.input_ids)
        return Encoded(vectors, mask, tokens, hidden, ids, attention)

    def encoder(
        self,
        *,
        document_length: int | None = None,
        query_length: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> Encoder:
        """An :class:`Encoder` over this model (shared weights; switches it to eval mode)."""
        config = self.config.with_overrides(
            document_length=document_length, query_length=query_length, dim=None
        )
        config = replace(config, dim=None)
        return Encoder(
            self.model, self.tokenizer, config, self.identity, threads=threads, precision=precision
        )


def build_student(
    config: TrainConfig,
    *,
    pca_texts: list[str] | None = None,
    state: dict[str, torch.Tensor] | None = None,
    name: str = "colmax-trained",
    bf16: bool = False,
) -> Student:
    """The student before training: base backbone, projection from PCA (fitted on
    ``pca_texts``), or, with ``state``, the shapes ``state`` has (its weights loaded)."""
    source = BASE_CHECKPOINT if config.init == "base" else config.init
    ckpt = load_checkpoint(source)
    enc_config = ckpt.config.with_overrides(
        query_length=config.query_length,
        document_length=config.document_length,
    )
    enc_config = replace(enc_config, query_expansion=config.query_expansion, dim=None)
    ids = tok.special_ids(ckpt.tokenizer, enc_config)
    identity = ModelIdentity(name=name, fingerprint="training", layout="pylate", path="")
    hidden = int(ckpt.backbone.config.hidden_size)
    if state is not None:
        weight = state["projection.weight"]
        bias = state.get("projection.bias")
        model = ColbertModel(ckpt.backbone, torch.zeros_like(weight), _zeros(bias))
        model.load_state_dict(state)
    elif config.projection_init == "pca":
        if not pca_texts:
            raise InputError("projection_init 'pca' needs corpus texts to fit on")
        if config.dim > hidden:
            raise InputError(f"dim {config.dim} is larger than the backbone's {hidden}")
        probe = ColbertModel(ckpt.backbone, torch.eye(hidden))
        vectors = hidden_states(probe, ckpt.tokenizer, enc_config, ids, pca_texts, bf16=bf16)
        weight, bias = fit_pca(vectors, config.dim)
        model = ColbertModel(ckpt.backbone, weight, bias)
    else:
        if ckpt.projection_weight.shape[0] != config.dim:
            raise InputError(
                f"projection_init 'keep': {source} projects to "
                f"{ckpt.projection_weight.shape[0]} dims, not dim={config.dim}; use 'pca'"
            )
        model = ColbertModel(ckpt.backbone, ckpt.projection_weight, ckpt.projection_bias)
    freeze(model, embeddings=config.freeze_embeddings, layers=config.freeze_layers)
    set_dropout(model, attention=config.attention_dropout, hidden=config.hidden_dropout)
    return Student(model, ckpt.tokenizer, enc_config, ids, identity, str(source))


def anchor_backbone(model: ColbertModel, init_state: dict[str, torch.Tensor]) -> nn.Module:
    """A frozen copy of ``model``'s backbone with the weights it had before step 1
    (``init_state``): the reference the feature anchor (``anchor_weight``) keeps the student's
    token states close to."""
    reference = copy.deepcopy(model)
    reference.load_state_dict(init_state)
    backbone = reference.backbone
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone


def initial_student(
    config: TrainConfig, corpus_texts: list[str], *, name: str = "colmax-trained", bf16: bool
) -> Student:
    """The student a run starts from: its PCA fitted on the run's seeded corpus sample (with
    ``pca_text="corpus+stdlib"``: half of it, and as many seeded standard-library docstrings)."""
    if config.pca_text == "corpus+stdlib":
        from colmax.demo import stdlib_corpus

        half = config.pca_docs // 2
        general = [doc["text"] for doc in stdlib_corpus()]
        texts = corpus_sample(corpus_texts, half, config.seed) + corpus_sample(
            general, config.pca_docs - half, config.seed
        )
    else:
        texts = corpus_sample(corpus_texts, config.pca_docs, config.seed)
    return build_student(config, pca_texts=texts, name=name, bf16=bf16)


def _zeros(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else torch.zeros_like(t)


@torch.inference_mode()
def hidden_states(
    probe: ColbertModel,
    tokenizer: Any,
    config: EncoderConfig,
    ids: tok.SpecialIds,
    texts: list[str],
    *,
    bf16: bool = False,
    batch_size: int = 16,
) -> np.ndarray:
    """The backbone's (unnormalised) vectors of every kept document token, float32."""
    batch = tok.tokenize_documents(tokenizer, texts, config, ids)
    order = np.argsort([len(s) for s in batch.input_ids], kind="stable")
    out: list[np.ndarray] = []
    total = 0
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        seqs = [batch.input_ids[i] for i in chunk]
        pad_ids, attention = _pad(seqs, [batch.attend[i] for i in chunk], ids.pad)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = probe.backbone(input_ids=pad_ids, attention_mask=attention)[0].float()
        for row, seq in enumerate(seqs):
            keep = tok.keep_mask(seq, ids)
            out.append(hidden[row, : len(seq)].numpy()[keep])
            total += int(keep.sum())
        if total >= PCA_MAX_TOKENS:
            break
    return np.concatenate(out)


def fit_pca(vectors: np.ndarray, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred PCA as a linear layer: ``(W [dim, hidden], b = -W @ mean)``."""
    if len(vectors) < 2:
        raise InputError("PCA needs at least 2 token vectors; give the corpus more text")
    x = vectors.astype(np.float64)
    mean = x.mean(axis=0)
    values, vecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    order = np.argsort(values)[::-1][:dim]
    top = vecs[:, order].T
    # A fixed sign per component (largest entry positive), so the result is reproducible.
    signs = np.sign(top[np.arange(len(top)), np.abs(top).argmax(axis=1)])
    top = top * signs[:, None]
    return torch.from_numpy(top.astype(np.float32)), torch.from_numpy(
        (-top @ mean).astype(np.float32)
    )


def freeze(model: ColbertModel, *, embeddings: bool, layers: int) -> None:
    """Stop gradients into the embeddings and the lowest ``layers`` transformer layers."""
    backbone = model.backbone
    stack = getattr(getattr(backbone, "encoder", None), "layer", None)
    if (embeddings and not hasattr(backbone, "embeddings")) or (layers and stack is None):
        raise InputError(
            f"cannot freeze parts of a {type(backbone).__name__}: expected BERT-like "
            "'embeddings' and 'encoder.layer'"
        )
    if layers and layers > len(stack):
        raise InputError(f"freeze_layers={layers} but the backbone has {len(stack)} layers")
    for p in model.parameters():
        p.requires_grad_(True)
    parts: list[nn.Module] = []
    if embeddings:
        parts.append(backbone.embeddings)
    if layers:
        parts.extend(stack[:layers])
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(False)


def set_dropout(model: nn.Module, *, attention: float, hidden: float | None) -> None:
    """Set the dropout on attention probabilities (BERT-like ``attention.self.dropout``) and,
    unless ``hidden`` is None, on every other dropout layer."""
    for name, module in model.named_modules():
        if not isinstance(module, nn.Dropout):
            continue
        if name.endswith("attention.self.dropout"):
            module.p = attention
        elif hidden is not None:
            module.p = hidden


def corpus_sample(texts: list[str], n: int, seed: int) -> list[str]:
    """A seeded sample of ``n`` texts (all when there are fewer)."""
    if n >= len(texts):
        return list(texts)
    keep = np.sort(np.random.default_rng([seed, 5]).choice(len(texts), n, replace=False))
    return [texts[i] for i in keep]


def model_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
