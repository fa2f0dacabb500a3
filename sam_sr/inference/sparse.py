"""Sparse encoding: a cascade step's decoder features computed only in the tiles its queries read.

At 2k-6k the decoded pixels (the ``contour`` band) are a small share of the image, but the encoder
and fusion cost follow the area they run over. :class:`SparseFeatures` stands in for the step's
feature map (:meth:`RefinerModel.encode` of the padded input, float (1, K, hp/2, wp/2)): the frame is
cut into ``tile`` px square tiles; a tile is computed the first time a query reads one of its cells
(:meth:`SparseFeatures.ensure` plans all of a decode's tiles at once). The tiles to compute are
grouped into rectangles (:func:`rectangles`): horizontal runs of adjacent tiles, then greedily merged
while one window over the merged rectangle costs less than the separate windows (their context
overlaps; the cost is the window's pixels). Each rectangle's window is given the model's
:attr:`~sam_sr.models.base.RefinerModel.context` px of input on every side (or the frame's edge,
where the dense path zero-pads too) and encoded with
:meth:`~sam_sr.models.base.RefinerModel.encode_window`; windows of equal shape run as one batch.
Every computed cell equals the dense map's up to float rounding (the context holds the whole
receptive field; tested in tests/inference/test_sparse.py).

Computed tiles are kept in an atlas (S, t, t, K) (t = tile / 2 cells), so the memory follows the
band too; the decoder reads it through ``points`` and ``grid`` (see
:mod:`sam_sr.models.implicit_decoder`).
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..models.base import ALIGN, RefinerModel
from ..models.pixel_head import distinct_tiles
from .padding import PadGeometry, padded_window

#: Window pixels encoded per batch (bounds the encoder's activation memory: about 0.5 GB per
#: million window pixels for the shipped ResNet-18, its fusion included). Also the largest merged window
#: (:func:`rectangles`) unless a single tile's window is larger.
BATCH_PIXELS = 1 << 20


def _window_area(r: np.ndarray, tile: int, context: int, hp: int, wp: int) -> np.ndarray:
    """Frame pixels of the windows of rectangles ``r`` int64 (N, 4) (ty0, ty1, tx0, tx1)."""
    hgt = np.minimum(hp, r[:, 1] * tile + context) - np.maximum(0, r[:, 0] * tile - context)
    wid = np.minimum(wp, r[:, 3] * tile + context) - np.maximum(0, r[:, 2] * tile - context)
    return hgt * wid


# The encoding cost of a rectangle is its window's pixel count. A profile weighting each part by the
# shipped ResNet-18's multiply-adds per pixel (stem + layer1 over the window 12k, layer2 over 96 px 8k,
# layer3 over 64 px 32k, fusion over 8 px 38k) merged less and took 17.2 s of CPU time against 13.7 s
# on the aeroplane (2 CPU cores, median of 3), so window pixels alone are the cost.


def rectangles(tiles: torch.Tensor, tile: int, context: int, hp: int, wp: int,
               max_pixels: int = BATCH_PIXELS) -> list[tuple[int, int, int, int]]:
    """Rectangles of tiles (ty0, ty1, tx0, tx1), ends exclusive, that cover ``tiles`` at a low
    encoding cost (its window's pixels; a rectangle's window is the rectangle plus ``context`` px,
    clipped to the hp x wp frame).

    Starts from the horizontal runs of adjacent tiles and repeatedly merges the pair of rectangles
    whose bounding rectangle saves the most cost against the two (their windows overlap), while any
    merge saves cost and the merged window has at most ``max_pixels`` pixels. A merged rectangle
    may hold tiles not asked for (they are computed, not stored).

    Args:
        tiles: int64 (M, 2) distinct (ty, tx).
        tile, context, hp, wp: tile side, context and frame size in frame pixels.
    """
    rects: list[list[int]] = []
    for ty, tx in sorted(map(tuple, tiles.tolist())):
        if rects and rects[-1][0] == ty and rects[-1][3] == tx:
            rects[-1][3] = tx + 1
        else:
            rects.append([ty, ty + 1, tx, tx + 1])
    r = np.array(rects, dtype=np.int64).reshape(-1, 4)
    area = _window_area(r, tile, context, hp, wp)
    while len(r) > 1:
        u = np.stack([np.minimum(r[:, None, 0], r[None, :, 0]), np.maximum(r[:, None, 1], r[None, :, 1]),
                      np.minimum(r[:, None, 2], r[None, :, 2]), np.maximum(r[:, None, 3], r[None, :, 3])], -1)
        ua = _window_area(u.reshape(-1, 4), tile, context, hp, wp).reshape(len(r), len(r))
        gain = area[:, None] + area[None, :] - ua
        gain[ua > max_pixels] = 0
        np.fill_diagonal(gain, 0)
        i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if gain[i, j] <= 0:
            break
        keep = np.ones(len(r), bool)
        keep[[i, j]] = False
        r = np.concatenate([r[keep], u[i, j][None]])
        area = np.concatenate([area[keep], ua[i, j][None]])
    return [tuple(int(v) for v in row) for row in r]


class SparseFeatures:
    """A model's decoder features of one padded cascade-step input, computed tile by tile where read.

    Args:
        model: the refiner (its :attr:`~RefinerModel.context` must not be None).
        inputs: the step's unpadded inputs: image float32 (1, 3, h, w), mask float32 (1, 1, h, w) and
            the extra channels (1, C, h, w) or None.
        geometry: the padded frame (:func:`sam_sr.inference.padding.pad_geometry`).
        tile: tile side in frame pixels (a positive multiple of :data:`ALIGN`).
        channels_last: run the encoder on channels-last windows (same values; faster on CPU).
        autocast: a context manager the encoder runs under (e.g. bfloat16 autocast), or None.

    Attributes:
        shape: (1, K, hp / 2, wp / 2), as the dense map's. dtype, device: the features'.
        encoded_pixels: window pixels encoded so far (frame pixels, context included).
        tiles_computed: tiles computed so far.

    Raises:
        ValueError: a model without exact window encoding, or a bad tile size.
    """

    def __init__(self, model: RefinerModel, inputs: Sequence[torch.Tensor | None], geometry: PadGeometry,
                 tile: int, channels_last: bool = False, autocast=None):
        if model.context is None:
            raise ValueError(f"{type(model).__name__} cannot encode windows exactly (context is None)")
        if tile < ALIGN or tile % ALIGN:
            raise ValueError(f"sparse tile must be a positive multiple of {ALIGN} px, got {tile}")
        self.model, self.inputs, self.g, self.tile = model, list(inputs), geometry, int(tile)
        self.context = int(model.context)
        self.channels_last = channels_last
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.t = self.tile // 2                                    # cells per tile side
        self.h, self.w = geometry.hp // 2, geometry.wp // 2        # feature map size in cells
        self.nty, self.ntx = -(-self.h // self.t), -(-self.w // self.t)
        self.k = model.decoder.feat_proj.out_channels
        device = inputs[0].device
        self.shape = (1, self.k, self.h, self.w)
        self.device = device
        self.dtype = torch.float32
        self.slot = torch.full((self.nty, self.ntx), -1, dtype=torch.long, device=device)
        self._parts: list[torch.Tensor] = []      # (n * t * t, K) per computed batch
        self._atlas: torch.Tensor | None = None   # their concatenation
        self._store = None                        # (block, first slot, wanted tiles) while ensure() runs
        self.encoded_pixels = 0
        self.tiles_computed = 0

    # ---- planning ----------------------------------------------------------------------------------

    def tiles_of_points(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Distinct tiles int64 (M, 2) holding cells (rows[i], cols[i]) (int64 (..., N) each)."""
        return distinct_tiles(rows.reshape(-1) // self.t, cols.reshape(-1) // self.t, self.ntx)

    def tiles_of_grid(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Distinct tiles int64 (M, 2) holding the cells rows x cols (int64 each)."""
        ty, tx = torch.unique(rows.reshape(-1) // self.t), torch.unique(cols.reshape(-1) // self.t)
        return torch.cartesian_prod(ty, tx).reshape(-1, 2)

    def windows(self, tiles: torch.Tensor) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
        """The windows that compute ``tiles``: ((y0, y1, x0, x1) window, (y0, y1, x0, x1) core), frame
        pixels, one per rectangle of tiles (:func:`rectangles`)."""
        T, c, g = self.tile, self.context, self.g
        out = []
        for ty0, ty1, tx0, tx1 in rectangles(tiles, T, c, g.hp, g.wp):
            cy0, cy1 = ty0 * T, min(g.hp, ty1 * T)
            cx0, cx1 = tx0 * T, min(g.wp, tx1 * T)
            out.append(((max(0, cy0 - c), min(g.hp, cy1 + c), max(0, cx0 - c), min(g.wp, cx1 + c)),
                        (cy0, cy1, cx0, cx1)))
        return out

    def window_pixels(self, tiles: torch.Tensor) -> int:
        """Frame pixels the windows computing ``tiles`` would encode (0 for tiles computed already)."""
        missing = self._missing(tiles)
        return sum((y1 - y0) * (x1 - x0) for (y0, y1, x0, x1), _ in self.windows(missing))

    # ---- computing ---------------------------------------------------------------------------------

    def _missing(self, tiles: torch.Tensor) -> torch.Tensor:
        if len(tiles) == 0:
            return tiles
        tiles = tiles.to(self.slot.device)
        return tiles[self.slot[tiles[:, 0], tiles[:, 1]] < 0].cpu()

    @torch.no_grad()
    def ensure(self, tiles: torch.Tensor) -> None:
        """Compute the tiles of ``tiles`` (int64 (M, 2)) not computed yet, batched by window shape.

        Only those tiles are stored (a merged rectangle's other tiles are computed but dropped), in one
        new block of the atlas allocated up front."""
        missing = self._missing(tiles)
        if len(missing) == 0:
            return
        t = self.t
        start = self.tiles_computed
        self.slot[missing[:, 0], missing[:, 1]] = torch.arange(start, start + len(missing), device=self.slot.device)
        block = torch.empty(len(missing) * t * t, self.k, device=self.device)
        self._store = (block, start, {tuple(v) for v in missing.tolist()})
        groups: dict[tuple, list] = {}
        for win, core in self.windows(missing):
            y0, y1, x0, x1 = win
            rel = (core[0] - y0, core[1] - y0, core[2] - x0, core[3] - x0)
            groups.setdefault((y1 - y0, x1 - x0, rel), []).append((win, core))
        for (wh, ww, rel), items in groups.items():
            per = max(1, BATCH_PIXELS // (wh * ww))
            for i in range(0, len(items), per):
                self._encode(items[i:i + per], rel)
        self._store = None
        self.tiles_computed += len(missing)
        self._parts.append(block)
        self._atlas = None

    def _encode(self, items: list, rel: tuple[int, int, int, int]) -> None:
        """Encode windows of one shape as a batch; write the wanted tiles into the block being filled."""
        cut = [[padded_window(x, self.g, *win) for win, _ in items] if x is not None else None
               for x in self.inputs]
        batch = [torch.cat(parts) if parts is not None else None for parts in cut]
        if self.channels_last:
            batch = [b.contiguous(memory_format=torch.channels_last) if b is not None else None for b in batch]
        with self.autocast:
            proj = self.model.encode_window(batch[0], batch[1], batch[2] if len(batch) > 2 else None, rel)
        del batch, cut
        self.encoded_pixels += sum((w[1] - w[0]) * (w[3] - w[2]) for w, _ in items)
        t, T = self.t, self.tile
        block, start, wanted = self._store
        for j, (_, (cy0, cy1, cx0, cx1)) in enumerate(items):
            for ty in range(cy0 // T, -(-cy1 // T)):
                for tx in range(cx0 // T, -(-cx1 // T)):
                    if (ty, tx) not in wanted:      # a merged rectangle's extra tile, or computed before
                        continue
                    r0, c0 = ty * t - cy0 // 2, tx * t - cx0 // 2
                    part = proj[j, :, r0:r0 + t, c0:c0 + t]                   # (K, <=t, <=t)
                    part = F.pad(part, (0, t - part.shape[-1], 0, t - part.shape[-2]))
                    k = int(self.slot[ty, tx]) - start
                    block[k * t * t:(k + 1) * t * t] = part.permute(1, 2, 0).reshape(t * t, self.k)

    def _flat(self) -> torch.Tensor:
        if self._atlas is None:
            self._atlas = torch.cat(self._parts) if len(self._parts) != 1 else self._parts[0]
            self._parts = [self._atlas]
        return self._atlas

    def _index(self, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        """Flat atlas rows of cells (iy, ix) (int64, broadcastable), computing missing tiles first."""
        t = self.t
        ty, tx = iy // t, ix // t
        slot = self.slot[ty, tx]
        if bool((slot < 0).any()):
            sel = slot < 0
            self.ensure(distinct_tiles(ty.expand_as(slot)[sel], tx.expand_as(slot)[sel], self.ntx))
            slot = self.slot[ty, tx]
        return slot * (t * t) + (iy % t) * t + ix % t

    # ---- the decoder's reads -------------------------------------------------------------------------

    def points(self, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        """Features float32 (1, N, K) at cells (iy[0, i], ix[0, i]) (int64 (1, N) each)."""
        idx = self._index(iy.to(self.slot.device), ix.to(self.slot.device))
        return self._flat().index_select(0, idx.reshape(-1)).view(*iy.shape, self.k)

    def grid(self, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
        """Features float32 (1, R, C, K) at cells iy (R,) x ix (C,)."""
        idx = self._index(iy.to(self.slot.device)[:, None], ix.to(self.slot.device)[None, :])
        return self._flat().index_select(0, idx.reshape(-1)).view(1, len(iy), len(ix), self.k)


__all__ = ["SparseFeatures", "rectangles", "BATCH_PIXELS"]
