"""Shared fixtures: the real default encoder (loaded once) and temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def default_encoder():
    """The bundled default model, loaded once per test session (real MiniLM weights)."""
    from colmax.encoder import Encoder

    return Encoder.load()


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared ships only beside the project's own checkout)")
    return path


pytest_plugins = (
    "stored_index",  # the stored-index fixtures of the storage tests
    "train_toys",  # `tiny`: the random checkpoint the training tests train
)
