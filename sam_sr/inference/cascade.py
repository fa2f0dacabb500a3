"""CRM's cascade inference: refine from low to full resolution, each step's soft output feeding the next.

Shen et al. 2022: at each scale s the image and the current mask are resized to s x full size, the
encoder runs on the resized (reflect-padded) inputs, and the implicit decoder is queried. Ours decodes
each step directly at the next step's resolution (the last at full resolution), since the next step
would resize it there anyway, and needs no ground truth or CUDA. Memory and speed options (patched
fusion, encoder tiles, query-selection modes) are in :class:`CascadeConfig`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import SamSrError
from ..models.crm import resize_image, resize_mask
from ..models.pixel_head import LazyPixelMap
from ..sam.features import features_for_step
from ..models.implicit_decoder import DEFAULT_CHUNK
from .encode import ALIGN, encode, encode_tiled
from .query import DecodeMode, decode_step


@dataclass
class CascadeConfig:
    """Cascade settings.

    Args:
        scales: increasing fractions of full size (CRM: 0.125, 0.25, 0.5, 1.0); 1.0 is always run last.
        min_size: scales whose longer side would be below this many pixels are skipped (small images
            start the cascade at a size the encoder can still see something at).
        pad: reflect padding in pixels added around the inputs at each step (CRM: 32).
        chunk: query points decoded at a time (bounds decoder memory).
        decode: query-selection mode (see :mod:`sam_sr.inference.query`), e.g. ``"full"``,
            ``"bbox:32"``, ``"contour:16"``, ``"strided:4"``, ``"hierarchical:16"``.
        fusion_patches: run the fusion convolutions in this many bands (exact; 0 = off).
        encoder_tile: encode inputs larger than this many pixels (per side) in overlapping tiles
            (approximate; 0 = off). ``tile_overlap``: context per tile side in pixels.
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
            the whole output in row bands). ``stats["pixel_fraction"]`` reports the share computed.

    Raises:
        SamSrError: an invalid ``decode`` mode, ``margin`` or ``upsample_to`` (checked at construction).
    """

    scales: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0)
    min_size: int = 512
    pad: int = 16
    chunk: int = DEFAULT_CHUNK
    decode: str = "full"
    fusion_patches: int = 8
    encoder_tile: int = 0
    tile_overlap: int = 64
    margin: float = 0.0
    upsample_to: int = 0
    flip: bool = False
    pixel_tile: int = 256
    stats: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        DecodeMode.parse(self.decode)
        if not 0.0 <= float(self.margin) < 0.5:
            raise SamSrError(f"margin must be in [0, 0.5), got {self.margin!r}")
        if int(self.upsample_to) < 0:
            raise SamSrError(f"upsample_to must be >= 0 pixels, got {self.upsample_to!r}")
        if int(self.pixel_tile) < 0:
            raise SamSrError(f"pixel_tile must be >= 0 pixels, got {self.pixel_tile!r}")
        if not isinstance(self.flip, bool):
            raise SamSrError(f"flip must be true or false, got {self.flip!r}")

    @classmethod
    def setting_names(cls) -> set[str]:
        """The settable fields (all but ``stats``)."""
        return {f.name for f in fields(cls)} - {"stats"}

    def settings(self) -> dict[str, Any]:
        """The settings as plain values (``scales`` as a list), e.g. for JSON reports."""
        return {name: list(self.scales) if name == "scales" else getattr(self, name)
                for name in sorted(self.setting_names())}

    def steps(self, h: int, w: int) -> list[float]:
        """The scales run for an H x W image, increasing, ending at 1.0."""
        s = sorted({float(x) for x in self.scales if 0 < x < 1 and max(h, w) * x >= self.min_size})
        return s + [1.0]


def pad_inputs(tensors: list[torch.Tensor], pad: int, multiple: int = ALIGN):
    """Reflect-pad tensors of equal (H, W) by ``pad`` px plus up to a multiple of ``multiple``.

    Returns (padded tensors, (top, left, padded_h, padded_w)). Falls back to replicate padding when
    the image is too small to reflect.
    """
    h, w = tensors[0].shape[-2:]
    hp = -(-(h + 2 * pad) // multiple) * multiple
    wp = -(-(w + 2 * pad) // multiple) * multiple
    top, left = (hp - h) // 2, (wp - w) // 2
    spec = (left, wp - w - left, top, hp - h - top)
    mode = "reflect" if max(spec[0], spec[1]) < w and max(spec[2], spec[3]) < h else "replicate"
    return [F.pad(t, spec, mode=mode) for t in tensors], (top, left, hp, wp)


@torch.no_grad()
def cascade_refine(model, image: torch.Tensor, mask: torch.Tensor,
                   config: CascadeConfig | None = None, extra: torch.Tensor | None = None) -> torch.Tensor:
    """Cascade refinement of one image.

    Args:
        model: a refiner with ``encoder``, ``fusion``, ``decoder`` and ``make_input`` (CRM family).
        image: float32 (1, 3, H, W) RGB in [0, 1].
        mask: float32 (1, 1, H, W) coarse mask in [0, 1].
        extra: optional float32 (1, C, H, W) extra input channels in [0, 1]; for models with
            ``extra_is_features`` (SAM-SR v3), SAM's image embedding (1, C, 64, 64) of this image.

    Returns:
        float32 (1, 1, H, W) refined soft mask in [0, 1]. ``config.stats`` receives
        ``{"decoded_points": int, "steps": [(h, w), ...]}`` of this call (both passes' points with
        ``flip``), and for a model with a pixel head ``"pixel_fraction"``: the share of the output
        pixels (over all steps) where the head was computed, in [0, 1].

    Raises:
        SamSrError: ``flip`` with a SAM-SR v3 model; a v3 model without its embedding or with encoder tiles.
    """
    cfg = config or CascadeConfig()
    if not cfg.flip:
        return _cascade_once(model, image, mask, cfg, extra)
    if getattr(model, "extra_is_features", False):
        raise SamSrError("flip is not supported for SAM-SR v3 models (SAM's embedding is not mirror-symmetric)")
    out = _cascade_once(model, image, mask, cfg, extra)
    decoded = cfg.stats["decoded_points"]
    mirrored = _cascade_once(model, image.flip(-1), mask.flip(-1), cfg,
                             None if extra is None else extra.flip(-1)).flip(-1)
    cfg.stats["decoded_points"] += decoded
    return (out + mirrored) / 2


def _cascade_once(model, image: torch.Tensor, mask: torch.Tensor, cfg: CascadeConfig,
                  extra: torch.Tensor | None) -> torch.Tensor:
    """One cascade pass (:func:`cascade_refine` without test-time augmentation)."""
    mode = DecodeMode.parse(cfg.decode)
    full_hw = tuple(image.shape[-2:])
    if cfg.upsample_to and max(full_hw) < cfg.upsample_to:
        f = cfg.upsample_to / max(full_hw)
        up = (round(full_hw[0] * f), round(full_hw[1] * f))
        image, mask = resize_image(image, up), resize_mask(mask, up)
        if extra is not None and not getattr(model, "extra_is_features", False):
            extra = resize_image(extra, up)
    h, w = image.shape[-2:]
    steps = cfg.steps(h, w)
    sizes = [(max(1, round(h * s)), max(1, round(w * s))) for s in steps[:-1]] + [(h, w)]
    current = mask
    decoded = 0
    head_pixels = head_total = 0   # pixel-head outputs computed / output pixels, over the steps
    features = bool(getattr(model, "extra_is_features", False))
    if features and (extra is None or cfg.encoder_tile):
        raise SamSrError("a SAM-SR v3 model needs the SAM embedding and does not support encoder tiles")
    for i, size in enumerate(sizes):
        inputs = [resize_image(image, size), resize_mask(current, size)]
        if extra is not None and not features:
            inputs.append(resize_image(extra, size))
        padded, (top, left, hp, wp) = pad_inputs(inputs, cfg.pad)
        if features:  # SAM embedding read at the padded input's stride-8 cells (SAM-SR v3)
            ex = features_for_step(extra, (h, w), size, top, left, (hp, wp)).to(image.device)
        else:
            ex = padded[2] if extra is not None else None
        if cfg.encoder_tile:
            proj = encode_tiled(model, padded[0], padded[1], ex, cfg.encoder_tile, cfg.tile_overlap,
                                cfg.fusion_patches)
        else:
            proj = encode(model, padded[0], padded[1], ex, cfg.fusion_patches)
        del padded, inputs
        out_hw = sizes[i + 1] if i + 1 < len(sizes) else (h, w)
        bounds = (-1 + 2 * top / hp, -1 + 2 * left / wp,
                  -1 + 2 * (top + size[0]) / hp, -1 + 2 * (left + size[1]) / wp)
        previous = resize_mask(current, out_hw)[0, 0]
        skip = model.add_skip if getattr(model.config, "mask_skip", False) else None
        pixel = None
        if getattr(model.config, "pixel_head", 0):  # full-resolution head at the output size
            head_in = (resize_image(image, out_hw), previous[None, None])
            if cfg.pixel_tile and mode.name != "full":   # only the tiles holding decoded pixels
                pixel = model.pixel_map(*head_in, cfg.pixel_tile)
            else:
                pixel = model.pixel_logits(*head_in)[0, 0]
        prob, n = decode_step(model.decoder, proj, out_hw, bounds, previous, mode, cfg.chunk, skip, pixel,
                              cfg.margin)
        decoded += n
        if pixel is not None:
            head_total += out_hw[0] * out_hw[1]
            head_pixels += pixel.computed_pixels if isinstance(pixel, LazyPixelMap) else out_hw[0] * out_hw[1]
        current = prob[None, None]
        del proj
    cfg.stats.clear()
    cfg.stats.update({"decoded_points": decoded, "steps": sizes})
    if head_total:
        cfg.stats["pixel_fraction"] = head_pixels / head_total
    return resize_mask(current, full_hw)
