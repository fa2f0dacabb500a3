"""Multi-scale feature fusion of CRM: 1x1 projections, upsampling to stride 2, 3x3 fusion conv."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int, dropout: float = 0.0) -> nn.Sequential:
    """Conv(k x k, padding k//2, no bias) + BatchNorm + ReLU (+ Dropout2d)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                               nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class FeatureFusion(nn.Module):
    """Project each encoder map with a 1x1 conv, upsample (bilinear) to the size of the first
    (finest, stride-2) map, concatenate and fuse with a 3x3 conv.

    CRM uses branches 64->64, 256->64, 1024->128 with dropout 0.5 and a 256->256 fusion conv.

    Args:
        in_channels: channels of each encoder map, finest first.
        branch_channels: output channels of each 1x1 branch.
        out_channels: channels of the fused map.
        dropout: Dropout2d probability after each branch (CRM: 0.5).
    """

    def __init__(self, in_channels: Sequence[int], branch_channels: Sequence[int],
                 out_channels: int, dropout: float = 0.0):
        super().__init__()
        if len(in_channels) != len(branch_channels):
            raise ValueError("in_channels and branch_channels must have the same length")
        self.branches = nn.ModuleList(conv_bn_relu(ci, co, 1, dropout)
                                      for ci, co in zip(in_channels, branch_channels))
        self.fuse = conv_bn_relu(sum(branch_channels), out_channels, 3)
        self.out_channels = out_channels

    def project(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Branch outputs upsampled to the finest map and concatenated: (B, sum(branch), h, w)."""
        size = feats[0].shape[-2:]
        outs = []
        for f, branch in zip(feats, self.branches):
            y = branch(f)
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            outs.append(y)
        return torch.cat(outs, dim=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """feats: encoder maps finest first. Returns float (B, out_channels, h, w) at the finest stride."""
        return self.fuse(self.project(feats))

    def forward_patched(self, feats: Sequence[torch.Tensor], patches: int,
                        post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Same result as ``post(self(feats))`` (bit for bit in the cases measured, fp32 and bf16, where
        the branch maps' strides are powers of two; in general to float rounding), computed over
        ``patches`` horizontal bands of the output with the one-row halo the 3x3 fusion conv needs.

        Only one band of the upsampled, concatenated branch maps and of the fused map exists at a time;
        the output is written band by band into a preallocated map. ``post`` (e.g. the implicit
        decoder's per-cell projection) is applied per band too, so with it the full fused map is never
        allocated. Requires eval mode (batch norm with running statistics; dropout off).

        Returns:
            float (B, C_post, h, w), C_post = out_channels without ``post``.
        """
        if self.training:
            raise RuntimeError("forward_patched needs eval mode (batch-norm statistics of a band differ)")
        h, w = feats[0].shape[-2:]
        branch = [b(f) for f, b in zip(feats, self.branches)]  # native resolution: small maps
        out = None
        bounds = torch.linspace(0, h, max(1, min(patches, h)) + 1).round().long().tolist()
        for r0, r1 in zip(bounds[:-1], bounds[1:]):
            if r1 <= r0:
                continue
            a, b = max(0, r0 - 1), min(h, r1 + 1)  # halo of one row for the 3x3 conv
            cat = torch.cat([_bilinear_rows(y, (h, w), a, b) for y in branch], dim=1)
            y = self.fuse[0](cat)   # conv (zero padding: a band edge that is the image edge stays exact)
            y = y[:, :, r0 - a: y.shape[2] - (b - r1)]  # drop halo rows
            for layer in self.fuse[1:]:
                y = layer(y)
            if post is not None:
                y = post(y)
            if out is None:
                out = y.new_empty(y.shape[0], y.shape[1], h, w)
            out[:, :, r0:r1] = y
            del cat, y
        return out


def _source_index(n_out: int, n_in: int, start: int, stop: int, device) -> tuple:
    """Indices and weights of PyTorch's bilinear (align_corners=False) resampling along one axis."""
    i = torch.arange(start, stop, device=device, dtype=torch.float32)
    src = ((i + 0.5) * (n_in / n_out) - 0.5).clamp_(min=0)
    i0 = src.floor().long().clamp_(max=n_in - 1)
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    return i0, i1, (src - i0.float())


def _bilinear_rows(x: torch.Tensor, size: tuple[int, int], r0: int, r1: int) -> torch.Tensor:
    """Rows ``r0:r1`` of ``F.interpolate(x, size, mode="bilinear", align_corners=False)``.

    Where the output has a power-of-two multiple of ``x``'s rows (the fusion's stride-4 and stride-8
    maps over a padded input), this is ``F.interpolate`` over the source rows the band reads, with one
    row of margin each side, cropped: the same source positions and weights in floating point, since
    dividing by a power of two is exact (bit-equal to the whole map's rows; tests/models/test_fusion.py).
    Measured 2026-12-07 on this 2-core CPU, the shipped crm-full's ``encode`` in 8 bands at 1024 x 1536
    under bf16 autocast: 569 -> 311 ms (one piece: 308-360 ms). Other ratios gather rows by index.
    """
    h, w = size
    if x.shape[-2:] == (h, w):
        return x[:, :, r0:r1]
    hs = x.shape[-2]
    f = h // hs
    if f * hs == h and f & (f - 1) == 0:
        s0, s1 = max(0, r0 // f - 1), min(hs, (r1 - 1) // f + 2)
        y = F.interpolate(x[:, :, s0:s1], size=((s1 - s0) * f, w), mode="bilinear", align_corners=False)
        return y[:, :, r0 - s0 * f:r1 - s0 * f]
    y0, y1, ly = _source_index(h, x.shape[-2], r0, r1, x.device)
    x0, x1, lx = _source_index(w, x.shape[-1], 0, w, x.device)
    ly = ly.to(x.dtype).view(1, 1, -1, 1)
    lx = lx.to(x.dtype).view(1, 1, 1, -1)
    rows = x.index_select(2, y0) * (1 - ly) + x.index_select(2, y1) * ly
    return rows.index_select(3, x0) * (1 - lx) + rows.index_select(3, x1) * lx
