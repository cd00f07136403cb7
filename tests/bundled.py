"""Facts about the bundled default model that tests need without loading it."""

from __future__ import annotations

import json

from colmax.encoder.checkpoints import BUNDLED_MODELS_DIR, DEFAULT_MODEL

_DENSE = BUNDLED_MODELS_DIR / DEFAULT_MODEL / "1_Dense" / "config.json"
DEFAULT_DIM: int = int(json.loads(_DENSE.read_text())["out_features"])
