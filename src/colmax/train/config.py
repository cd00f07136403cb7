"""Every training setting in one dataclass, checked once, stored in the run folder as JSON.

A run folder remembers the config it was started with; resuming with different settings that
change the result is refused (:func:`differences`), while settings that only change how the run
is watched (progress bar, threads) may differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from colmax.errors import InputError

SOURCES = (
    "labeled", "title", "sentence", "cloze", "fragment", "question", "docquestion", "summary",
)  # fmt: skip
LOSSES = ("ce", "pairwise", "hinge")
TEACHERS = ("none", "maxsim", "bm25", "biencoder", "fusion")
MINERS = ("bm25", "biencoder")
PRECISIONS = ("auto", "fp32", "bf16")
PROJECTION_INITS = ("pca", "keep")
ANCHOR_TEXTS = ("batch", "stdlib")
PCA_TEXTS = ("corpus", "corpus+stdlib")
# Settings that may change between sittings of one run without changing its result.
RUNTIME_KEYS = frozenset({"threads", "progress", "checkpoint_minutes", "cache_dir"})


@dataclass
class TrainConfig:
    """How ``colmax train`` builds and trains a model (defaults: the shipped recipe)."""

    # data
    split: str = "train"  #: the qrels split the labelled pairs come from (never "test")
    val_fraction: float = 0.15  #: share of the split's queries held out for validation
    #: passes per epoch over each source: labelled pairs, title -> abstract, sentence -> rest
    mix: dict[str, float] = field(
        default_factory=lambda: {"labeled": 2.0, "title": 1.0, "sentence": 1.0}
    )
    max_unsupervised: int | None = None  #: cap on corpus documents used for each unlabelled source
    # model
    init: str = "base"  #: "base" (all-MiniLM-L6-v2 from its package) or a checkpoint folder
    projection_init: str = "pca"  #: "pca" (of the corpus's token vectors) or "keep"
    dim: int = 128  #: projection output size
    dims: tuple[int, ...] = (128, 96, 64)  #: Matryoshka dims the loss is summed over
    pca_docs: int = 1000  #: corpus documents whose token vectors the PCA is fitted on
    #: what the PCA is fitted on: "corpus" (pca_docs corpus documents) or "corpus+stdlib" (half
    #: of them, and as many standard-library docstrings: general text, see docs/TRAINING.md)
    pca_text: str = "corpus"
    query_length: int = 32  #: query tokens while training (with expansion: the padded length)
    query_expansion: bool = False
    #: query tokens the saved model accepts; without expansion only real tokens count, so a
    #: longer limit costs nothing on short queries (with expansion the model keeps query_length)
    export_query_length: int = 64
    document_length: int = 192  #: document tokens while training
    export_document_length: int = 512  #: document tokens the saved model asks for
    freeze_embeddings: bool = True
    freeze_layers: int = 0  #: lower transformer layers kept frozen
    #: dropout on attention probabilities while training; 0 lets torch use its fused CPU
    #: attention kernel (a step takes about half the time of one with BERT's default 0.1)
    attention_dropout: float = 0.0
    #: dropout everywhere else in the backbone (embeddings, attention output, feed-forward);
    #: None keeps the checkpoint's (0.1 for MiniLM). 0 makes the feature anchor measure drift
    #: only, not dropout noise
    hidden_dropout: float | None = None
    # negatives
    mining: tuple[str, ...] = ("bm25", "biencoder")
    mine_depth: int = 30  #: mined candidates kept per query (known positives skipped)
    negatives: int = 3  #: hard negatives per query per step, sampled from the mined ones
    # loss
    loss: str = "ce"
    margin: float = 1.0  #: hinge loss margin
    temperature: float = 1.0  #: student scores are divided by this before softmax
    in_batch: bool = True  #: other queries' documents in the micro-batch are negatives too
    # distillation
    teacher: str = "none"  #: see docs/TRAINING.md: no teacher here beat plain contrastive
    #: fusion weights of the z-scored teacher components (maxsim, bm25, biencoder)
    teacher_weights: dict[str, float] = field(
        default_factory=lambda: {"maxsim": 1.0, "bm25": 1.0, "biencoder": 1.0}
    )
    teacher_scale: float = 2.0  #: teacher logits = fused z-scores * scale
    distill_weight: float = 1.0  #: KL weight next to the contrastive loss (0 = off)
    #: weight of the feature anchor: mean (1 - cos) between the backbone's token states and the
    #: initial backbone's on the batch's tokens (keeps the base model's general skill; 0 = off)
    anchor_weight: float = 0.0
    #: what the anchor is measured on: "batch" (the training batch's queries and documents) or
    #: "stdlib" (standard-library docstrings, general text outside the training domain; they
    #: differ a little between Python versions)
    anchor_text: str = "batch"
    #: weight of the score anchor: KL between the student's MaxSim over the anchor texts' pairs
    #: and the initial backbone's MaxSim on its full token states (0 = off; see train.anchor)
    anchor_distill_weight: float = 0.0
    # optimisation
    lr: float = 3e-5
    projection_lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: float = 0.05  #: share of max_steps with linear warm-up
    max_steps: int = 1500
    batch_size: int = 16  #: queries per micro-batch (in-batch negatives are shared within it)
    grad_accum: int = 1  #: micro-batches per optimizer step
    max_grad_norm: float = 1.0
    seed: int = 0
    precision: str = "auto"  #: bf16 autocast where the CPU has native bf16 ("auto")
    threads: int | None = None  #: torch threads and CPUs used (None: leave as is)
    # validation and checkpoints
    pool_size: int = 20  #: validation re-ranks each query's top-N of BM25 + bi-encoder RRF
    val_document_length: int | None = None  #: None = document_length
    eval_every: int = 150  #: steps between validations (0 = only at the end)
    checkpoint_every: int = 100  #: steps between checkpoints (also see checkpoint_minutes)
    checkpoint_minutes: float = 10.0
    cache_dir: str | None = None  #: mined negatives and teacher scores (default RUN/cache)
    progress: bool = True

    def __post_init__(self) -> None:
        self.dims = tuple(int(d) for d in self.dims)
        self.mining = tuple(self.mining)
        self.mix = {str(k): float(v) for k, v in self.mix.items()}
        self.teacher_weights = {str(k): float(v) for k, v in self.teacher_weights.items()}

    def validate(self) -> TrainConfig:
        """Raise :class:`InputError` naming the first bad setting; return self."""
        _check(self.split != "test", "split 'test' is for evaluation only; train on 'train'")
        _check(0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)")
        unknown = sorted(set(self.mix) - set(SOURCES))
        _check(not unknown, f"unknown mix sources {unknown}; choose from {', '.join(SOURCES)}")
        _check(all(v >= 0 for v in self.mix.values()), "mix weights must be >= 0")
        _check(any(v > 0 for v in self.mix.values()), "mix: at least one source needs weight > 0")
        _check(self.projection_init in PROJECTION_INITS, f"projection_init: {PROJECTION_INITS}")
        _check(self.pca_text in PCA_TEXTS, f"pca_text: one of {', '.join(PCA_TEXTS)}")
        _check(self.dim >= 1, "dim must be >= 1")
        _check(len(self.dims) > 0, "dims must list at least one Matryoshka dim")
        _check(
            all(1 <= d <= self.dim for d in self.dims),
            f"every Matryoshka dim must be in 1..{self.dim} (the projection size); got "
            f"{list(self.dims)}",
        )
        _check(self.query_length >= 4, "query_length must be >= 4")
        _check(self.document_length >= 8, "document_length must be >= 8")
        _check(self.export_document_length >= 8, "export_document_length must be >= 8")
        _check(self.export_query_length >= 4, "export_query_length must be >= 4")
        _check(self.freeze_layers >= 0, "freeze_layers must be >= 0")
        _check(self.anchor_weight >= 0, "anchor_weight must be >= 0 (0 = no feature anchor)")
        _check(self.anchor_distill_weight >= 0, "anchor_distill_weight must be >= 0 (0 = off)")
        _check(self.anchor_text in ANCHOR_TEXTS, f"anchor_text: one of {', '.join(ANCHOR_TEXTS)}")
        _check(0.0 <= self.attention_dropout < 1.0, "attention_dropout must be in [0, 1)")
        _check(
            self.hidden_dropout is None or 0.0 <= self.hidden_dropout < 1.0,
            "hidden_dropout must be in [0, 1) (or None to keep the checkpoint's)",
        )
        bad_miners = sorted(set(self.mining) - set(MINERS))
        _check(not bad_miners, f"unknown mining methods {bad_miners}; choose from {MINERS}")
        _check(len(self.mining) > 0, "mining needs at least one of bm25, biencoder")
        _check(self.mine_depth >= 1, "mine_depth must be >= 1")
        _check(
            1 <= self.negatives <= self.mine_depth,
            f"negatives must be in 1..mine_depth ({self.mine_depth})",
        )
        _check(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}")
        _check(self.temperature > 0, "temperature must be > 0")
        _check(self.teacher in TEACHERS, f"teacher must be one of {', '.join(TEACHERS)}")
        bad_w = sorted(set(self.teacher_weights) - {"maxsim", "bm25", "biencoder"})
        _check(not bad_w, f"unknown teacher_weights keys {bad_w}")
        _check(self.distill_weight >= 0, "distill_weight must be >= 0")
        _check(self.lr > 0 and self.projection_lr > 0, "learning rates must be > 0")
        _check(0.0 <= self.warmup < 1.0, "warmup is a share of max_steps, in [0, 1)")
        _check(self.max_steps >= 1, "max_steps must be >= 1")
        _check(self.batch_size >= 1 and self.grad_accum >= 1, "batch_size, grad_accum >= 1")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        _check(self.threads is None or self.threads >= 1, "threads must be >= 1")
        _check(self.pool_size >= 1, "pool_size must be >= 1")
        _check(self.eval_every >= 0 and self.checkpoint_every >= 1, "eval/checkpoint every >= 0")
        return self

    @property
    def distill(self) -> bool:
        return self.teacher != "none" and self.distill_weight > 0

    @property
    def anchored(self) -> bool:
        """Whether training needs the frozen step-0 backbone (either anchor is on)."""
        return self.anchor_weight > 0 or self.anchor_distill_weight > 0

    @property
    def saved_query_length(self) -> int:
        """The saved model's query length: with ``[MASK]`` expansion, the padded length it was
        trained with (the pads are part of every query); without, ``export_query_length``."""
        return self.query_length if self.query_expansion else self.export_query_length

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dims"] = list(self.dims)
        out["mining"] = list(self.mining)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training settings {unknown}")
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from exc


def differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Settings (other than runtime ones) whose values differ, as ``key: old -> new``."""
    a, b = old.to_dict(), new.to_dict()
    return [
        f"{k}: {a[k]!r} -> {b[k]!r}"
        for k in sorted(a)
        if k not in RUNTIME_KEYS and a.get(k) != b.get(k)
    ]


def parse_mix(text: str) -> dict[str, float]:
    """``"labeled=2,title=1,sentence=0.5"`` -> a mix dict (for the CLI)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise InputError(f"mix entry {part!r} must look like source=weight")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"mix weight {value!r} for {name!r} is not a number") from None
    return out


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)
