"""CRM training loss: BCE + L1 + L2 + Sobel-gradient L1 (Shen et al. 2022; CascadePSP's loss family)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of a float (B, 1, H, W) map after a 3x3 average pool (as CRM)."""
    x = F.avg_pool2d(x, 3, stride=1, padding=1)
    kx = _SOBEL_X.to(x).view(1, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    gx = F.conv2d(x, kx, padding=1)
    gy = F.conv2d(x, ky, padding=1)
    return torch.sqrt(gx * gx + gy * gy + 1e-8)


def refinement_loss(logits: torch.Tensor, gt: torch.Tensor,
                    weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of BCE-with-logits, L1 and MSE on probabilities, and L1 between Sobel maps.

    Args:
        logits: float (B, 1, H, W). gt: float (B, 1, H, W) in {0, 1}.
        weights: keys ``bce``, ``l1``, ``l2``, ``grad``.

    Returns:
        (total loss scalar, {term: float value}).
    """
    logits = logits.float()
    prob = torch.sigmoid(logits)
    terms = {
        "bce": F.binary_cross_entropy_with_logits(logits, gt),
        "l1": F.l1_loss(prob, gt),
        "l2": F.mse_loss(prob, gt),
        "grad": F.l1_loss(sobel_magnitude(prob), sobel_magnitude(gt)),
    }
    total = sum(weights.get(k, 0.0) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
