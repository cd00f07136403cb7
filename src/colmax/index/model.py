"""Which encoder an index uses: the one it records, or a given one that must match it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colmax.encoder.checkpoints import describe_checkpoint
from colmax.encoder.encoder import Encoder
from colmax.errors import (
    DimensionMismatchError,
    InputError,
    ModelMismatchError,
    ModelNotFoundError,
)

ModelArg = str | Path | Encoder | None


def as_encoder(model: ModelArg, dim: int | None = None) -> Encoder:
    if isinstance(model, Encoder):
        return model
    if model is None or isinstance(model, (str, Path)):
        return Encoder.load(model, dim=dim)
    raise InputError(
        f"model must be a bundled model name, a checkpoint folder or an Encoder, not "
        f"{type(model).__name__}"
    )


def model_for_new_index(model: ModelArg, dim: int | None) -> tuple[dict[str, Any], Encoder | None]:
    """What a new index records about its model (``Encoder.describe()``), and the encoder if
    one was given or had to be loaded. A bundled name or PyLate folder is described from its
    config files alone, so creating an index (e.g. to add precomputed vectors) never pays for
    loading weights; the index loads them on first use."""
    if isinstance(model, Encoder):
        if dim is not None and dim != model.dim:
            raise DimensionMismatchError(
                f"dim={dim} but the given encoder produces {model.dim}-dim vectors; load it "
                f"with Encoder.load(..., dim={dim}) or leave dim out"
            )
        return model.describe(), model
    if model is None or isinstance(model, (str, Path)):
        described = describe_checkpoint(model)
        if described is not None:
            identity, full_dim = described
            use = full_dim if dim is None else dim
            if not 1 <= use <= full_dim:
                raise DimensionMismatchError(
                    f"dim {use} is not available: model {identity.name!r} projects to "
                    f"{full_dim} dims, and Matryoshka truncation keeps 1..{full_dim} of them"
                )
            return {**identity.to_dict(), "dim": use}, None
    encoder = as_encoder(model, dim=dim)
    return encoder.describe(), encoder


def check_model(encoder: Encoder, manifest: dict[str, Any], root: Path) -> None:
    """A given encoder must be the model the index was built with, at the same dim."""
    recorded = manifest["model"]
    given = encoder.describe()
    if given["fingerprint"] != recorded["fingerprint"]:
        raise ModelMismatchError(
            f"the index at {root} was built with model {recorded['name']!r} (fingerprint "
            f"{recorded['fingerprint']}, from {recorded['path']}) but the given model is "
            f"{given['name']!r} (fingerprint {given['fingerprint']}, from {given['path']}); "
            "open it with the model it was built with (model=None loads it), or build a new "
            "index with the new model"
        )
    if encoder.dim != manifest["dim"]:
        raise DimensionMismatchError(
            f"the index at {root} holds {manifest['dim']}-dim vectors but the given encoder "
            f"produces {encoder.dim}-dim vectors; load it with Encoder.load(..., "
            f"dim={manifest['dim']}) or pass model=None"
        )


def load_recorded_model(manifest: dict[str, Any], root: Path) -> Encoder:
    """Load the model the manifest records: its folder if still there, else the bundled name."""
    from colmax.encoder.checkpoints import bundled_models

    recorded = manifest["model"]
    folder = Path(recorded["path"])
    if folder.is_dir():
        source: str | Path = folder
    elif recorded["name"] in bundled_models():
        source = recorded["name"]
    else:
        raise ModelNotFoundError(
            f"the index at {root} was built with model {recorded['name']!r} from {folder}, "
            "which is not there any more; pass model= the path of a copy of that model "
            f"(fingerprint {recorded['fingerprint']})"
        )
    encoder = Encoder.load(source, dim=int(manifest["dim"]))
    if encoder.identity.fingerprint != recorded["fingerprint"]:
        raise ModelMismatchError(
            f"the model at {encoder.identity.path} has changed since the index at {root} was "
            f"built (fingerprint {encoder.identity.fingerprint}, recorded "
            f"{recorded['fingerprint']}); restore the original model files and pass "
            "model=their path, or rebuild the index"
        )
    return encoder
