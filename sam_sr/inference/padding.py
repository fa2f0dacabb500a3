"""The padded frame a cascade step encodes, and windows of it cut without padding the whole input.

A step's inputs (H, W) are padded by ``pad`` px on each side plus up to a multiple of
:data:`~sam_sr.models.base.ALIGN` (reflect padding, or replicate padding for inputs too small to
reflect, as CRM pads). The dense path pads the tensors (:func:`pad_inputs`); the sparse path cuts only
the windows it encodes (:func:`padded_window`): index arithmetic gives the same values as slicing the
padded tensor, without allocating it (at 6000x4000 the padded float image alone is 290 MB).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.base import ALIGN


@dataclass(frozen=True)
class PadGeometry:
    """Where an (h, w) input sits in its padded (hp, wp) frame: ``top`` and ``left`` px of padding
    before it; ``mode`` is ``"reflect"`` or ``"replicate"``."""

    h: int
    w: int
    top: int
    left: int
    hp: int
    wp: int
    mode: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The input's outer edges (y0, x0, y1, x1) in the padded frame's [-1, 1] coordinates (the
        decoder's frame)."""
        return (-1 + 2 * self.top / self.hp, -1 + 2 * self.left / self.wp,
                -1 + 2 * (self.top + self.h) / self.hp, -1 + 2 * (self.left + self.w) / self.wp)


def pad_geometry(h: int, w: int, pad: int, multiple: int = ALIGN) -> PadGeometry:
    """The frame of an (h, w) input padded by ``pad`` px plus up to a multiple of ``multiple``
    (the extra split evenly, the odd pixel after)."""
    hp = -(-(h + 2 * pad) // multiple) * multiple
    wp = -(-(w + 2 * pad) // multiple) * multiple
    top, left = (hp - h) // 2, (wp - w) // 2
    reflect = max(left, wp - w - left) < w and max(top, hp - h - top) < h
    return PadGeometry(h, w, top, left, hp, wp, "reflect" if reflect else "replicate")


def pad_inputs(tensors: list[torch.Tensor], pad: int, multiple: int = ALIGN):
    """Reflect-pad tensors of equal (H, W) by ``pad`` px plus up to a multiple of ``multiple``.

    Returns (padded tensors, (top, left, padded_h, padded_w)). Falls back to replicate padding when
    the image is too small to reflect.
    """
    g = pad_geometry(*tensors[0].shape[-2:], pad, multiple)
    spec = (g.left, g.wp - g.w - g.left, g.top, g.hp - g.h - g.top)
    return [F.pad(t, spec, mode=g.mode) for t in tensors], (g.top, g.left, g.hp, g.wp)


def _source(start: int, stop: int, offset: int, n: int, mode: str, device) -> torch.Tensor:
    """Input indices of padded-frame positions start..stop-1 along an axis (input at ``offset``)."""
    i = torch.arange(start - offset, stop - offset, device=device)
    if mode == "replicate":
        return i.clamp_(0, n - 1)
    i = i.abs()                                   # reflect before the input (edge not repeated)
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)   # and after it


def padded_window(t: torch.Tensor, g: PadGeometry, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """``pad_inputs``'s padded tensor sliced to rows y0:y1 and columns x0:x1 of the frame, computed
    from the unpadded ``t`` float (B, C, h, w): float (B, C, y1 - y0, x1 - x0), equal values."""
    rows = _source(y0, y1, g.top, g.h, g.mode, t.device)
    cols = _source(x0, x1, g.left, g.w, g.mode, t.device)
    return t.index_select(-2, rows).index_select(-1, cols)


__all__ = ["PadGeometry", "pad_geometry", "pad_inputs", "padded_window"]
