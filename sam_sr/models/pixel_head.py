"""Pixel head: a small full-resolution CNN that adds a logit correction at every output pixel.

Not in CRM. CRM's implicit decoder reads stride-2 features, which places a boundary to within about a
pixel only after long training; a coarse mask that is already close (e.g. a segmenter run at a lower
resolution) then loses accuracy where the decoder's boundary is a pixel off. The pixel head sees the
image and the current mask at the output resolution itself (receptive field ``2 * layers + 1`` pixels)
and adds its logit to the decoder's, so it can snap the boundary to the image's edges. Its last layer
starts at zero: a model with a new pixel head computes exactly what it computed without one.
"""
from __future__ import annotations

import torch
from torch import nn

#: Output rows computed at a time by :meth:`PixelHead.banded` (bounds memory at 4k-6k px).
BAND_ROWS = 512


class PixelHead(nn.Module):
    """``layers`` 3x3 convolutions (ReLU between) over the normalised image and mask, then a 1x1
    convolution (zero-initialised) to one logit per pixel.

    Args:
        channels: hidden channels (e.g. 16).
        layers: 3x3 convolutions; the receptive field is ``2 * layers + 1`` pixels square.
        in_channels: input channels (normalised RGB + mask in [-1, 1] = 4).
    """

    def __init__(self, channels: int = 16, layers: int = 3, in_channels: int = 4):
        super().__init__()
        mods: list[nn.Module] = []
        c = in_channels
        for _ in range(layers):
            mods += [nn.Conv2d(c, channels, 3, padding=1), nn.ReLU(inplace=True)]
            c = channels
        self.body = nn.Sequential(*mods)
        self.out = nn.Conv2d(c, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.radius = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (B, in_channels, H, W) -> logit corrections float (B, 1, H, W) (zero padding at
        the borders)."""
        return self.out(self.body(x))

    @torch.no_grad()
    def banded(self, x: torch.Tensor, rows: int = BAND_ROWS) -> torch.Tensor:
        """:meth:`forward` computed ``rows`` output rows at a time (with a halo of ``radius`` rows),
        identical to it; hidden activations then take ``rows x W x channels`` floats, not
        ``H x W x channels``. x: float (B, C, H, W) -> (B, 1, H, W)."""
        h = x.shape[-2]
        if h <= rows:
            return self(x)
        r = self.radius
        outs = []
        for r0 in range(0, h, rows):
            a, b = max(0, r0 - r), min(h, r0 + rows + r)
            y = self(x[..., a:b, :])
            outs.append(y[..., r0 - a:r0 - a + min(rows, h - r0), :])
        return torch.cat(outs, dim=-2)
