"""Query selection for the implicit decoder: which output pixels are decoded at a cascade step.

Modes (``DecodeMode.parse``):
- ``full``: every pixel.
- ``bbox[:P]``: the bounding box of the previous step's mask, padded by P output pixels (default 32).
- ``contour[:W]``: a band of W output pixels (default 16) on each side of the previous mask's contour
  (:mod:`sam_sr.inference.band`, the same band point-sampled training uses).
- ``strided:N``: every N-th pixel in y and x; then only the pixels whose four nearest decoded
  neighbours disagree (some above 0.5, some below) are decoded; the others take the neighbours'
  bilinearly interpolated value, which shares their side of 0.5. The SAM-SR thesis's strided mode.
- ``hierarchical[:N]``: strides N, N/2, ..., 1 (default N = 4): at each level only the new pixels
  whose four nearest decoded neighbours of the level above disagree are decoded, so cost follows the
  boundary length rather than the image area. The last step of a cascade of two or more is *seeded*:
  it decodes its stride-N grid only within :data:`SEED_BAND` px of the previous step's contour and
  keeps the previous step's value elsewhere, so its features are computed only near the contour. The
  last step re-decodes, at the output's own size, a mask the step before already decoded at that
  size, and its changes stay near that mask's contour (crm-full on the 3492 x 2328 aeroplane, full
  decoding: of the last step's 17,755 changed pixels, 301 lie more than 64 px from the previous
  contour; of the step before's 25,173, 2,082 do, which is why only the last step is seeded).
Pixels outside the decoded set take the value implied by the previous cascade step (its soft output,
or the coarse mask at the first step, resized to the output size).

``full``, ``bbox`` and ``contour`` know their pixels before decoding (:func:`select_queries`), so the
cascade can encode only the feature tiles those pixels read (:mod:`sam_sr.inference.sparse`); the
strided modes choose them while decoding, and a sparse feature map then computes its tiles as they
are read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..models.base import RefinerModel
from ..models.implicit_decoder import DEFAULT_CHUNK
from ..models.pixel_head import LazyPixelMap
from .band import contour_band
from .decode_mode import DecodeMode


#: A seeded ``hierarchical`` step decodes its stride-N grid within this many output px of the
#: previous step's contour (crm-full, aeroplane: agreement with ``full`` 99.65% at 64 px).
SEED_BAND = 64


@dataclass(frozen=True)
class Queries:
    """The output pixels a step decodes, known before decoding: ``kind`` ``"grid"`` (every pixel of
    ``rows`` x ``cols``) or ``"points"`` (pixels (rows[i], cols[i])); int64 index tensors on the CPU."""

    kind: str
    rows: torch.Tensor
    cols: torch.Tensor

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols) if self.kind == "grid" else len(self.rows)


def select_queries(previous: torch.Tensor, mode: DecodeMode) -> Queries | None:
    """The pixels ``mode`` decodes given the previous step's value float (H, W), or None for the
    modes that choose them while decoding (``strided``, ``hierarchical``)."""
    h, w = previous.shape[-2:]
    if mode.name == "full":
        return Queries("grid", torch.arange(h), torch.arange(w))
    if mode.name not in ("bbox", "contour"):
        return None
    prev_bin = (previous >= 0.5).cpu().numpy().astype(np.uint8)
    if mode.name == "bbox":
        ys, xs = np.nonzero(prev_bin.any(1))[0], np.nonzero(prev_bin.any(0))[0]
        if len(ys) == 0:
            return Queries("grid", torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
        p = mode.param
        return Queries("grid", torch.arange(max(0, ys.min() - p), min(h, ys.max() + p + 1)),
                       torch.arange(max(0, xs.min() - p), min(w, xs.max() + p + 1)))
    rr, cc = np.nonzero(contour_band(prev_bin, mode.param))
    return Queries("points", torch.from_numpy(rr.astype(np.int64)), torch.from_numpy(cc.astype(np.int64)))


class _Decoder:
    """Decodes pixels of one ``out_h x out_w`` output grid of one image (batch 1) through the refiner
    interface (:meth:`RefinerModel.logits_grid`, :meth:`RefinerModel.logits_at`)."""

    def __init__(self, model: RefinerModel, proj: torch.Tensor, out_hw: tuple[int, int],
                 bounds, chunk: int, previous: torch.Tensor | None = None,
                 pixel: torch.Tensor | None = None, margin: float = 0.0):
        self.model, self.proj, self.chunk = model, proj, chunk
        self.previous, self.pixel, self.margin = previous, pixel, margin
        self.h, self.w = out_hw
        y0, x0, y1, x1 = (float(v) for v in bounds)
        self.y0, self.x0 = y0, x0
        self.dy, self.dx = (y1 - y0) / self.h, (x1 - x0) / self.w
        self.count = 0

    def _coords(self, idx: torch.Tensor, origin: float, step: float) -> torch.Tensor:
        return origin + (idx.to(self.proj.device, torch.float32) + 0.5) * step

    def tiles(self, q: Queries) -> torch.Tensor:
        """The sparse feature map's tiles int64 (M, 2) that decoding ``q`` reads."""
        _, _, fh, fw = self.proj.shape
        ry = self.model.query_cells(self._coords(q.rows, self.y0, self.dy), fh)
        rx = self.model.query_cells(self._coords(q.cols, self.x0, self.dx), fw)
        if q.kind == "grid":
            return self.proj.tiles_of_grid(ry, rx)
        return self.proj.tiles_of_points(torch.stack([ry[0], ry[0], ry[1], ry[1]]),
                                         torch.stack([rx[0], rx[1], rx[0], rx[1]]))

    def _prefetch(self, q: Queries) -> None:
        """Compute a sparse feature map's tiles for ``q`` in one go (dense maps: nothing to do)."""
        if not isinstance(self.proj, torch.Tensor) and len(q):
            self.proj.ensure(self.tiles(q))

    def _read(self, at, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The previous mask and the pixel head's logits at the decoded pixels (``at(map)``)."""
        prev = at(self.previous).to(device) if self.previous is not None else None
        pixel = at(self.pixel).to(device) if self.pixel is not None else None
        return prev, pixel

    def grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Probabilities float (len(rows), len(cols)) at the outer product of pixel indices."""
        self.count += len(rows) * len(cols)
        self._prefetch(Queries("grid", rows, cols))
        ys, xs = self._coords(rows, self.y0, self.dy), self._coords(cols, self.x0, self.dx)
        prev, pixel = self._read(lambda t: t.grid(rows, cols) if isinstance(t, LazyPixelMap)
                                 else t[rows.to(t.device)][:, cols.to(t.device)], self.proj.device)
        logits = self.model.logits_grid(self.proj, ys, xs, (self.dy, self.dx), prev, pixel, self.chunk)[0]
        return self._probability(logits, prev)

    def points(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Probabilities float (N,) at pixels (rows[i], cols[i])."""
        self.count += len(rows)
        if len(rows) == 0:
            return torch.zeros(0, device=self.proj.device)
        self._prefetch(Queries("points", rows, cols))
        coord = torch.stack([self._coords(rows, self.y0, self.dy),
                             self._coords(cols, self.x0, self.dx)], dim=-1)
        cell = torch.tensor([self.dy, self.dx], device=self.proj.device)
        prev, pixel = self._read(lambda t: t.points(rows, cols) if isinstance(t, LazyPixelMap)
                                 else t[rows.to(t.device), cols.to(t.device)], self.proj.device)
        logits = self.model.logits_at(self.proj, coord[None], cell, prev, pixel, self.chunk)[0]
        return self._probability(logits, prev)

    def _probability(self, logits: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """Sigmoid of the final logits, then the confidence margin (keep ``prev`` where unsure)."""
        prob = torch.sigmoid(logits.float())
        if self.margin and prev is not None:
            prob = torch.where((prob - 0.5).abs() < self.margin, prev.to(prob), prob)
        return prob


def _levels(n: int, stride: int) -> torch.Tensor:
    """Pixel indices 0, stride, 2*stride, ... plus the last index n - 1."""
    idx = torch.arange(0, n, stride)
    return idx if idx[-1] == n - 1 else torch.cat([idx, torch.tensor([n - 1])])


def _refine_level(dec: _Decoder, out: torch.Tensor, known_r: torch.Tensor, known_c: torch.Tensor,
                  new_r: torch.Tensor, new_c: torch.Tensor, fresh: torch.Tensor | None = None) -> None:
    """Fill ``out`` at the grid new_r x new_c from the known grid known_r x known_c (a sub-grid of
    it): pixels whose four enclosing known neighbours disagree (some >= 0.5, some below) are decoded;
    the others take the neighbours' bilinear interpolation. With ``fresh`` (bool (H, W): the pixels
    this step has decoded or interpolated, updated in place), a pixel whose neighbours agree is
    interpolated only when all four are fresh, and otherwise keeps its value in ``out`` (the previous
    step's). ``out`` is float (H, W) on the decoder's device, modified in place."""
    dev = out.device
    kr, kc, nr, nc = (t.to(dev) for t in (known_r, known_c, new_r, new_c))
    i1 = torch.searchsorted(kr, nr).clamp_(1, len(kr) - 1) if len(kr) > 1 else torch.zeros_like(nr)
    j1 = torch.searchsorted(kc, nc).clamp_(1, len(kc) - 1) if len(kc) > 1 else torch.zeros_like(nc)
    i0 = (i1 - 1).clamp_(min=0)
    j0 = (j1 - 1).clamp_(min=0)
    r0, r1, c0, c1 = kr[i0], kr[i1], kc[j0], kc[j1]
    v00 = out[r0][:, c0]
    v01 = out[r0][:, c1]
    v10 = out[r1][:, c0]
    v11 = out[r1][:, c1]
    b = [(v >= 0.5) for v in (v00, v01, v10, v11)]
    agree = (b[0] == b[1]) & (b[0] == b[2]) & (b[0] == b[3])
    rr = nr[:, None].expand(-1, len(nc))
    cc = nc[None, :].expand(len(nr), -1)
    known = torch.zeros(out.shape, dtype=torch.bool, device=dev)
    known[kr[:, None], kc[None, :]] = True
    new = ~known[rr, cc]
    todo = ~agree & new
    fill = agree & new
    if fresh is not None:
        fill &= fresh[r0][:, c0] & fresh[r0][:, c1] & fresh[r1][:, c0] & fresh[r1][:, c1]
        fresh[rr[fill | todo], cc[fill | todo]] = True
    wy = ((nr - r0).float() / (r1 - r0).clamp(min=1).float())[:, None]
    wx = ((nc - c0).float() / (c1 - c0).clamp(min=1).float())[None, :]
    interp = (v00 * (1 - wy) * (1 - wx) + v01 * (1 - wy) * wx + v10 * wy * (1 - wx) + v11 * wy * wx)
    out[rr[fill], cc[fill]] = interp[fill]
    out[rr[todo], cc[todo]] = dec.points(rr[todo], cc[todo])


def decode_step(model: RefinerModel, proj: Any, out_hw: tuple[int, int], bounds,
                previous: torch.Tensor, mode: DecodeMode, chunk: int = DEFAULT_CHUNK,
                pixel: torch.Tensor | None = None, margin: float = 0.0,
                queries: Queries | None = None, seeded: bool = False) -> tuple[torch.Tensor, int]:
    """Decode one cascade step's output with a query-selection mode.

    Args:
        model, proj: the refiner and its features for this step (:meth:`RefinerModel.encode`),
            float (1, K, h, w), or a :class:`~sam_sr.inference.sparse.SparseFeatures` of them.
        out_hw: output size (H, W) in pixels.
        bounds: the output's outer edges (y0, x0, y1, x1) in the feature map's normalised frame.
        previous: float (H, W) in [0, 1], the value implied by the previous cascade step (also the
            mask the model's mask skip reads).
        mode: a :class:`DecodeMode`.
        pixel: optional float (H, W) logits added at every decoded point (the model's pixel head),
            or a :class:`~sam_sr.models.pixel_head.LazyPixelMap` computing them where read.
        margin: decoded probabilities within this of 0.5 keep ``previous`` (0 = off).
        queries: ``select_queries(previous, mode)`` when the caller has it already.
        seeded: for ``hierarchical``: ``previous`` is the previous cascade step's output at this
            step's size, so only the stride-N grid pixels within :data:`SEED_BAND` px of its contour
            are decoded, and the pixels whose neighbours were not all decoded keep ``previous`` (see
            :mod:`sam_sr.inference.query`).

    Returns:
        (probabilities float32 (H, W) in [0, 1], number of decoded query points).
    """
    h, w = out_hw
    dec = _Decoder(model, proj, out_hw, bounds, chunk, previous, pixel, margin)
    dev = proj.device
    q = queries if queries is not None else select_queries(previous, mode)
    if mode.name == "full":
        return dec.grid(q.rows, q.cols), dec.count
    out = previous.to(dev, torch.float32).clone()
    if q is not None:
        if len(q) == 0:
            return out, 0
        if q.kind == "grid":
            out[q.rows.to(dev)[:, None], q.cols.to(dev)[None, :]] = dec.grid(q.rows, q.cols)
        else:
            out[q.rows.to(dev), q.cols.to(dev)] = dec.points(q.rows, q.cols)
        return out, dec.count
    # strided / hierarchical: start from the stride-N grid (all of it, or near the contour when seeded)
    n = mode.param
    kr, kc = _levels(h, n), _levels(w, n)
    fresh = None
    if seeded and mode.name == "hierarchical":
        grid_prev = previous[kr.to(previous.device)][:, kc.to(previous.device)]
        bi, bj = torch.nonzero(contour_band(grid_prev, max(1, SEED_BAND // n)).cpu(), as_tuple=True)
        r, c = kr[bi], kc[bj]
        out[r.to(dev), c.to(dev)] = dec.points(r, c)
        fresh = torch.zeros(out.shape, dtype=torch.bool, device=dev)
        fresh[r.to(dev), c.to(dev)] = True
    else:
        out[kr.to(dev)[:, None], kc.to(dev)[None, :]] = dec.grid(kr, kc)
    strides = [1] if mode.name == "strided" else [n >> i for i in range(1, n.bit_length())]
    for s in strides:
        nr, nc = _levels(h, s), _levels(w, s)
        _refine_level(dec, out, kr, kc, nr, nc, fresh)
        kr, kc = nr, nc
    return out, dec.count


def plan_tiles(model: RefinerModel, features: Any, out_hw: tuple[int, int], bounds,
               queries: Queries) -> torch.Tensor:
    """The tiles int64 (M, 2) of a :class:`~sam_sr.inference.sparse.SparseFeatures` that decoding
    ``queries`` at ``out_hw`` (output edges ``bounds``, as for :func:`decode_step`) reads."""
    return _Decoder(model, features, out_hw, bounds, DEFAULT_CHUNK).tiles(queries)
