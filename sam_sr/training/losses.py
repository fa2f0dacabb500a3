"""CRM training loss: BCE + L1 + L2 + Sobel-gradient L1 (Shen et al. 2022; CascadePSP's loss family)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..inference.band import contour_band

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


def sample_query_points(gt: torch.Tensor, coarse: torch.Tensor, n: int, boundary_frac: float,
                        band: int = 5, generator: torch.Generator | None = None,
                        coarse_band: int = 0) -> torch.Tensor:
    """Query points for point-sampled training, as flat pixel indices int64 (B, n).

    A fraction ``boundary_frac`` of the points is drawn uniformly from the region where refinement
    matters, the rest uniformly from the whole crop (PointRend-style importance sampling; LIIF also
    trains on sampled query points). The region is, by default, within ``band`` pixels of the ground
    truth's boundary or where the coarse mask (thresholded at 0.5) disagrees with the ground truth.
    With ``coarse_band`` > 0 it is instead the pixels within ``coarse_band`` px of the coarse mask's
    contour: the band that ``contour:W`` decoding (:mod:`sam_sr.inference.query`) refines at
    inference, everything outside it keeping the coarse mask. Both bands are
    :func:`sam_sr.inference.band.contour_band` (a disc of radius W around the contour, as at inference).

    Args:
        gt, coarse: float (B, 1, H, W) in [0, 1]. n: points per image.
        band: width (px) of the ground-truth boundary band. coarse_band: width (px) of the coarse band.
        generator: torch generator for the draws (on the tensors' device); None = the global RNG.
    """
    b, _, h, w = gt.shape
    if coarse_band > 0:
        weight = contour_band(coarse, coarse_band).flatten(1).float()
    else:
        weight = (contour_band(gt, band) | ((coarse >= 0.5) != (gt >= 0.5))).flatten(1).float()
    nb = int(round(n * boundary_frac))
    uniform = torch.randint(0, h * w, (b, n - nb), generator=generator, device=gt.device)
    if nb == 0:
        return uniform
    # images without a band fall back to uniform sampling
    weight = weight + (weight.sum(1, keepdim=True) == 0).float()
    focused = torch.multinomial(weight, nb, replacement=True, generator=generator)
    return torch.cat([focused, uniform], dim=1)


def point_loss(logits: torch.Tensor, target: torch.Tensor,
               weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE-with-logits + L1 + MSE on probabilities at sampled points (the Sobel term needs a grid
    and is not used). logits, target: float (B, N), target in {0, 1}."""
    logits = logits.float()
    prob = torch.sigmoid(logits)
    terms = {"bce": F.binary_cross_entropy_with_logits(logits, target),
             "l1": F.l1_loss(prob, target), "l2": F.mse_loss(prob, target)}
    total = sum(weights.get(k, 0.0) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}
