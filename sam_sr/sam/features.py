"""SAM image embeddings resampled onto the refiner's grids (SAM-SR v3.x).

SAM (and MobileSAM) resize an image so that its longer side L is 1024 px, pad it at the bottom/right
to 1024 x 1024, and produce a 64 x 64 embedding (stride 16 in that frame). A point at pixel
coordinates (y, x) of the original H x W image (pixel centres at +0.5) therefore lies at
``(2 y / L - 1, 2 x / L - 1)`` in ``grid_sample``'s normalised frame of the embedding
(``align_corners=False``). These helpers read the embedding at any set of image points, so crops,
flips and the cascade's resized, padded inputs get features aligned with their own pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_embedding(embedding: torch.Tensor, image_hw: tuple[int, int], ys: torch.Tensor,
                     xs: torch.Tensor) -> torch.Tensor:
    """Bilinear read of a SAM embedding at image points.

    Args:
        embedding: float (C, 64, 64) or (1, C, 64, 64), SAM's image embedding of an H x W image.
        image_hw: (H, W) of that image in pixels.
        ys, xs: float tensors of equal shape (R, Cc), point coordinates in original-image pixels
            (pixel centres at +0.5); points outside the image read the nearest border feature.

    Returns:
        float32 (C, R, Cc).
    """
    emb = embedding if embedding.dim() == 4 else embedding[None]
    side = float(max(image_hw))
    # the image occupies [0, H/L] x [0, W/L] of the embedding's frame; clamp to it
    gy = 2 * ys.float().clamp(0, image_hw[0]) / side - 1
    gx = 2 * xs.float().clamp(0, image_hw[1]) / side - 1
    grid = torch.stack([gx, gy], -1)[None].to(emb.device)
    return F.grid_sample(emb.float(), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0]


def features_for_step(embedding: torch.Tensor, image_hw: tuple[int, int], step_hw: tuple[int, int],
                      top: int, left: int, padded_hw: tuple[int, int], stride: int = 8) -> torch.Tensor:
    """SAM features for one cascade step: the image resized to ``step_hw`` and padded to
    ``padded_hw`` with its top-left corner at (top, left); features at the centres of the padded
    input's ``stride`` x ``stride`` cells (padding reads the border). Returns float32
    (1, C, padded_h / stride, padded_w / stride)."""
    hp, wp = padded_hw
    py = torch.arange(hp // stride, dtype=torch.float32) * stride + stride / 2
    px = torch.arange(wp // stride, dtype=torch.float32) * stride + stride / 2
    sy, sx = image_hw[0] / step_hw[0], image_hw[1] / step_hw[1]
    ys, xs = torch.meshgrid((py - top) * sy, (px - left) * sx, indexing="ij")
    return sample_embedding(embedding, image_hw, ys, xs)[None]
