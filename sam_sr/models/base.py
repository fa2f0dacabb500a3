"""The refiner interface: what every model implements, and the only thing the cascade, the decode
modes and training call.

A refiner maps (image, coarse mask, optional extra input) to a logit at any point of the image:

1. :meth:`RefinerModel.encode` -- image float32 (B, 3, H, W) in [0, 1], mask float32 (B, 1, H, W) in
   [0, 1] (binary or soft), extra (see :attr:`RefinerModel.extra_input`) -> features: the implicit
   decoder's per-cell projection, float (B, K, H/2, W/2).
2. :meth:`RefinerModel.logits_at` / :meth:`RefinerModel.logits_grid` -- features + query coordinates
   (the decoder's normalised frame, see :mod:`sam_sr.models.implicit_decoder`) + the mask (and, with
   a pixel head, its logits) read at the same points -> the final logits.

The final logit is built in one place, :meth:`RefinerModel.final_logits`: the implicit decoder's
logit, plus the mask skip ``s * (2 m - 1)`` (``mask_skip``), plus the pixel head's logit
(``pixel_head``). Input normalisation is :meth:`RefinerModel.normalise` (ImageNet mean/std for RGB,
[0, 1] -> [-1, 1] for masks and extra channels). :meth:`RefinerModel.forward` (training, whole-crop or
point-sampled) is written once here in terms of the interface.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SamSrError
from .implicit_decoder import DEFAULT_CHUNK
from .pixel_head import LazyPixelMap, PixelHead

#: Input sizes, padded sizes and encoding windows are multiples of this many pixels (the encoders'
#: output stride), so that every window's feature cells line up with the whole input's.
ALIGN = 8

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Values of :attr:`RefinerModel.extra_input`.
EXTRA_NONE = "none"            # no extra input
EXTRA_CHANNELS = "channels"    # per-pixel maps aligned with the image (resized, padded, tiled with it)
EXTRA_EMBEDDING = "embedding"  # SAM's image embedding, read at each cascade step's stride-8 cells


def config_from_dict(cls, d: dict[str, Any], what: str):
    """Dataclass ``cls`` from a dict; tuple-typed fields accept lists of ints.

    Raises:
        SamSrError: keys that are not fields of ``cls``.
    """
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise SamSrError(f"unknown {what} config keys {unknown}; allowed: {sorted(names)}")
    kw = dict(d)
    for f in fields(cls):
        if f.name in kw and "tuple" in str(f.type):
            kw[f.name] = tuple(int(v) for v in kw[f.name])
    return cls(**kw)


def config_to_dict(cfg) -> dict[str, Any]:
    """A config dataclass as a YAML-friendly dict (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


class RefinerModel(nn.Module):
    """Base class of every refiner (CRM, the SAM-SR variants).

    Subclasses set ``self.config`` (a dataclass with ``mask_skip`` and ``mask_skip_init``),
    ``self.decoder`` (an :class:`ImplicitDecoder`), optionally ``self.pixel_head``, call
    :meth:`_init_skip`, and implement :meth:`encode`.

    Class attributes:
        variant: the registry name (see :mod:`sam_sr.variants`).
        extra_input: what ``extra`` is: :data:`EXTRA_NONE`, :data:`EXTRA_CHANNELS` (float (B, C, H, W)
            in [0, 1] aligned with the image) or :data:`EXTRA_EMBEDDING` (SAM's image embedding,
            float (B, C, h', w') aligned with the image; the cascade reads it at each step's cells,
            see :func:`sam_sr.sam.features.features_for_step`). An instance may refine it (CRM with
            ``extra_channels: 0`` has none).
    """

    variant: str = "?"   # set per model by the variant registry (VariantSpec.build)
    extra_input: str = EXTRA_NONE

    def __init__(self) -> None:
        super().__init__()
        self.pixel_head: PixelHead | None = None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _init_skip(self) -> None:
        """The mask skip's learned scale s (``config.mask_skip``), starting at ``mask_skip_init``."""
        if self.config.mask_skip:
            self.skip_scale = nn.Parameter(torch.tensor(float(self.config.mask_skip_init)))

    # ---- inputs ----------------------------------------------------------------------------------

    def normalise(self, image: torch.Tensor, mask: torch.Tensor,
                  extra: torch.Tensor | None = None) -> torch.Tensor:
        """The network input: float (B, 4 [+ C], H, W) = ImageNet-normalised RGB, the mask and the
        extra channels mapped from [0, 1] to [-1, 1]. ``image`` is float in [0, 1], or uint8 in 0-255
        (:func:`to_float_image`: equal results).

        Raises:
            SamSrError: an image that is not (B, 3, H, W), a mask that is not (B, 1, H, W) of the
                image's size.
        """
        if image.dim() != 4 or image.shape[1] != 3:
            raise SamSrError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
            raise SamSrError(f"mask must be (B, 1, H, W) matching the image, got {tuple(mask.shape)}")
        parts = [(to_float_image(image) - self.mean) / self.std, signed(mask)]
        if extra is not None:
            parts.append(signed(extra))
        return torch.cat(parts, dim=1)

    # ---- the interface ---------------------------------------------------------------------------

    def encode(self, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None,
               fusion_patches: int = 0) -> torch.Tensor:
        """Features for the decoder: float (B, K, H/2, W/2), K = ``decoder_hidden[0]``.

        Args:
            image: float32 (B, 3, H, W) RGB in [0, 1]. mask: float32 (B, 1, H, W) in [0, 1].
            extra: see :attr:`extra_input`.
            fusion_patches: > 0 computes the fusion in that many row bands where the model supports
                it (exact, less memory; eval mode only); others ignore it.
        """
        raise NotImplementedError

    @property
    def context(self) -> int | None:
        """Input pixels of context, on each side of a window's core, that make :meth:`encode_window`
        exact (a multiple of :data:`ALIGN` covering the features' receptive field), or None when this
        model cannot encode windows exactly (the cascade then always encodes whole inputs). Default:
        None."""
        return None

    def encode_window(self, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None,
                      core: tuple[int, int, int, int]) -> torch.Tensor:
        """:meth:`encode`'s features of the ``core`` box of a batch of windows.

        Equal (up to float rounding) to the features of a larger input at the same cells when each
        window holds :attr:`context` pixels of that input on every side of its core, or reaches the
        larger input's own edge on that side (where both zero-pad).

        Args:
            image: float32 (B, 3, H, W) in [0, 1]; mask: float32 (B, 1, H, W) in [0, 1]; extra: as for
                :meth:`encode` (windows of the same place), or None.
            core: (y0, y1, x0, x1) in window pixels, multiples of :data:`ALIGN`.

        Returns:
            float (B, K, (y1 - y0) / 2, (x1 - x0) / 2).

        The default encodes the whole window and crops; models may compute less (CRM runs its fusion
        only around the core).
        """
        y0, y1, x0, x1 = core
        return self.encode(image, mask, extra)[..., y0 // 2:y1 // 2, x0 // 2:x1 // 2]

    def final_logits(self, logits: torch.Tensor, mask_at: torch.Tensor | None,
                     pixel_at: torch.Tensor | None = None) -> torch.Tensor:
        """The final logit: the decoder's ``logits`` + ``s * (2 m - 1)`` (mask skip, with the mask m
        at the same points) + the pixel head's logits at those points. All of one shape.

        Raises:
            SamSrError: a model with the mask skip given no mask values.
        """
        if self.config.mask_skip:
            if mask_at is None:
                raise SamSrError("a model with the mask skip needs the mask at the query points")
            logits = logits + self.skip_scale * (2 * mask_at.to(logits.dtype) - 1)
        if pixel_at is not None:
            logits = logits + pixel_at
        return logits

    def logits_at(self, features: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
                  mask_at: torch.Tensor | None = None, pixel_at: torch.Tensor | None = None,
                  chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Final logits float (B, N) at query points.

        Args:
            features: from :meth:`encode`. coord: float (B, N, 2) or (N, 2), (y, x) in the features'
                [-1, 1] frame. cell: float (2,), one output pixel's size in that frame.
            mask_at: float (B, N), the mask (coarse or previous step) at the points, in [0, 1].
            pixel_at: float (B, N), the pixel head's logits at the points, or None.
            chunk: points decoded at a time.
        """
        return self.final_logits(self.decoder.query_chunked(features, coord, cell, chunk), mask_at, pixel_at)

    def query_cells(self, c: torch.Tensor, n: int) -> torch.Tensor:
        """The feature cells the decoder reads for query coordinates ``c`` (N,) along an axis of ``n``
        cells: int64 (2, N) (see :meth:`ImplicitDecoder.cells`); what a sparse feature map must hold."""
        return self.decoder.cells(c, n)

    def logits_grid(self, features: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, cell,
                    mask_at: torch.Tensor | None = None, pixel_at: torch.Tensor | None = None,
                    chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Final logits float (B, R, C) on the outer product of row coordinates ``ys`` (R,) and column
        coordinates ``xs`` (C,) (separable decoding, :meth:`ImplicitDecoder.query_rows_cols`).

        ``mask_at`` and ``pixel_at`` are float (B, R, C) (or broadcastable) at the same pixels.
        """
        logits = self.decoder.query_rows_cols(features, ys, xs, cell, chunk)
        return self.final_logits(logits, mask_at, pixel_at)

    # ---- pixel head -----------------------------------------------------------------------------

    @property
    def has_pixel_head(self) -> bool:
        """Whether the model has a full-resolution pixel head (``pixel_head`` > 0)."""
        return self.pixel_head is not None

    def pixel_logits(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pixel head's logit corrections float32 (B, 1, H, W) at the inputs' own resolution.

        Args:
            image: float32 (B, 3, H, W) RGB in [0, 1]; mask: float32 (B, 1, H, W) in [0, 1] (the mask
                the decoder's output corrects: the coarse mask, or the previous cascade step's output).

        Raises:
            SamSrError: the model has no pixel head (``pixel_head: 0``).
        """
        if self.pixel_head is None:
            raise SamSrError("this model has no pixel head (model.pixel_head: 0)")
        x = self.normalise(image, mask)
        return self.pixel_head(x) if torch.is_grad_enabled() else self.pixel_head.banded(x)

    def pixel_map(self, image: torch.Tensor, mask: torch.Tensor, tile: int = 256) -> LazyPixelMap:
        """The pixel head's logits for one image as a :class:`LazyPixelMap`: computed tile by tile
        (``tile`` px squares) only where they are read, equal to :meth:`pixel_logits` there.

        Args:
            image: float32 (1, 3, H, W) RGB in [0, 1]; mask: float32 (1, 1, H, W) in [0, 1].

        Raises:
            SamSrError: the model has no pixel head, or ``tile`` < 1.
        """
        if self.pixel_head is None:
            raise SamSrError("this model has no pixel head (model.pixel_head: 0)")

        @torch.no_grad()
        def window(boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
            crop = lambda t: torch.cat([t[..., y0:y1, x0:x1] for y0, y1, x0, x1 in boxes])  # noqa: E731
            return self.pixel_logits(crop(image), crop(mask))

        return LazyPixelMap(window, tuple(image.shape[-2:]), self.pixel_head.radius, tile, image.device)

    # ---- training ---------------------------------------------------------------------------------

    def forward(self, image: torch.Tensor, mask: torch.Tensor, out_size: tuple[int, int] | None = None,
                extra: torch.Tensor | None = None, chunk: int = DEFAULT_CHUNK,
                idx: torch.Tensor | None = None) -> torch.Tensor:
        """Final logits float32 (B, 1, Ho, Wo) over the whole input at ``out_size`` (default: the
        input's size), or, with ``idx`` (int64 (B, N) flat pixel indices ``row * W + col`` into the
        input), (B, N) at those pixels' centres (point-sampled training)."""
        features = self.encode(image, mask, extra)
        if idx is not None:
            coord, cell = pixel_coords(idx, image.shape[-2:])
            mask_at = torch.gather(mask.flatten(1), 1, idx)
            pixel_at = (torch.gather(self.pixel_logits(image, mask).flatten(1), 1, idx)
                        if self.has_pixel_head else None)
            return self.logits_at(features, coord, cell, mask_at, pixel_at, chunk)
        ho, wo = out_size or image.shape[-2:]
        logits = self.decoder.query_grid(features, ho, wo, chunk=chunk).unsqueeze(1)
        m = resize_mask(mask, (ho, wo))
        pixel = self.pixel_logits(resize_image(image, (ho, wo)), m) if self.has_pixel_head else None
        return self.final_logits(logits, m, pixel)


def signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (masks and extra channels at the network input)."""
    return x * 2 - 1


def pixel_coords(idx: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres of flat indices into an (H, W) grid in the decoder's [-1, 1] frame.

    Args:
        idx: int64 (B, N) flat indices ``row * W + col``. size: (H, W) in pixels.

    Returns:
        coord float32 (B, N, 2) as (y, x); cell float32 (2,), one pixel's size in that frame.
    """
    h, w = int(size[0]), int(size[1])
    rows = torch.div(idx, w, rounding_mode="floor")
    cols = idx - rows * w
    coord = torch.stack([-1 + (2 * rows.float() + 1) / h, -1 + (2 * cols.float() + 1) / w], dim=-1)
    cell = torch.tensor([2.0 / h, 2.0 / w], device=idx.device)
    return coord, cell


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float (B, C, H, W): antialiased bilinear when shrinking, bilinear otherwise."""
    if image.shape[-2:] == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def to_float_image(image: torch.Tensor) -> torch.Tensor:
    """An RGB image tensor as float in [0, 1]: uint8 (0-255) -> float32 value / 255 (a new tensor);
    a float tensor is returned as it is."""
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float (B, 1, H, W) mask (area when shrinking), values stay in [0, 1]."""
    if mask.shape[-2:] == tuple(size):
        return mask
    shrink = size[0] < mask.shape[-2] and size[1] < mask.shape[-1]
    return F.interpolate(mask, size=size, mode="area" if shrink else "bilinear",
                         align_corners=None if shrink else False)


__all__ = ["ALIGN", "RefinerModel", "EXTRA_NONE", "EXTRA_CHANNELS", "EXTRA_EMBEDDING", "IMAGENET_MEAN",
           "IMAGENET_STD", "config_from_dict", "config_to_dict", "pixel_coords", "resize_image",
           "resize_mask", "signed"]
