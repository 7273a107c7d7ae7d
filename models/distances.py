"""Pairwise distances exact at the 1e-4 scale of the attractor counts."""

from __future__ import annotations

import torch
from torch import Tensor


def pairwise_distances(z: Tensor) -> Tensor:
    """z [n, D] -> ||z_i - z_j||_2 [n, n] by explicit differences.

    The matrix-product form (torch.cdist's default for large n) loses the 1e-4 scale
    to cancellation. The clamp keeps the gradient finite where d = 0 (the relu in
    VAA* zeroes it there anyway) and changes no distance above 1e-15.
    """
    diff = z.unsqueeze(1) - z.unsqueeze(0)
    return torch.sqrt(torch.clamp((diff * diff).sum(-1), min=1e-30))
