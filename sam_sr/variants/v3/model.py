"""SAM-SR v3.x: SAM image-encoder features inside the refiner (SAM-SR thesis), written for sam-sr.

The refiner pairs SAM's image embedding (context) with a shallow CNN over image + coarse mask (local
detail), fuses them with a CNN and decodes with the same implicit decoder as CRM. Mask information
reaches the SAM branch through:

- v3.1 (``mask_mode="none"``): nothing (the mask enters only through the shallow CNN);
- v3.2 (``"embed"``): a CNN mask embedding added to the projected SAM features;
- v3.3 (``"global"``): multi-head attention over all feature cells, queries from the SAM features and
  keys/values from SAM features + mask embedding (on a grid of at most ``global_tokens`` per side);
- v3.4 (``"window"``): the same attention inside non-overlapping windows of ``window`` x ``window``
  cells at the fusion resolution (any input size).

The SAM embedding is an input (``extra``): float (B, C_sam, h', w') spatially aligned with the input
image (any h', w'; SAM's own is 64 x 64 for the 1024-px frame, see :mod:`sam_sr.sam.features`),
resized inside to the stride-8 grid. SAM itself never runs inside the model: its embeddings are
precomputed and cached (``scripts/precompute_sam.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import SamSrError
from ...models.base import EXTRA_EMBEDDING, RefinerModel, config_from_dict, config_to_dict, signed
from ...models.implicit_decoder import ImplicitDecoder

MASK_MODES = ("none", "embed", "global", "window")


@dataclass
class V3Config:
    """Architecture of a SAM-SR v3 refiner.

    Args:
        mask_mode: how the coarse mask reaches the SAM branch (see module docstring).
        sam_channels: channels of the SAM embedding (256 for SAM and MobileSAM).
        cnn_channels: widths of the shallow CNN's stride-2, -4 and -8 stages.
        sam_proj: channels the SAM embedding is projected to.
        heads: attention heads (v3.3, v3.4). ``window``: window side in stride-8 cells (v3.4).
        global_tokens: v3.3 attends on a grid of at most this many cells per side.
        fusion_channels, decoder_hidden, mask_skip, mask_skip_init: as :class:`CRMConfig`.
    """

    mask_mode: str = "none"
    sam_channels: int = 256
    cnn_channels: tuple[int, ...] = (32, 48, 64)
    sam_proj: int = 64
    heads: int = 4
    window: int = 8
    global_tokens: int = 32
    fusion_channels: int = 128
    decoder_hidden: tuple[int, ...] = (32, 32, 32, 32)
    mask_skip: bool = True
    mask_skip_init: float = 2.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "V3Config":
        """Build from a dict; raises :class:`SamSrError` on unknown keys or a bad ``mask_mode``."""
        cfg = config_from_dict(cls, d, "v3 model")
        if cfg.mask_mode not in MASK_MODES:
            raise SamSrError(f"mask_mode must be one of {MASK_MODES}, got {cfg.mask_mode!r}")
        if len(cfg.cnn_channels) != 3:
            raise SamSrError("cnn_channels needs 3 widths (strides 2, 4, 8)")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MaskAttention(nn.Module):
    """Multi-head attention of SAM features (queries) over SAM features + mask embedding (keys,
    values), globally or in windows; residual. Input/output float (B, C, h, w)."""

    def __init__(self, channels: int, heads: int, window: int = 0, max_tokens: int = 32):
        super().__init__()
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.window, self.max_tokens = window, max_tokens

    def _attend(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """q, kv: (N, L, C) -> (N, L, C)."""
        return self.attn(self.norm_q(q), self.norm_kv(kv), self.norm_kv(kv), need_weights=False)[0]

    def forward(self, sam: torch.Tensor, sam_mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = sam.shape
        if not self.window:  # global attention on a pooled grid, result upsampled
            gh, gw = min(h, self.max_tokens), min(w, self.max_tokens)
            q = F.adaptive_avg_pool2d(sam, (gh, gw)).flatten(2).transpose(1, 2)
            kv = F.adaptive_avg_pool2d(sam_mask, (gh, gw)).flatten(2).transpose(1, 2)
            out = self._attend(q, kv).transpose(1, 2).reshape(b, c, gh, gw)
            return sam + F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        k = self.window
        ph, pw = -h % k, -w % k
        qs = F.pad(sam, (0, pw, 0, ph))
        kvs = F.pad(sam_mask, (0, pw, 0, ph))
        hh, ww = (h + ph) // k, (w + pw) // k

        def windows(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(b, c, hh, k, ww, k).permute(0, 2, 4, 3, 5, 1)
            return x.reshape(b * hh * ww, k * k, c)

        out = self._attend(windows(qs), windows(kvs))
        out = out.reshape(b, hh, ww, k, k, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, hh * k, ww * k)
        return sam + out[..., :h, :w]


class SamSrV3(RefinerModel):
    """SAM-SR v3 refiner (see module docstring and :class:`~sam_sr.models.base.RefinerModel`).

    Inputs:
        image: float32 (B, 3, H, W) RGB in [0, 1], H and W multiples of 8.
        mask: float32 (B, 1, H, W) coarse mask in [0, 1].
        extra: float32 (B, sam_channels, h', w'): SAM embedding aligned with the image.
    The named variants v3.1-v3.4 are subclasses fixing ``mask_mode`` (:mod:`sam_sr.variants.v3`).
    """

    variant = "v3"
    extra_input = EXTRA_EMBEDDING

    def __init__(self, config: V3Config | None = None):
        super().__init__()
        self.config = c = config or V3Config()
        c1, c2, c3 = c.cnn_channels
        self.stage1 = _block(4, c1, 2)
        self.stage2 = _block(c1, c2, 2)
        self.stage3 = _block(c2, c3, 2)
        self.sam_proj = nn.Sequential(nn.Conv2d(c.sam_channels, c.sam_proj, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(c.sam_proj, c.sam_proj, 3, 1, 1))
        if c.mask_mode != "none":
            # CNN mask embedding: the coarse mask at stride 8 (like SAM's own mask-prompt encoder)
            self.mask_embed = nn.Sequential(
                nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(inplace=True), nn.Conv2d(16, 32, 3, 2, 1),
                nn.ReLU(inplace=True), nn.Conv2d(32, c.sam_proj, 3, 2, 1))
        if c.mask_mode in ("global", "window"):
            self.attention = MaskAttention(c.sam_proj, c.heads,
                                           c.window if c.mask_mode == "window" else 0, c.global_tokens)
        fin = c1 + c2 + c3 + c.sam_proj
        self.fuser = nn.Sequential(nn.Conv2d(fin, c.fusion_channels, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(c.fusion_channels), nn.ReLU(inplace=True),
                                   nn.Conv2d(c.fusion_channels, c.fusion_channels, 3, 1, 1))
        self.decoder = ImplicitDecoder(c.fusion_channels, c.decoder_hidden)
        self._init_skip()

    def sam_branch(self, sam: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Projected SAM features with the mask information of ``mask_mode``, float (B, P, h8, w8)."""
        f = self.sam_proj(F.interpolate(sam.float(), size=size, mode="bilinear", align_corners=False))
        if self.config.mask_mode == "none":
            return f
        m = self.mask_embed(signed(mask))
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False) if m.shape[-2:] != size else m
        if self.config.mask_mode == "embed":
            return f + m
        return self.attention(f, f + m)

    def encode(self, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None,
               fusion_patches: int = 0) -> torch.Tensor:
        """Fused features projected for the decoder, float (B, hidden[0], H/2, W/2).
        (``fusion_patches`` is ignored: the fuser runs whole.)

        Raises:
            SamSrError: missing or mis-shaped SAM features, mismatched image/mask sizes.
        """
        if image.dim() != 4 or image.shape[1] != 3 or mask.shape[-2:] != image.shape[-2:] \
                or mask.shape[1] != 1:
            raise SamSrError(f"image (B, 3, H, W) and mask (B, 1, H, W) must match, got "
                             f"{tuple(image.shape)} and {tuple(mask.shape)}")
        if extra is None or extra.dim() != 4 or extra.shape[1] != self.config.sam_channels:
            raise SamSrError(f"a {self.variant} model needs SAM features (B, {self.config.sam_channels}, h, w)"
                             f"; got {None if extra is None else tuple(extra.shape)}")
        x = self.normalise(image, mask)
        f2 = self.stage1(x)
        f4 = self.stage2(f2)
        f8 = self.stage3(f4)
        s = self.sam_branch(extra, mask, tuple(f8.shape[-2:]))
        up = lambda t: F.interpolate(t, size=f2.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        fused = self.fuser(torch.cat([f2, up(f4), up(f8), up(s)], 1))
        return self.decoder.prepare(fused)
