"""Memory-bounded encoding for high-resolution cascade steps.

- Patched fusion (exact): ``model.encode(..., fusion_patches=N)`` (:meth:`sam_sr.models.crm.CRM.encode`)
  runs the fusion convolutions over horizontal bands of the stride-2 map with the halo their kernels
  need (:meth:`sam_sr.models.fusion.FeatureFusion.forward_patched`), and the decoder's per-cell
  projection is applied per band, so neither the full concatenated branch maps nor the full fused map
  ever exist.
- Encoder tiling (approximate): the encoder, fusion and projection run on overlapping tiles of the
  input; each tile's core (its tile minus the overlap) is written into the output map. Differences to
  the untiled path come only from zero padding at tile borders inside the overlap's reach; with an
  overlap of 64 px they are below the decision threshold almost everywhere (see the unit tests and
  ``benchmarks/``).
"""
from __future__ import annotations

import torch

from ..models.base import ALIGN


def _spans(n: int, core: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(tile_start, tile_stop, core_start, core_stop) along one axis of length n (multiples of ALIGN)."""
    out = []
    for c0 in range(0, n, core):
        c1 = min(n, c0 + core)
        out.append((max(0, c0 - overlap), min(n, c1 + overlap), c0, c1))
    return out


def encode_tiled(model, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None,
                 tile: int = 1024, overlap: int = 64, fusion_patches: int = 0) -> torch.Tensor:
    """``model.encode`` (:meth:`sam_sr.models.base.RefinerModel.encode`) over overlapping tiles; same
    output shape, approximately equal values.

    Args:
        model: a refiner whose extra input (if any) is per-pixel channels.
        image, mask, extra: (B, C, H, W) with H and W multiples of 8 (the cascade pads to this).
        tile: tile side in input pixels (rounded down to a multiple of 8); inputs no larger than one
            tile are encoded whole.
        overlap: context in input pixels added on each side of a tile's core (multiple of 8).

    Raises:
        ValueError: sizes not multiples of 8, or ``tile <= 2 * overlap``.
    """
    h, w = image.shape[-2:]
    tile, overlap = tile // ALIGN * ALIGN, -(-overlap // ALIGN) * ALIGN
    if h % ALIGN or w % ALIGN:
        raise ValueError(f"tiled encoding needs sizes that are multiples of {ALIGN}, got {h}x{w}")
    if tile <= 2 * overlap:
        raise ValueError(f"tile {tile} must exceed twice the overlap {overlap}")
    if h <= tile and w <= tile:
        return model.encode(image, mask, extra, fusion_patches)
    core = tile - 2 * overlap
    out = None
    for ty0, ty1, cy0, cy1 in _spans(h, core, overlap):
        for tx0, tx1, cx0, cx1 in _spans(w, core, overlap):
            crop = lambda t: None if t is None else t[..., ty0:ty1, tx0:tx1]  # noqa: E731
            proj = model.encode(crop(image), crop(mask), crop(extra), fusion_patches)
            if out is None:
                out = proj.new_empty(proj.shape[0], proj.shape[1], h // 2, w // 2)
            out[..., cy0 // 2:cy1 // 2, cx0 // 2:cx1 // 2] = \
                proj[..., (cy0 - ty0) // 2:(cy1 - ty0) // 2, (cx0 - tx0) // 2:(cx1 - tx0) // 2]
            del proj
    return out
