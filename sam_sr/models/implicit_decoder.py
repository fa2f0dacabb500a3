"""LIIF-style implicit decoder (Chen et al., CVPR 2021, "Learning Continuous Image Representation with
Local Implicit Image Function"), as used by CRM (Shen et al., CVPR 2022).

For each query point the four nearest feature cells (offsets of +-half a cell in y and x) are read
(nearest neighbour), and an MLP maps [feature, relative coordinate x feature size, absolute coordinate,
cell size x feature size] to a logit. The four logits are blended with LIIF's local-ensemble area
weights (each area swapped with its diagonal opposite, then normalised).

Implementation note: the MLP's first layer is linear in its input, so its feature part is applied once
per feature cell as a 1x1 convolution (``prepare``) and only ``hidden[0]`` channels are gathered per
query. This is the same function as concatenating the full feature vector, at a fraction of the memory.

The projected features (``proj``) are a float tensor (B, K, h, w), or a sparse feature map computed
only where it is read (:class:`sam_sr.inference.sparse.SparseFeatures`): any object with ``shape``
(B, K, h, w), ``dtype``, ``device``, ``points(iy, ix)`` -> (B, N, K) for int64 (B, N) cell indices
and ``grid(iy, ix)`` -> (B, R, C, K) for int64 (R,) rows and (C,) columns. :meth:`ImplicitDecoder.cells`
names the cells a query reads.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: Query points decoded per chunk (CRM uses 802,816; memory per chunk ~ chunk x hidden[0] x 4 x 4 bytes).
DEFAULT_CHUNK = 262_144


def query_grid(out_h: int, out_w: int, bounds: Sequence[float] = (-1.0, -1.0, 1.0, 1.0),
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates of an ``out_h x out_w`` grid spanning ``bounds``.

    Args:
        out_h, out_w: output size in pixels.
        bounds: ``(y0, x0, y1, x1)`` of the output's outer edges in the feature map's normalised
            frame, where the feature map spans [-1, 1] in both axes.

    Returns:
        coord: float32 (out_h * out_w, 2), (y, x) pixel centres, row-major.
        cell: float32 (2,), the size of one output pixel (y, x) in the same frame.
    """
    y0, x0, y1, x1 = (float(b) for b in bounds)
    ys = y0 + (torch.arange(out_h, device=device, dtype=torch.float32) + 0.5) * (y1 - y0) / out_h
    xs = x0 + (torch.arange(out_w, device=device, dtype=torch.float32) + 0.5) * (x1 - x0) / out_w
    coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    cell = torch.tensor([(y1 - y0) / out_h, (x1 - x0) / out_w], device=device, dtype=torch.float32)
    return coord, cell


class ImplicitDecoder(nn.Module):
    """Implicit decoder: feature map + query coordinates -> logits.

    Args:
        in_channels: channels C of the fused feature map.
        hidden: hidden widths of the MLP (CRM: 32, 32, 32, 32). Output is 1 logit.
    """

    def __init__(self, in_channels: int, hidden: Sequence[int] = (32, 32, 32, 32)):
        super().__init__()
        hidden = list(hidden)
        self.feat_proj = nn.Conv2d(in_channels, hidden[0], 1, bias=True)
        self.coord_proj = nn.Linear(6, hidden[0], bias=False)
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.ReLU(inplace=True), nn.Linear(a, b)]
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden[-1], 1)]
        self.mlp = nn.Sequential(*layers)

    def prepare(self, feat: torch.Tensor) -> torch.Tensor:
        """feat: float (B, C, h, w) -> first-layer feature projection (B, hidden[0], h, w)."""
        return self.feat_proj(feat)

    def query(self, proj: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Decode logits at query points.

        Args:
            proj: output of :meth:`prepare`, float (B, K, h, w).
            coord: float (B, N, 2) or (N, 2), (y, x) in [-1, 1] of the feature map's frame.
            cell: float (2,) or (B, 2): one output pixel's size (y, x) in that frame.

        Returns:
            float (B, N) logits.
        """
        b, k, h, w = proj.shape
        if coord.dim() == 2:
            coord = coord.unsqueeze(0).expand(b, -1, -1)
        n = coord.shape[1]
        cell = cell.to(coord).reshape(-1, 1, 2).expand(b, n, 2)
        dense = isinstance(proj, torch.Tensor)
        flat = proj.flatten(2).transpose(1, 2) if dense else None  # (B, h*w, K)
        size = torch.tensor([h, w], device=coord.device, dtype=coord.dtype)
        cy, cx = coord[..., 0], coord[..., 1]
        preds, areas = [], []
        for dy in (-1.0, 1.0):
            for dx in (-1.0, 1.0):
                iy = torch.floor((cy + dy / h + 1e-6 + 1) * 0.5 * h).clamp_(0, h - 1)
                ix = torch.floor((cx + dx / w + 1e-6 + 1) * 0.5 * w).clamp_(0, w - 1)
                rel_y = (cy - (-1 + (2 * iy + 1) / h)) * h
                rel_x = (cx - (-1 + (2 * ix + 1) / w)) * w
                if dense:
                    feat = torch.gather(flat, 1, (iy * w + ix).long().unsqueeze(-1).expand(-1, -1, k))
                else:
                    feat = proj.points(iy.long(), ix.long())
                geo = torch.cat([torch.stack([rel_y, rel_x], -1), coord, cell * size], dim=-1)
                hid = feat + self.coord_proj(geo)
                preds.append(self.mlp(hid).squeeze(-1))
                areas.append((rel_y * rel_x).abs() + 1e-9)
        total = areas[0] + areas[1] + areas[2] + areas[3]
        # local ensemble: each prediction is weighted by the area of its diagonal opposite
        out = (preds[0] * areas[3] + preds[1] * areas[2] + preds[2] * areas[1] + preds[3] * areas[0])
        return out / total

    def _axis(self, c: torch.Tensor, d: float, n: int):
        """Nearest cell index and relative coordinate (x feature size) along one axis."""
        i = torch.floor((c + d / n + 1e-6 + 1) * 0.5 * n).clamp_(0, n - 1)
        return i.long(), (c - (-1 + (2 * i + 1) / n)) * n

    def cells(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """The feature cells a query reads along one axis: int64 (2, N), the cells before and after
        coordinates ``c`` (N,) (in the [-1, 1] frame of an axis of ``n`` cells). A point
        (y, x) reads the four cells of ``cells(y, h)`` x ``cells(x, w)``; a grid, all of the
        rows' cells x all of the columns'."""
        return torch.stack([self._axis(c, d, n)[0] for d in (-1.0, 1.0)])

    def query_grid(self, proj: torch.Tensor, out_h: int, out_w: int,
                   bounds: Sequence[float] = (-1.0, -1.0, 1.0, 1.0),
                   chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Decode a full ``out_h x out_w`` pixel grid spanning ``bounds`` (see :func:`query_grid`).

        Returns:
            float (B, out_h, out_w) logits; the same function as :meth:`query` on the grid's points.
        """
        y0, x0, y1, x1 = (float(v) for v in bounds)
        ys = y0 + (torch.arange(out_h, device=proj.device, dtype=torch.float32) + 0.5) * (y1 - y0) / out_h
        xs = x0 + (torch.arange(out_w, device=proj.device, dtype=torch.float32) + 0.5) * (x1 - x0) / out_w
        return self.query_rows_cols(proj, ys, xs, ((y1 - y0) / out_h, (x1 - x0) / out_w), chunk)

    def query_rows_cols(self, proj: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                        cell: Sequence[float], chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Decode the outer product of row coordinates ``ys`` (R,) and column coordinates ``xs`` (C,).

        Computed separably: on such a grid the nearest-cell index and relative coordinate of a point
        depend only on its row (y) or its column (x), so features are read with two ``index_select``
        calls and the coordinate terms of the MLP's first layer are a row term plus a column term.
        Rows are decoded ``chunk // C`` at a time.

        Args:
            cell: (cell_y, cell_x), one output pixel's size in the normalised frame.

        Returns:
            float (B, R, C) logits.
        """
        b, k, h, w = proj.shape
        dt = proj.dtype
        cell_y, cell_x = float(cell[0]) * h, float(cell[1]) * w
        wgt = self.coord_proj.weight.float()  # (K, 6): rel_y, rel_x, abs_y, abs_x, cell_y, cell_x
        const = wgt[:, 4] * cell_y + wgt[:, 5] * cell_x
        cols = []
        for dx in (-1.0, 1.0):
            ix, rx = self._axis(xs, dx, w)
            cols.append((ix, rx, rx[:, None] * wgt[:, 1] + xs[:, None] * wgt[:, 3]))
        rows_per = max(1, chunk // max(1, len(xs)))
        outs = []
        for r0 in range(0, len(ys), rows_per):
            yc = ys[r0:r0 + rows_per]
            preds, areas = [], []
            for dy in (-1.0, 1.0):
                iy, ry = self._axis(yc, dy, h)
                row_feat = proj.index_select(2, iy) if isinstance(proj, torch.Tensor) else None  # (B, K, r, w)
                row_term = ry[:, None] * wgt[:, 0] + yc[:, None] * wgt[:, 2] + const  # (r, K)
                for ix, rx, col_term in cols:
                    feat = (row_feat.index_select(3, ix).permute(0, 2, 3, 1) if row_feat is not None
                            else proj.grid(iy, ix))  # (B, r, C, K)
                    hid = feat + (row_term[:, None, :] + col_term[None, :, :]).to(dt)
                    preds.append(self.mlp(hid).squeeze(-1))
                    areas.append((ry[:, None] * rx[None, :]).abs().to(dt) + 1e-9)
            total = areas[0] + areas[1] + areas[2] + areas[3]
            outs.append((preds[0] * areas[3] + preds[1] * areas[2] + preds[2] * areas[1]
                         + preds[3] * areas[0]) / total)
        return torch.cat(outs, dim=1)

    def query_chunked(self, proj: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
                      chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """:meth:`query` over ``chunk`` points at a time; bounds decoder memory. Returns (B, N)."""
        n = coord.shape[-2]
        if n <= chunk:
            return self.query(proj, coord, cell)
        outs = [self.query(proj, coord[..., i:i + chunk, :], cell) for i in range(0, n, chunk)]
        return torch.cat(outs, dim=1)
