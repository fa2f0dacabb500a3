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

from ..errors import SamSrError

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


def distinct_tiles(ty: torch.Tensor, tx: torch.Tensor, ntx: int) -> torch.Tensor:
    """Distinct (ty, tx) tile pairs int64 (M, 2), in row-major order, of equal-length int64 tile rows
    and columns (``tx`` < ``ntx``, the tiles per row). A 1-D unique of flat indices: the same pairs as
    ``unique(dim=0)``, which compares rows one by one (60,000 points: 2 ms against 61 ms)."""
    flat = torch.unique(ty * ntx + tx)
    return torch.stack([flat // ntx, flat % ntx], 1)


class LazyPixelMap:
    """A pixel head's logits over one (H, W) output, computed tile by tile when first read.

    Query selection (``contour``, ``bbox``) decodes a small part of a 4k-6k output; the pixel head
    then only needs the tiles that hold decoded pixels. Each tile is computed from the inputs with a
    halo of ``head.radius`` pixels (clipped only at the output's own border, where the head zero-pads
    anyway), so every value equals the whole-map :meth:`PixelHead.forward` up to float rounding.
    The tiles one read needs are computed together, those of equal window size as one batch.

    Args:
        fn: ``fn(boxes) -> float (N, 1, y1 - y0, x1 - x0)``: the head's logits over N windows
            ``(y0, y1, x0, x1)`` of the inputs, all of one size (each window's borders are its own
            zero padding).
        out_hw: output size (H, W) in pixels.
        radius: the head's receptive-field radius in pixels (its number of 3x3 layers).
        tile: tile side in pixels (> 0).
        device: where the logits are kept.

    Raises:
        SamSrError: a tile side below 1.
    """

    #: Window pixels computed per batch.
    BATCH_PIXELS = 1 << 20

    def __init__(self, fn, out_hw: tuple[int, int], radius: int, tile: int = 256, device=None):
        if int(tile) < 1:
            raise SamSrError(f"pixel-head tile must be >= 1 pixel, got {tile!r}")
        self.fn, self.radius, self.tile = fn, int(radius), int(tile)
        self.h, self.w = out_hw
        self.values = torch.zeros(self.h, self.w, device=device)
        self.done = torch.zeros(-(-self.h // self.tile), -(-self.w // self.tile), dtype=torch.bool)
        self.computed_pixels = 0   # output pixels in the tiles computed so far

    def _compute(self, tiles: torch.Tensor) -> None:
        """Compute the (ty, tx) tiles of ``tiles`` (int64 (N, 2)) not computed yet."""
        t, r = self.tile, self.radius
        groups: dict[tuple[int, int], list] = {}
        for ty, tx in tiles.tolist():
            if self.done[ty, tx]:
                continue
            y0, x0 = ty * t, tx * t
            y1, x1 = min(self.h, y0 + t), min(self.w, x0 + t)
            a, b, c, d = max(0, y0 - r), min(self.h, y1 + r), max(0, x0 - r), min(self.w, x1 + r)
            groups.setdefault((b - a, d - c), []).append(((a, b, c, d), (y0, y1, x0, x1)))
            self.done[ty, tx] = True
        for (wh, ww), items in groups.items():
            per = max(1, self.BATCH_PIXELS // (wh * ww))
            for i in range(0, len(items), per):
                part = items[i:i + per]
                out = self.fn([box for box, _ in part])
                for k, ((a, _, c, _), (y0, y1, x0, x1)) in enumerate(part):
                    self.values[y0:y1, x0:x1] = out[k, 0, y0 - a:y1 - a, x0 - c:x1 - c].to(self.values)
                    self.computed_pixels += (y1 - y0) * (x1 - x0)

    def points(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Logits float (N,) at pixels (rows[i], cols[i]) (int64 (N,) each)."""
        rows, cols = rows.cpu(), cols.cpu()
        if len(rows):
            self._compute(distinct_tiles(rows // self.tile, cols // self.tile, self.done.shape[1]))
        return self.values[rows.to(self.values.device), cols.to(self.values.device)]

    def grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Logits float (len(rows), len(cols)) at the outer product of pixel indices."""
        rows, cols = rows.cpu(), cols.cpu()
        if len(rows) and len(cols):
            ty, tx = torch.unique(rows // self.tile), torch.unique(cols // self.tile)
            self._compute(torch.cartesian_prod(ty, tx).reshape(-1, 2))
        dev = self.values.device
        return self.values[rows.to(dev)][:, cols.to(dev)]
