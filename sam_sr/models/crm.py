"""CRM refiner: ResNet encoder over image + coarse mask, multi-scale fusion, implicit decoder.

Shen et al., CVPR 2022, "High Quality Segmentation for Ultra High-resolution Images". Written for
sam-sr from the paper's description (the authors' code is CC BY-NC and is not used).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SamSrError
from .base import ALIGN, EXTRA_CHANNELS, EXTRA_NONE, RefinerModel, config_from_dict, config_to_dict
from .encoder import MaskEncoder
from .fusion import FeatureFusion
from .image_features import build_image_features
from .implicit_decoder import ImplicitDecoder
from .pixel_head import PixelHead
from .receptive import receptive_field


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

    ``image_features`` (not in CRM; SAM-SR v3's idea for the boundary step): ``"tinyvit"`` runs
    MobileSAM's pretrained TinyViT stages 0-1 (:class:`~sam_sr.models.image_features.TinyViTStem`,
    frozen) over the RGB image and adds 1x1 projections of its stride-4 and stride-8 maps to the
    encoder's second and third features (``out_indices`` must then give strides 2, 4 and 8). The
    projections start at zero, so a refiner fine-tuned from one without them starts as it was.
    ``image_features_checkpoint`` is where training copies the stages' weights from (the bundled
    ``mobile_sam.pt``); a saved refiner carries them itself.
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
    image_features: str = ""
    image_features_checkpoint: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CRMConfig":
        """Build from a dict; raises :class:`SamSrError` on unknown keys."""
        return config_from_dict(cls, d, "model")

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


#: :meth:`CRM.encode_window` runs the fusion in bands of about this many stride-2 rows (the
#: concatenated and fused 128-channel maps at stride 2 are most of a window's activation memory).
WINDOW_FUSION_ROWS = 32

#: context (or None) per encoder architecture (backbone, out_indices, output_stride, extra_channels)
_CONTEXTS: dict[tuple, int | None] = {}


class CRM(RefinerModel):
    """Continuous Refinement Model (see :class:`~sam_sr.models.base.RefinerModel` for the interface).

    Inputs:
        image: float32 (B, 3, H, W), RGB in [0, 1] (ImageNet normalisation is applied inside).
        mask: float32 (B, 1, H, W), coarse mask in [0, 1] (binary or soft); mapped to [-1, 1] inside.
        extra: float32 (B, extra_channels, H, W) in [0, 1] (e.g. a SAM map) when ``extra_channels`` > 0,
            mapped to [-1, 1]; ignored otherwise.

    Raises:
        SamSrError: inconsistent branch/out_indices lengths, a negative pixel head.
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
        self._init_skip()
        if c.pixel_head < 0 or c.pixel_head_layers < 1:
            raise SamSrError("pixel_head must be >= 0 channels and pixel_head_layers >= 1")
        if c.pixel_head:
            self.pixel_head = PixelHead(c.pixel_head, c.pixel_head_layers)
        self.image_features = build_image_features(c.image_features, c.image_features_checkpoint)
        if self.image_features is not None:
            if list(self.encoder.reductions) != [2, 4, 8]:
                raise SamSrError(f"image_features needs encoder features at strides 2, 4 and 8, got "
                                 f"{self.encoder.reductions}")
            self.feature_proj = nn.ModuleList(
                nn.Conv2d(cin, cout, 1) for cin, cout in zip(self.image_features.channels,
                                                             self.encoder.channels[1:]))
            for conv in self.feature_proj:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The multi-scale features the fusion reads: the encoder's over the normalised input ``x``
        (float (B, 4 [+ C], H, W), :meth:`normalise`), with the projected image features added when
        the model has them. One map per ``out_indices``, finest (stride 2) first."""
        return self._add_image_features(x, self.encoder(x))

    def _add_image_features(self, x: torch.Tensor, feats: list[torch.Tensor],
                            box: tuple[int, int, int, int] | None = None) -> list[torch.Tensor]:
        """``feats`` (stride 2, 4, 8; covering window px ``box``, or all of ``x``) with the projected
        image features added to the stride-4 and stride-8 maps."""
        if self.image_features is None:
            return feats
        out = list(feats)
        for i, (t, proj) in enumerate(zip(self.image_features(x[:, :3]), self.feature_proj), start=1):
            r = 4 * i
            if box is not None:
                t = t[..., box[0] // r:box[1] // r, box[2] // r:box[3] // r]
            t = proj(t)
            if t.shape[-2:] != out[i].shape[-2:]:
                t = F.interpolate(t, size=out[i].shape[-2:], mode="bilinear", align_corners=False)
            out[i] = out[i] + t
        return out

    @property
    def extra_input(self) -> str:
        return EXTRA_CHANNELS if self.config.extra_channels else EXTRA_NONE

    def _check_extra(self, image: torch.Tensor, extra: torch.Tensor | None) -> None:
        n = self.config.extra_channels
        if n and (extra is None or extra.shape[1] != n or extra.shape[-2:] != image.shape[-2:]):
            raise SamSrError(f"this model needs {n} extra input channels matching the image")

    def encode(self, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None,
               fusion_patches: int = 0) -> torch.Tensor:
        """Encoder + fusion + the decoder's per-cell projection: float (B, hidden[0], H/2, W/2).

        ``fusion_patches`` > 0 runs the fusion convolutions in that many row bands
        (:meth:`FeatureFusion.forward_patched`: the same values, less memory; eval mode only).

        Raises:
            SamSrError: mismatched spatial sizes or channel counts (see :meth:`normalise`), missing or
                mis-shaped extra channels.
        """
        self._check_extra(image, extra)
        feats = self.features(self.normalise(image, mask, extra if self.config.extra_channels else None))
        if fusion_patches > 0:
            return self.fusion.forward_patched(feats, fusion_patches, post=self.decoder.prepare)
        return self.decoder.prepare(self.fusion(feats))

    @property
    def context(self) -> int | None:
        """Context in input pixels that makes :meth:`encode_window` exact (see
        :meth:`RefinerModel.context`): the encoder's receptive field (:func:`receptive_field`), plus
        the fusion's reach (the coarsest maps are resampled bilinearly to stride 2, reading up to one
        coarse cell (``stride`` px) beyond the nearest, and the 3x3 fusion convolution reads one
        stride-2 cell, 2 px, beyond), rounded up to a multiple of :data:`ALIGN` (tests/inference/test_sparse.py checks it
        numerically with :func:`~sam_sr.models.receptive.window_is_exact`). None for encoders whose field a window cannot hold (e.g.
        squeeze-and-excitation blocks pool over the whole input) or whose coarsest stride exceeds
        :data:`ALIGN` (e.g. ``output_stride: 16``). For the ResNet-18 of the shipped model: 120 px.
        The context depends on the architecture only; it is found once per architecture and process
        (one forward pass over a 64 px probe).
        """
        if "_context" not in self.__dict__:
            c = self.config
            key = (c.backbone, tuple(c.out_indices), c.output_stride, c.extra_channels, c.image_features)
            if key not in _CONTEXTS:
                _CONTEXTS[key] = self._find_context()
            self.__dict__["_context"] = _CONTEXTS[key]
        return self.__dict__["_context"]

    def _find_context(self) -> int | None:
        rf = receptive_field(self.encoder, self.encoder.in_channels)
        if rf is None or rf.stride > ALIGN or max(self.encoder.reductions) > ALIGN:
            return None
        reach = max(rf.before, rf.after) + rf.stride + 2
        if self.image_features is not None:
            tv = receptive_field(self.image_features, 3)
            if tv is None:
                return None
            reach = max(reach, max(tv.before, tv.after) + tv.stride + 2)
        return -(-reach // ALIGN) * ALIGN

    def encode_window(self, image: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None,
                      core: tuple[int, int, int, int]) -> torch.Tensor:
        """:meth:`RefinerModel.encode_window`, computing each part only where the core's features read
        it: the fusion and the decoder's projection over the core and one coarse cell (:data:`ALIGN`
        px) around it (the fusion is about 40% of the shipped model's encoding cost per pixel), and
        each encoder stage over what the later ones read (:meth:`MaskEncoder.forward_window`: for the
        shipped ResNet-18, layer2 and layer3 run on 96 and 64 px around the core, not 120).

        Raises:
            SamSrError: as :meth:`encode`; a core box that is not a multiple of :data:`ALIGN` or not
                inside the window.
        """
        self._check_extra(image, extra)
        h, w = image.shape[-2:]
        y0, y1, x0, x1 = (int(v) for v in core)
        if any(v % ALIGN for v in (y0, y1, x0, x1, h, w)) or not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise SamSrError(f"encode_window: core {core} must lie in the {h}x{w} window, in multiples of {ALIGN}")
        x = self.normalise(image, mask, extra if self.config.extra_channels else None)
        feats, (a0, a1, b0, b1) = self.encoder.forward_window(x, (y0, y1, x0, x1), self.context or 0, ALIGN)
        feats = self._add_image_features(x, feats, (a0, a1, b0, b1))
        rows = feats[0].shape[-2]
        if rows > 2 * WINDOW_FUSION_ROWS:   # fusion in bands: its stride-2 maps are the largest
            proj = self.fusion.forward_patched(feats, rows // WINDOW_FUSION_ROWS, post=self.decoder.prepare)
        else:
            proj = self.decoder.prepare(self.fusion(feats))
        return proj[..., (y0 - a0) // 2:(y1 - a0) // 2, (x0 - b0) // 2:(x1 - b0) // 2]
