"""Region step of SAM-SR v4: correct the coarse mask's regions on SAM's low-resolution grid.

Not in CRM. A band refiner moves a boundary by a pixel or two; a coarse mask from a real segmenter is
wrong by regions (a missing part, an extra blob, a second object). This network sees the whole image
through SAM's image embedding and decides, on SAM's 256 x 256 grid of the padded 1024 px frame, which
cells belong to the object. Its inputs:

- SAM's image embedding, float (B, 256, 64, 64) (one cell = 16 px of the 1024 frame);
- the coarse mask, area-averaged onto the 256 grid, in [0, 1];
- SAM's answer to prompts derived from the coarse mask (:mod:`sam_sr.sam.prompt`), its 256 x 256
  logits (the ``sam-prompt`` baseline);
- the image, area-averaged onto the 256 grid (RGB in [0, 1]), and a map of the cells the image covers.

Layout: a small U-Net over the 256 grid (strides 1, 2, 4) whose stride-4 level (64 x 64, SAM's own
grid) joins the projected embedding, then dilated residual blocks and one multi-head self-attention
layer on a 16 x 16 pooling of it for image-wide context. The output logit is the SAM answer's logit
times a learned scale plus a correction whose last layer starts at zero, so an untrained network
returns the ``sam-prompt`` answer (up to the scale) and training learns where to depart from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SamSrError
from ...models.base import IMAGENET_MEAN, IMAGENET_STD, config_from_dict, config_to_dict

#: Clamp of SAM's logits before they enter the network (SAM's logits reach +-30 far from edges).
SAM_LOGIT_CLAMP = 20.0


@dataclass
class RegionConfig:
    """Architecture of the region network.

    Args:
        widths: channels at strides 1, 2 and 4 of the 256 grid.
        sam_channels: channels of SAM's embedding (256 for SAM and MobileSAM).
        sam_proj: channels the embedding is projected to.
        hidden: channels of the 64 x 64 trunk. ``dilations``: one residual block (two depthwise-
            separable 3 x 3 convolutions) per entry.
        heads: attention heads of the global layer on a 16 x 16 pooling of the trunk (0 = none).
        sam_inputs: SAM answers given (logit maps for different prompt settings); the first one is
            the answer the output starts from.
    """

    widths: tuple[int, ...] = (8, 16, 48)
    sam_channels: int = 256
    sam_proj: int = 64
    hidden: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    heads: int = 4
    sam_inputs: int = 2

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RegionConfig":
        cfg = config_from_dict(cls, d, "region")
        if len(cfg.widths) != 3:
            raise SamSrError("region widths need 3 entries (strides 1, 2, 4)")
        if cfg.heads and cfg.hidden % cfg.heads:
            raise SamSrError("region hidden channels must be divisible by heads")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _sep(cin: int, cout: int, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """Depthwise 3 x 3 (dilated) + pointwise 1 x 1 convolution, batch norm (+ ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cin, 3, 1, dilation, dilation, groups=cin, bias=False),
                               nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(_sep(c, c, dilation), _sep(c, c, dilation, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _GlobalAttention(nn.Module):
    """Self-attention over a 16 x 16 pooling of a (B, C, h, w) map, added back upsampled."""

    GRID = 16

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, heads, batch_first=True)
        self.pos = nn.Parameter(torch.zeros(1, self.GRID ** 2, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.GRID
        p = F.adaptive_avg_pool2d(x, (g, g)).flatten(2).transpose(1, 2) + self.pos
        q = self.norm(p)
        y = self.attn(q, q, q, need_weights=False)[0].transpose(1, 2).reshape(b, c, g, g)
        return x + F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)


class RegionNet(nn.Module):
    """Region network (see the module docstring).

    Inputs of :meth:`forward`:
        embedding: float (B, sam_channels, 64, 64), SAM's image embedding.
        coarse: float (B, 1, 256, 256) in [0, 1], the coarse mask on SAM's low-resolution grid.
        sam_logits: float (B, sam_inputs, 256, 256), SAM's logits for prompts from the coarse mask.
        image: float (B, 3, 256, 256), RGB in [0, 1] on the same grid (zero outside the image).
        valid: float (B, 1, 256, 256), 1 on the cells the image covers, 0 on SAM's padding.

    Returns:
        float32 (B, 1, 256, 256) logits of the corrected mask on the same grid.

    Raises:
        SamSrError: inputs of the wrong shape.
    """

    def __init__(self, config: RegionConfig | None = None):
        super().__init__()
        self.config = c = config or RegionConfig()
        w1, w2, w4 = c.widths
        self.stem = _cbr(5 + c.sam_inputs, w1)
        self.down2 = _cbr(w1, w2, 2)
        self.down4 = _cbr(w2, w4, 2)
        self.sam = nn.Sequential(nn.Conv2d(c.sam_channels, c.sam_proj, 1, bias=False),
                                 nn.BatchNorm2d(c.sam_proj), nn.ReLU(inplace=True))
        self.join = nn.Sequential(nn.Conv2d(w4 + c.sam_proj, c.hidden, 1, bias=False),
                                  nn.BatchNorm2d(c.hidden), nn.ReLU(inplace=True))
        self.trunk = nn.Sequential(*[_Residual(c.hidden, d) for d in c.dilations])
        self.context = _GlobalAttention(c.hidden, c.heads) if c.heads else nn.Identity()
        self.up2 = _sep(c.hidden + w2, w2)
        self.up1 = _sep(w2 + w1, w1)
        self.head = nn.Conv2d(w1, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.sam_scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, embedding: torch.Tensor, coarse: torch.Tensor, sam_logits: torch.Tensor,
                image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        b = coarse.shape[0]
        for name, t, ch in (("coarse", coarse, 1), ("sam_logits", sam_logits, self.config.sam_inputs), ("image", image, 3),
                            ("valid", valid, 1)):
            if t.dim() != 4 or t.shape[0] != b or t.shape[1] != ch or t.shape[-2:] != (256, 256):
                raise SamSrError(f"region input {name} must be ({b}, {ch}, 256, 256), got {tuple(t.shape)}")
        if embedding.dim() != 4 or embedding.shape[:2] != (b, self.config.sam_channels):
            raise SamSrError(f"region input embedding must be ({b}, {self.config.sam_channels}, h, w), "
                             f"got {tuple(embedding.shape)}")
        s = sam_logits.float().clamp(-SAM_LOGIT_CLAMP, SAM_LOGIT_CLAMP)
        x = torch.cat([coarse * 2 - 1, s / 10, ((image - self.mean) / self.std) * valid, valid], 1)
        f1 = self.stem(x)
        f2 = self.down2(f1)
        f4 = self.down4(f2)
        e = self.sam(embedding.float())
        if e.shape[-2:] != f4.shape[-2:]:
            e = F.interpolate(e, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        t = self.context(self.trunk(self.join(torch.cat([f4, e], 1))))
        up = lambda a, ref: F.interpolate(a, size=ref.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        y = self.up2(torch.cat([up(t, f2), f2], 1))
        y = self.up1(torch.cat([up(y, f1), f1], 1))
        return self.sam_scale * s[:, :1] + self.head(y)
