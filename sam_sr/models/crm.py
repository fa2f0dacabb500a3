"""CRM refiner: ResNet encoder over image + coarse mask, multi-scale fusion, implicit decoder.

Shen et al., CVPR 2022, "High Quality Segmentation for Ultra High-resolution Images". Written for
sam-sr from the paper's description (the authors' code is CC BY-NC and is not used).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SamSrError
from .encoder import MaskEncoder
from .fusion import FeatureFusion
from .implicit_decoder import DEFAULT_CHUNK, ImplicitDecoder, query_grid
from .pixel_head import LazyPixelMap, PixelHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


@dataclass
class CRMConfig:
    """Architecture of a CRM refiner. Defaults are the compact CPU configuration.

    The paper configuration is ``backbone="resnet50", out_indices=(0, 1, 3),
    branch_channels=(64, 64, 128), fusion_channels=256, dropout=0.5``.

    ``mask_skip`` (not in CRM): the decoder's logit at a query point gets ``s * (2 m - 1)`` added,
    where m is the coarse mask's value at that point (bilinear) and s a learned scalar starting at
    ``mask_skip_init``; the MLP then learns a correction of the coarse mask, which a small model
    trained briefly learns much faster than the whole mask.

    ``pixel_head`` (not in CRM): hidden channels of a :class:`~sam_sr.models.pixel_head.PixelHead`
    (0 = none) with ``pixel_head_layers`` 3x3 convolutions, run over the image and the mask at the
    output resolution; its logit is added at every query point (see :meth:`CRM.pixel_logits`).
    """

    backbone: str = "resnet18"
    out_indices: tuple[int, ...] = (0, 1, 2)
    output_stride: int = 8
    branch_channels: tuple[int, ...] = (32, 32, 64)
    fusion_channels: int = 128
    dropout: float = 0.0
    decoder_hidden: tuple[int, ...] = (32, 32, 32, 32)
    extra_channels: int = 0
    pretrained: bool = False
    backbone_checkpoint: str | None = None
    mask_skip: bool = False
    mask_skip_init: float = 2.0
    pixel_head: int = 0
    pixel_head_layers: int = 3

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CRMConfig":
        """Build from a dict; raises :class:`SamSrError` on unknown keys."""
        return config_from_dict(cls, d, "model")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


class CRM(nn.Module):
    """Continuous Refinement Model.

    Inputs of :meth:`forward`:
        image: float32 (B, 3, H, W), RGB in [0, 1] (ImageNet normalisation is applied inside).
        mask: float32 (B, 1, H, W), coarse mask in [0, 1] (binary or soft); mapped to [-1, 1] inside.
        extra: optional float32 (B, extra_channels, H, W) in [0, 1] (e.g. a SAM map), mapped to [-1, 1].
    """

    variant = "crm"

    def __init__(self, config: CRMConfig | None = None):
        super().__init__()
        self.config = config or CRMConfig()
        c = self.config
        if len(c.branch_channels) != len(c.out_indices):
            raise SamSrError("branch_channels must have one entry per out_indices entry")
        self.encoder = MaskEncoder(c.backbone, c.out_indices, c.output_stride, c.extra_channels,
                                   c.pretrained, c.backbone_checkpoint)
        self.fusion = FeatureFusion(self.encoder.channels, c.branch_channels, c.fusion_channels,
                                    c.dropout)
        self.decoder = ImplicitDecoder(c.fusion_channels, c.decoder_hidden)
        if c.mask_skip:
            self.skip_scale = nn.Parameter(torch.tensor(float(c.mask_skip_init)))
        if c.pixel_head < 0 or c.pixel_head_layers < 1:
            raise SamSrError("pixel_head must be >= 0 channels and pixel_head_layers >= 1")
        if c.pixel_head:
            self.pixel_head = PixelHead(c.pixel_head, c.pixel_head_layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def make_input(self, image: torch.Tensor, mask: torch.Tensor,
                   extra: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised encoder input, float (B, 4 + extra_channels, H, W).

        Raises:
            SamSrError: mismatched spatial sizes or channel counts.
        """
        if image.dim() != 4 or image.shape[1] != 3:
            raise SamSrError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
            raise SamSrError(f"mask must be (B, 1, H, W) matching the image, got {tuple(mask.shape)}")
        parts = [(image - self.mean) / self.std, mask * 2 - 1]
        if self.config.extra_channels:
            if extra is None or extra.shape[1] != self.config.extra_channels \
                    or extra.shape[-2:] != image.shape[-2:]:
                raise SamSrError(f"this model needs {self.config.extra_channels} extra input "
                                 f"channels matching the image")
            parts.append(extra * 2 - 1)
        return torch.cat(parts, dim=1)

    def encode(self, image: torch.Tensor, mask: torch.Tensor,
               extra: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder + fusion + the decoder's per-cell projection: float (B, hidden[0], H/2, W/2)."""
        feats = self.encoder(self.make_input(image, mask, extra))
        return self.decoder.prepare(self.fusion(feats))

    def decode(self, proj: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
               chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Logits (B, N) at query points; see :meth:`ImplicitDecoder.query`."""
        return self.decoder.query_chunked(proj, coord, cell, chunk)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, out_size: tuple[int, int] | None = None,
                extra: torch.Tensor | None = None, chunk: int = DEFAULT_CHUNK,
                idx: torch.Tensor | None = None) -> torch.Tensor:
        """Logits float32 (B, 1, Ho, Wo) over the whole input at ``out_size`` (default: input size),
        or, when ``idx`` (int64 (B, N) flat pixel indices) is given, (B, N) at those pixels
        (:meth:`forward_points`)."""
        if idx is not None:
            return self.forward_points(image, mask, idx, extra)
        proj = self.encode(image, mask, extra)
        ho, wo = out_size or image.shape[-2:]
        logits = self.decoder.query_grid(proj, ho, wo, chunk=chunk).unsqueeze(1)
        m = resize_mask(mask, (ho, wo))
        logits = self.add_skip(logits, m)
        if self.config.pixel_head:
            logits = logits + self.pixel_logits(resize_image(image, (ho, wo)), m)
        return logits

    def forward_points(self, image: torch.Tensor, mask: torch.Tensor, idx: torch.Tensor,
                       extra: torch.Tensor | None = None) -> torch.Tensor:
        """Logits float32 (B, N) at N pixel centres of the input grid (point-sampled training).

        Args:
            idx: int64 (B, N), flat pixel indices ``row * W + col`` into the (H, W) input.
        """
        proj = self.encode(image, mask, extra)
        coord, cell = pixel_coords(idx, image.shape[-2:])
        logits = self.decoder.query(proj, coord, cell)
        m = torch.gather(mask.flatten(1), 1, idx)
        logits = self.add_skip(logits, m)
        if self.config.pixel_head:
            logits = logits + torch.gather(self.pixel_logits(image, mask).flatten(1), 1, idx)
        return logits

    def add_skip(self, logits: torch.Tensor, mask_at_queries: torch.Tensor) -> torch.Tensor:
        """``logits + s * (2 m - 1)`` with the coarse mask m at the same points (``mask_skip``);
        ``logits`` unchanged otherwise."""
        if not self.config.mask_skip:
            return logits
        return logits + self.skip_scale * (2 * mask_at_queries.to(logits.dtype) - 1)

    def pixel_logits(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The pixel head's logit corrections float32 (B, 1, H, W) at the inputs' own resolution.

        Args:
            image: float32 (B, 3, H, W) RGB in [0, 1]; mask: float32 (B, 1, H, W) in [0, 1] (the mask
                the decoder's output corrects: the coarse mask, or the previous cascade step's output).

        Raises:
            SamSrError: the model has no pixel head (``pixel_head: 0``).
        """
        if not self.config.pixel_head:
            raise SamSrError("this model has no pixel head (model.pixel_head: 0)")
        x = torch.cat([(image - self.mean) / self.std, mask * 2 - 1], dim=1)
        head = self.pixel_head
        return head(x) if torch.is_grad_enabled() else head.banded(x)

    def pixel_map(self, image: torch.Tensor, mask: torch.Tensor, tile: int = 256) -> "LazyPixelMap":
        """The pixel head's logits for one image as a :class:`LazyPixelMap`: computed tile by tile
        (``tile`` px squares) only where they are read, equal to :meth:`pixel_logits` there.

        Args:
            image: float32 (1, 3, H, W) RGB in [0, 1]; mask: float32 (1, 1, H, W) in [0, 1].

        Raises:
            SamSrError: the model has no pixel head, or ``tile`` < 1.
        """
        if not self.config.pixel_head:
            raise SamSrError("this model has no pixel head (model.pixel_head: 0)")

        @torch.no_grad()
        def window(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
            return self.pixel_logits(image[..., y0:y1, x0:x1], mask[..., y0:y1, x0:x1])

        return LazyPixelMap(window, tuple(image.shape[-2:]), self.pixel_head.radius, tile, image.device)


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


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a float (B, 1, H, W) mask (area when shrinking), values stay in [0, 1]."""
    if mask.shape[-2:] == tuple(size):
        return mask
    shrink = size[0] < mask.shape[-2] and size[1] < mask.shape[-1]
    return F.interpolate(mask, size=size, mode="area" if shrink else "bilinear",
                         align_corners=None if shrink else False)
