"""CRM's cascade inference: refine from low to full resolution, each step's soft output feeding the next.

Shen et al. 2022: at each scale s the image and the current mask are resized to s x full size, the
encoder runs on the resized (reflect-padded) inputs, and the implicit decoder is queried. Ours decodes
each step directly at the next step's resolution (the last at full resolution), since the next step
would resize it there anyway, and needs no ground truth or CUDA. Memory and speed options (patched
fusion, encoder tiles, query-selection modes, sparse steps) are in :class:`CascadeConfig`.

What runs where at each step (image H x W resized to the step's size, output at the next step's):

- The pixels decoded: the query-selection mode's (:mod:`sam_sr.inference.query`); the default
  ``contour:W`` decodes a band of W px around the previous step's boundary.
- The features they read (encoder, fusion, the decoder's projection): dense, over the whole padded
  input (:meth:`RefinerModel.encode`), or sparse, only in the ``sparse_tile`` px tiles the decoded
  pixels read, each with the model's whole receptive field as context, batched
  (:mod:`sam_sr.inference.sparse`; equal to dense up to float rounding). A step goes sparse when the
  mode knows its pixels before decoding (``bbox``, ``contour``) and the tiles' windows cover at most
  :data:`SPARSE_SHARE` of the input, or when the mode is ``hierarchical`` at the last step of two
  or more (seeded: it decodes only near the previous step's contour, see :func:`decode_step`).
- The pixel head (models that have one): only in the ``pixel_tile`` px tiles holding decoded pixels
  (:class:`~sam_sr.models.pixel_head.LazyPixelMap`); whole where the step decodes a grid over the
  whole output (``strided``, ``hierarchical`` before its seeded step).
- Each resized copy of the image is made once and shared by the steps that read it.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields, replace
from numbers import Integral, Real
from typing import Any

import torch

from ..devices import PRECISIONS, default_precision, resolve_precision
from ..errors import SamSrError
from ..models.base import (
    ALIGN,
    EXTRA_CHANNELS,
    EXTRA_EMBEDDING,
    RefinerModel,
    resize_image,
    resize_mask,
    to_float_image,
)
from ..models.implicit_decoder import DEFAULT_CHUNK
from ..models.pixel_head import LazyPixelMap
from ..sam.features import features_for_step
from .decode_mode import DecodeMode
from .encode import encode_tiled
from .heap import trim_heap
from .padding import pad_geometry, pad_inputs
from .query import decode_step, plan_tiles, select_queries
from .sparse import SparseFeatures

#: A step encodes sparsely when its tiles' windows (context included) cover at most this share of
#: the padded input's pixels (the fusion then also runs on little more than the tiles' cores).
SPARSE_SHARE = 0.9
#: Cascade steps whose shorter side would fall below this many px are skipped (:meth:`CascadeConfig.steps`).
MIN_STEP_SIDE = 32


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise SamSrError(f"CascadeConfig.{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CascadeConfig:
    """Cascade settings (immutable: the cascade never writes to them; use :func:`dataclasses.replace`
    to change a field).

    Args:
        scales: fractions of full size in (0, 1] (CRM: 0.125, 0.25, 0.5, 1.0), run in increasing order;
            1.0 is always run last.
        min_size: scales whose longer side would be below this many pixels are skipped (small images
            start the cascade at a size the encoder can still see something at).
        pad: reflect padding in pixels added around the inputs at each step (CRM: 32).
        chunk: query points decoded at a time (>= 1; bounds decoder memory).
        decode: query-selection mode (see :mod:`sam_sr.inference.query`), a :class:`DecodeMode` or its
            text, e.g. ``"full"``, ``"bbox:32"``, ``"contour:16"``, ``"strided:4"``,
            ``"hierarchical:4"``; parsed once here, held as a :class:`DecodeMode`.
        fusion_patches: run the fusion convolutions in this many bands (exact; 0 = off).
        encoder_tile: encode inputs larger than this many pixels (per side) in overlapping tiles
            (approximate; 0 = off). ``tile_overlap``: context per tile side in pixels; a tile must be
            larger than twice the overlap (both rounded to multiples of 8).
        margin: confidence margin in [0, 0.5): a decoded pixel whose refined probability is within
            ``margin`` of 0.5 keeps the previous step's value (the coarse mask at the first step), so
            only confident decisions change the mask (0 = off).
        upsample_to: images whose longer side is below this many pixels are refined at this size
            (image and coarse mask bilinearly upsampled) and the refined soft mask is resized back
            (area); the implicit decoder then places boundaries at sub-pixel steps of the image
            (0 = off).
        flip: test-time augmentation: also refine the horizontally mirrored image and coarse mask and
            average the two refined soft masks (twice the time). With a ``margin``, a pixel then changes
            only where both passes agree confidently enough to move the mean across 0.5.
        pixel_tile: for models with a pixel head and a ``decode`` mode other than ``full``, compute the
            head only in the ``pixel_tile`` px square tiles that hold decoded pixels (exact; 0 = over
            the whole output in row bands). The run's ``pixel_fraction`` reports the share computed.
        sparse_tile: tile side in px of sparse steps (see the module docstring; a multiple of 8;
            exact up to float rounding; 0 = every step dense). The run's ``encoded_fraction``
            reports the share of the steps' input pixels encoded (context included).
        channels_last: on the CPU, run the encoder in channels-last memory format (the model's
            convolution weights are converted in place: equal output within float rounding; on
            the aeroplane, 2 cores, 19.7 s of CPU time against 23.6 s, median of 3); ignored on
            other devices.
        precision: ``"fp32"``; ``"bf16"``: encoder, fusion and projection under bfloat16 autocast
            (the decoder stays fp32), not equal to fp32; or ``"auto"`` (the default, or
            ``$SAM_SR_PRECISION``): bf16 where the device computes bfloat16 natively (a GPU that
            supports it, a CPU with AVX-512 BF16 or AMX: :func:`sam_sr.devices.native_bf16`), else
            fp32. A SAM-guided model's SAM image encoder runs in the same precision. Measured
            2026-12-03 on a 2-core AMD EPYC with AVX-512 BF16, the default model warm: a 481 x 321
            sod photo 1.50 s (fp32) -> 1.00 s, the aeroplane 5.08 s -> 3.15 s; quality on the sod
            evaluation photos in docs/RESULTS.md.

    Raises:
        SamSrError: any invalid field, named in the message (checked at construction).
    """

    scales: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    min_size: int = 512
    pad: int = 16
    chunk: int = DEFAULT_CHUNK
    decode: DecodeMode | str = "full"
    fusion_patches: int = 8
    encoder_tile: int = 0
    tile_overlap: int = 64
    margin: float = 0.0
    upsample_to: int = 0
    flip: bool = False
    pixel_tile: int = 32
    sparse_tile: int = 64
    channels_last: bool = True
    precision: str = field(default_factory=default_precision)

    def __post_init__(self) -> None:
        scales = self.scales
        if isinstance(scales, (str, bytes)) or not hasattr(scales, "__iter__"):
            raise SamSrError(f"CascadeConfig.scales must be a sequence of fractions in (0, 1], got {scales!r}")
        scales = tuple(scales)
        for s in scales:
            if isinstance(s, bool) or not isinstance(s, Real) or not 0 < s <= 1:
                raise SamSrError(f"CascadeConfig.scales must be fractions of full size in (0, 1], "
                                 f"got {self.scales!r}")
        object.__setattr__(self, "scales", tuple(float(s) for s in scales))
        for name, low in (("min_size", 0), ("pad", 0), ("chunk", 1), ("fusion_patches", 0),
                          ("encoder_tile", 0), ("tile_overlap", 0), ("upsample_to", 0), ("pixel_tile", 0),
                          ("sparse_tile", 0)):
            object.__setattr__(self, name, _int(name, getattr(self, name), low))
        if not isinstance(self.decode, (str, DecodeMode)):
            raise SamSrError(f"CascadeConfig.decode must be a mode name such as 'contour:2', got {self.decode!r}")
        try:
            object.__setattr__(self, "decode", DecodeMode.parse(self.decode))
        except SamSrError as exc:
            raise SamSrError(f"CascadeConfig.decode: {exc}") from None
        if isinstance(self.margin, bool) or not isinstance(self.margin, Real) or not 0.0 <= self.margin < 0.5:
            raise SamSrError(f"CascadeConfig.margin must be in [0, 0.5), got {self.margin!r}")
        for name in ("flip", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise SamSrError(f"CascadeConfig.{name} must be true or false, got {getattr(self, name)!r}")
        if self.sparse_tile % ALIGN:
            raise SamSrError(f"CascadeConfig.sparse_tile must be a multiple of {ALIGN} px (0 = off), "
                             f"got {self.sparse_tile}")
        if self.precision not in PRECISIONS:
            raise SamSrError(f"CascadeConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.encoder_tile:
            tile, overlap = self.encoder_tile // ALIGN * ALIGN, -(-self.tile_overlap // ALIGN) * ALIGN
            if tile <= 2 * overlap:
                raise SamSrError(f"CascadeConfig.encoder_tile ({self.encoder_tile}, {tile} rounded down to a "
                                 f"multiple of {ALIGN}) must exceed twice tile_overlap ({overlap})")

    @classmethod
    def setting_names(cls) -> set[str]:
        """The settable fields."""
        return {f.name for f in fields(cls)}

    def settings(self) -> dict[str, Any]:
        """The settings as plain values (``scales`` as a list, ``decode`` as its text), e.g. for JSON
        reports and checkpoints."""
        plain = {"scales": list(self.scales), "decode": str(self.decode)}
        return {name: plain.get(name, getattr(self, name)) for name in sorted(self.setting_names())}

    def replace(self, **changes: Any) -> "CascadeConfig":
        """A copy with ``changes`` (validated)."""
        return replace(self, **changes)

    def steps(self, h: int, w: int) -> list[float]:
        """The scales run for an H x W image, increasing, ending at 1.0: those whose longer side
        reaches ``min_size`` and whose shorter side reaches :data:`MIN_STEP_SIDE` px (a narrow strip
        shrunk to a few pixels would let a low-resolution step, whose band covers it whole, redraw it)."""
        s = sorted({float(x) for x in self.scales if 0 < x < 1 and max(h, w) * x >= self.min_size
                    and min(h, w) * x >= MIN_STEP_SIDE})
        return s + [1.0]


@torch.no_grad()
def cascade_refine(model: RefinerModel, image: torch.Tensor, mask: torch.Tensor,
                   config: CascadeConfig | None = None, extra: torch.Tensor | None = None,
                   return_info: bool = False):
    """Cascade refinement of one image.

    Args:
        model: a refiner (:class:`~sam_sr.models.base.RefinerModel`).
        image: float32 (1, 3, H, W) RGB in [0, 1], or uint8 (1, 3, H, W) RGB in 0-255 (read as
            value / 255 in float32: equal results; the full-resolution image then stays uint8 and
            only the resized steps' copies and the windows the model reads are float, 4x less memory
            for the largest tensor of a run).
        mask: float32 (1, 1, H, W) coarse mask in [0, 1] (binary or soft).
        extra: the model's extra input (see :attr:`RefinerModel.extra_input`): per-pixel channels
            float32 (1, C, H, W) in [0, 1], or SAM's image embedding (1, C, 64, 64) of this image.
        return_info: also return the run's information.

    Returns:
        float32 (1, 1, H, W) refined soft mask in [0, 1]; with ``return_info``, ``(mask, info)`` where
        info is ``{"decoded_points": int, "steps": [(h, w), ...], "sparse_steps": [bool, ...],
        "encoded_fraction": float}`` (both passes' points with ``flip``; ``encoded_fraction``: input
        pixels encoded, context included, over the steps' padded input pixels), plus, for a model with
        a pixel head, ``"pixel_fraction"``: the share of the output pixels (over all steps) where the
        head was computed, in [0, 1].

    Raises:
        SamSrError: ``flip`` or encoder tiles with a model whose extra input is SAM's embedding, or
            such a model without its embedding.
    """
    cfg = config or CascadeConfig()
    if not cfg.flip:
        out, info = _cascade_once(model, image, mask, cfg, extra)
    else:
        if model.extra_input == EXTRA_EMBEDDING:
            raise SamSrError(f"flip is not supported for {model.variant} models (SAM's embedding is not "
                             f"mirror-symmetric)")
        out, info = _cascade_once(model, image, mask, cfg, extra)
        mirrored, info2 = _cascade_once(model, image.flip(-1), mask.flip(-1), cfg,
                                        None if extra is None else extra.flip(-1))
        out = (out + mirrored.flip(-1)) / 2
        info["decoded_points"] += info2["decoded_points"]
    return (out, info) if return_info else out


class _Pyramid:
    """Resized copies of one image, each made once (the encoder at one step and the pixel head at the
    step before read the same size). A uint8 image: the copies of ``sizes`` are made up front from
    one float32 conversion that is then dropped; the full size is returned as uint8 (the model's
    input normalisation converts what it reads)."""

    def __init__(self, image: torch.Tensor, sizes=()):
        self.image, self.copies = image, {}
        if image.dtype == torch.uint8:
            full = tuple(image.shape[-2:])
            wanted = {tuple(s) for s in sizes} - {full}
            if wanted:
                as_float = to_float_image(image)
                self.copies = {s: resize_image(as_float, s) for s in wanted}
                del as_float

    def __call__(self, size: tuple[int, int]) -> torch.Tensor:
        size = tuple(size)
        if size == tuple(self.image.shape[-2:]):
            return self.image
        if size not in self.copies:
            self.copies[size] = resize_image(to_float_image(self.image), size)
        return self.copies[size]

    def keep(self, sizes) -> None:
        """Drop the copies not of ``sizes`` (those the remaining steps read)."""
        wanted = {tuple(s) for s in sizes}
        self.copies = {k: v for k, v in self.copies.items() if k in wanted}


def _encode_context(model: RefinerModel, cfg: CascadeConfig, device: torch.device):
    """The layout and autocast the encoder runs under: (channels_last, autocast context)."""
    cl = cfg.channels_last and device.type == "cpu"
    if cl:
        model.to(memory_format=torch.channels_last)   # conv weights only; no-op once converted
    if resolve_precision(cfg.precision, device) == "bf16":
        return cl, torch.autocast(device.type, dtype=torch.bfloat16)
    return cl, contextlib.nullcontext()


def _cascade_once(model: RefinerModel, image: torch.Tensor, mask: torch.Tensor, cfg: CascadeConfig,
                  extra: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """One cascade pass (:func:`cascade_refine` without test-time augmentation)."""
    mode = cfg.decode
    embedding = model.extra_input == EXTRA_EMBEDDING
    channels = extra is not None and model.extra_input == EXTRA_CHANNELS
    if embedding and (extra is None or cfg.encoder_tile):
        raise SamSrError(f"a {model.variant} model needs the SAM embedding and does not support encoder tiles")
    full_hw = tuple(image.shape[-2:])
    if cfg.upsample_to and max(full_hw) < cfg.upsample_to:
        f = cfg.upsample_to / max(full_hw)
        up = (round(full_hw[0] * f), round(full_hw[1] * f))
        image, mask = resize_image(to_float_image(image), up), resize_mask(mask, up)
        if channels:
            extra = resize_image(extra, up)
    h, w = image.shape[-2:]
    steps = cfg.steps(h, w)
    sizes = [(max(1, round(h * s)), max(1, round(w * s))) for s in steps[:-1]] + [(h, w)]
    pyramid = _Pyramid(image, sizes)
    extras = _Pyramid(extra) if channels else None
    cl, autocast = _encode_context(model, cfg, image.device)
    sparse_ok = bool(cfg.sparse_tile) and not embedding and not cfg.encoder_tile and mode.name != "full"
    current = mask
    decoded = 0
    head_pixels = head_total = 0   # pixel-head outputs computed / output pixels, over the steps
    encoded = frame_total = 0      # input pixels encoded / padded input pixels, over the steps
    sparse_steps = []
    for i, size in enumerate(sizes):
        inputs = [pyramid(size), resize_mask(current, size), extras(size) if channels else None]
        g = pad_geometry(*size, cfg.pad)
        out_hw = sizes[i + 1] if i + 1 < len(sizes) else (h, w)
        # the last step's output size is its input size: its resized mask is read once, not made twice
        previous = inputs[1][0, 0] if tuple(size) == tuple(out_hw) else resize_mask(current, out_hw)[0, 0]
        seeded = mode.name == "hierarchical" and 0 < i == len(sizes) - 1
        queries = select_queries(previous, mode)
        proj = None
        if sparse_ok and (queries is not None or seeded) and g.hp * g.wp > 4 * cfg.sparse_tile ** 2 \
                and model.context is not None:
            sparse = SparseFeatures(model, inputs, g, cfg.sparse_tile, cl, autocast)
            if seeded:
                proj = sparse   # tiles are computed level by level as the decoder reads them
            else:
                tiles = plan_tiles(model, sparse, out_hw, g.bounds, queries)
                if sparse.window_pixels(tiles) <= SPARSE_SHARE * g.hp * g.wp:
                    sparse.ensure(tiles)
                    proj = sparse
                    # the windows' freed activations stay in the heap (the tuned trim threshold keeps up
                    # to 256 MiB) and would add to the decoding's peak: on the 3492 x 2328 aeroplane the
                    # last step's RSS rose 229 MiB over a 14 MiB atlas. Measured 2026-12-07 (fresh
                    # `sam-sr infer`, 2 alternating runs each): peak 1.38-1.41 -> 1.35 GiB, equal
                    # output. A trim after every window batch as well gave 1.28-1.30 GiB, but 0.4-0.6 s
                    # more system time (pages faulted in again): not taken (issue 23, no churn)
                    trim_heap(full_hw[0] * full_hw[1])
        if proj is None:
            proj = _encode_dense(model, inputs, g, cfg, extra if embedding else None, (h, w), cl, autocast)
        pixel = None
        if model.has_pixel_head:  # full-resolution head at the output size
            head_in = (pyramid(out_hw), previous[None, None])
            # only the tiles holding decoded pixels; a step that decodes a grid over the whole output
            # (strided, or hierarchical's unseeded steps) reads every tile, and the whole head is then
            # cheaper in one piece (sod, 10 photos: the head 0.011 s per photo whole, 0.028 s in tiles)
            whole_grid = mode.name == "strided" or (mode.name == "hierarchical" and not seeded)
            if cfg.pixel_tile and mode.name != "full" and not whole_grid:
                pixel = model.pixel_map(*head_in, cfg.pixel_tile)
            else:
                pixel = model.pixel_logits(*head_in)[0, 0]
        prob, n = decode_step(model, proj, out_hw, g.bounds, previous, mode, cfg.chunk, pixel, cfg.margin,
                              queries=queries, seeded=seeded)
        decoded += n
        frame_total += g.hp * g.wp
        if isinstance(proj, SparseFeatures):
            encoded += proj.encoded_pixels
            sparse_steps.append(True)
        else:
            encoded += g.hp * g.wp
            sparse_steps.append(False)
        if pixel is not None:
            head_total += out_hw[0] * out_hw[1]
            head_pixels += pixel.computed_pixels if isinstance(pixel, LazyPixelMap) else out_hw[0] * out_hw[1]
        current = prob[None, None]
        pyramid.keep(sizes[i + 1:])
        del proj, inputs, pixel, previous
        trim_heap(full_hw[0] * full_hw[1])   # a large image's freed step features leave the process
    info: dict[str, Any] = {"decoded_points": decoded, "steps": sizes, "sparse_steps": sparse_steps,
                            "encoded_fraction": encoded / max(1, frame_total)}
    if head_total:
        info["pixel_fraction"] = head_pixels / head_total
    return resize_mask(current, full_hw), info


def _encode_dense(model: RefinerModel, inputs: list, g, cfg: CascadeConfig, embedding: torch.Tensor | None,
                  hw: tuple[int, int], cl: bool, autocast) -> torch.Tensor:
    """The features of a step's whole padded input (patched fusion, encoder tiles as configured)."""
    image, mask, ex = inputs
    padded, _ = pad_inputs([t for t in inputs if t is not None], cfg.pad)
    if cl:
        padded = [t.contiguous(memory_format=torch.channels_last) for t in padded]
    if embedding is not None:  # SAM embedding read at the padded input's stride-8 cells (SAM-SR v3)
        ex = features_for_step(embedding, hw, tuple(image.shape[-2:]), g.top, g.left, (g.hp, g.wp)).to(image.device)
    else:
        ex = padded[2] if ex is not None else None
    with autocast:
        if cfg.encoder_tile:
            proj = encode_tiled(model, padded[0], padded[1], ex, cfg.encoder_tile, cfg.tile_overlap,
                                cfg.fusion_patches)
        else:
            proj = model.encode(padded[0], padded[1], ex, cfg.fusion_patches)
    return proj.float()
