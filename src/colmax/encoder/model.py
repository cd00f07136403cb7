"""The ColBERT network: backbone, linear projection, Matryoshka truncation, L2 normalisation.

Forward only: batching, sorting, tokenization and I/O live elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ColbertModel(nn.Module):
    """Token vectors from token ids."""

    def __init__(
        self,
        backbone: nn.Module,
        projection_weight: torch.Tensor,
        projection_bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        out_dim, hidden = projection_weight.shape
        self.projection = nn.Linear(hidden, out_dim, bias=projection_bias is not None)
        with torch.no_grad():
            self.projection.weight.copy_(projection_weight)
            if projection_bias is not None:
                self.projection.bias.copy_(projection_bias)

    @property
    def full_dim(self) -> int:
        return int(self.projection.out_features)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, dim: int | None = None
    ) -> torch.Tensor:
        """``[batch, seq]`` ids -> ``[batch, seq, dim]`` unit vectors (float32).

        The backbone may run under autocast; the projection and normalisation always run in
        float32 so that bfloat16 only perturbs the transformer's activations.
        """
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        return self.project(hidden, dim)

    def project(self, hidden: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        """The backbone's ``[batch, seq, hidden]`` states -> unit vectors (float32)."""
        with torch.autocast("cpu", enabled=False):
            vectors = self.projection(hidden.float())
            if dim is not None and dim < vectors.shape[-1]:
                vectors = vectors[..., :dim]  # Matryoshka: a prefix of the dims, renormalised
            return F.normalize(vectors, p=2, dim=-1)
