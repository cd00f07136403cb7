"""all-MiniLM-L6-v2 features for mining and teaching, from one forward pass per text.

The pass is :func:`colmax.eval.neural._forward` (the network the ``biencoder`` and
``maxsim-raw`` eval methods use); each batch gives both the bi-encoder embedding (mean pooling,
L2 norm) and the raw token vectors (each L2-normalised), so no text is encoded twice. Under
``bf16=True`` the transformer runs in bfloat16 autocast (the hidden states come back float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

HIDDEN = 384


@dataclass
class Features:
    embeddings: np.ndarray  # [n, 384] float32 unit vectors (the bi-encoder)
    tokens: list[np.ndarray] | None  # [len_i, 384] float16 unit token vectors (maxsim-raw)


def features(
    texts: list[str],
    *,
    max_tokens: int,
    tokens: bool = True,
    bf16: bool = False,
    batch_size: int = 32,
    progress: bool = False,
    desc: str = "MiniLM",
) -> Features:
    """Bi-encoder embeddings and (``tokens=True``) raw token vectors of ``texts``."""
    from colmax.eval import neural

    emb = np.zeros((len(texts), HIDDEN), dtype=np.float32)
    raw: list[np.ndarray] | None = (
        [np.empty((0, HIDDEN), np.float16)] * len(texts) if tokens else None
    )
    if not texts:
        return Features(emb, raw)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for idx, hidden, mask in neural._forward(texts, max_tokens, batch_size, desc, progress):
            hidden = hidden.float()
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            emb[idx] = F.normalize(pooled, dim=-1).numpy()
            if raw is not None:
                vecs = F.normalize(hidden, dim=-1).numpy()
                for row, (i, n) in enumerate(zip(idx, mask.sum(1).tolist())):
                    raw[i] = vecs[row, :n].astype(np.float16)
    return Features(emb, raw)
