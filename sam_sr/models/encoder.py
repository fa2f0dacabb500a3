"""CNN encoder over RGB + coarse mask (+ optional extra channels), built from timm.

Follows CRM (Shen et al., CVPR 2022, "High Quality Segmentation for Ultra High-resolution Images"):
the first convolution takes the RGB image plus the coarse mask; when RGB-pretrained weights are loaded,
the weights of the extra input channels start at zero so the pretrained behaviour is kept at step 0.
CRM uses a ResNet; any timm CNN that returns multi-scale features (``features_only``) with a dilated
``output_stride`` and a stride-2 first feature works too (e.g. ``efficientnet_b0``,
``mobilenetv3_large_100``, ``regnetx_002``); others are refused with a :class:`SamSrError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import timm
import torch
from timm.models._features import FeatureDictNet
from torch import nn

from ..errors import SamSrError
from .receptive import stage_reach

#: Window crops are at multiples of this many pixels (the encoder's coarsest stride, 8; the same
#: value as :data:`sam_sr.models.base.ALIGN`).
_ALIGN = 8


class MaskEncoder(nn.Module):
    """timm CNN with ``features_only`` over ``3 + 1 + extra_channels`` input channels.

    Args:
        backbone: timm model name, e.g. ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` (CRM), or another
            CNN with timm feature extraction (``"efficientnet_b0"``, ...).
        out_indices: timm feature indices to return, finest first; the first must be at stride 2.
            For ResNets ``0`` = stride 2 (conv1), ``1`` = stride 4 (layer1), ``2`` = stride 8 (layer2),
            ``3`` = layer3 (stride 8 when ``output_stride=8``).
        output_stride: 8, 16 or 32; 8 dilates layer3/layer4 as CRM does.
        extra_channels: further input channels after the mask (e.g. a SAM RGB map: 3).
        pretrained: load timm's ImageNet weights (downloads; never used in tests or CI).
        backbone_checkpoint: path to a local timm state dict (``.pth``/``.pt``/``.safetensors``).

    Raises:
        SamSrError: unknown backbone; one timm cannot build as a dilated multi-scale feature extractor
            (e.g. a vision transformer); a first feature not at stride 2; a backbone checkpoint that
            is missing or does not fit.
    """

    def __init__(self, backbone: str = "resnet18", out_indices: Sequence[int] = (0, 1, 2),
                 output_stride: int = 8, extra_channels: int = 0, pretrained: bool = False,
                 backbone_checkpoint: str | None = None):
        super().__init__()
        self.in_channels = 4 + int(extra_channels)
        load_weights = bool(pretrained) or backbone_checkpoint is not None
        try:
            self.body = timm.create_model(
                backbone, features_only=True, out_indices=tuple(out_indices),
                output_stride=output_stride, pretrained=bool(pretrained),
                in_chans=3 if load_weights else self.in_channels)
        except (RuntimeError, TypeError, ValueError, AssertionError, KeyError) as exc:
            # unknown names (RuntimeError), models without features_only/output_stride support
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SamSrError(f"cannot build backbone {backbone!r} as a multi-scale CNN feature extractor "
                             f"(timm features_only, output_stride={output_stride}): {first}") from exc
        self.channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())
        if self.reductions[0] != 2:
            raise SamSrError(f"backbone {backbone!r} with out_indices {tuple(out_indices)}: the first feature "
                             f"is at stride {self.reductions[0]}; the decoder needs a stride-2 first feature")
        if backbone_checkpoint is not None:
            self._load_local(backbone_checkpoint)
        if load_weights:
            self._expand_first_conv(backbone)

    def _load_local(self, path: str) -> None:
        p = Path(path)
        if not p.is_file():
            raise SamSrError(f"backbone checkpoint not found: {p}")
        try:
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file
                state = load_file(str(p))
            else:
                state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt file for the user
            raise SamSrError(f"cannot read backbone checkpoint {p}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        own = self.body.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in fitting]
        # tensors of the layers we build that this backbone lacks (e.g. resnet34's layer1.2 for resnet18)
        built = {k.split(".")[0] for k in own}
        missing += [k for k in state if k.split(".")[0] in built and k not in own]
        if missing:
            raise SamSrError(f"backbone checkpoint {p} does not fit this backbone: "
                             f"{len(missing)} tensors missing or mis-shaped, e.g. {missing[:3]}")
        self.body.load_state_dict(fitting, strict=True)

    def _expand_first_conv(self, backbone: str) -> None:
        """Give the RGB input convolution (the first ``Conv2d`` over 3 channels) the mask and extra
        channels, their weights at zero."""
        name, conv = next(((n, m) for n, m in self.body.named_modules()
                           if isinstance(m, nn.Conv2d) and m.in_channels == 3), (None, None))
        if conv is None or conv.groups != 1:
            raise SamSrError(f"backbone {backbone!r}: no plain RGB input convolution found to add the mask "
                             f"channel to")
        new = type(conv)(self.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                         padding=conv.padding, dilation=conv.dilation, bias=conv.bias is not None)
        with torch.no_grad():
            new.weight.zero_()
            new.weight[:, :3] = conv.weight
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
        parent, _, attr = name.rpartition(".")
        setattr(self.body.get_submodule(parent) if parent else self.body, attr, new)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: float32 (B, in_channels, H, W), normalised. Returns one map per ``out_indices``."""
        if x.shape[1] != self.in_channels:
            raise SamSrError(f"encoder expects {self.in_channels} input channels, got {x.shape[1]}")
        return self.body(x)

    def _window_plan(self, context: int, keep: int) -> list[tuple[str, int | None]] | None:
        """Per stage of the timm body (a ``FeatureDictNet``, whose stages run in order), the margin in
        px (a multiple of 8) its output is cropped to around a window's core, or None (no crop);
        None for other bodies. A stage's output is cropped to what the later stages and the features
        (``keep`` px around the core) read, when that is still exact: within ``context`` px minus
        the receptive-field reach of the stages so far."""
        key = ("_plan", context, keep)
        if key in self.__dict__:
            return self.__dict__[key]
        plan = None
        if isinstance(self.body, FeatureDictNet):
            names = list(self.body.keys())
            reach = stage_reach(self.body, names, self.in_channels)
            if reach is not None:
                need, m = {}, 0
                for name in reversed(names):
                    if name in self.body.return_layers:
                        m = max(m, keep)
                    need[name] = m
                    m += reach[name]
                plan, used = [], 0
                for name in names:
                    used += reach[name]
                    crop = -(-need[name] // _ALIGN) * _ALIGN
                    plan.append((name, crop if crop <= context - used else None))
        self.__dict__[key] = plan
        return plan

    def forward_window(self, x: torch.Tensor, core: tuple[int, int, int, int], context: int,
                       keep: int) -> tuple[list[torch.Tensor], tuple[int, int, int, int]]:
        """The features of a window's core and ``keep`` px around it, computing later stages only
        over what they need (equal to :meth:`forward`'s over the same pixels when the window holds
        ``context`` px around its core, or reaches the input's own edge, on each side).

        Args:
            x: float32 (B, in_channels, H, W), normalised; H, W multiples of 8.
            core: (y0, y1, x0, x1) window px, multiples of 8. context, keep: px, multiples of 8.

        Returns:
            (one map per ``out_indices``, each covering the same box of window px; that box
            (y0 - keep, y1 + keep, x0 - keep, x1 + keep) clipped to the window).
        """
        if x.shape[1] != self.in_channels:
            raise SamSrError(f"encoder expects {self.in_channels} input channels, got {x.shape[1]}")
        box = (0, x.shape[-2], 0, x.shape[-1])
        plan = self._window_plan(context, keep)
        if plan is None:
            out = [_crop(f, box, core, keep) for f in self.body(x)]
            return [f for f, _ in out], out[0][1]
        feats, fbox = [], box
        for name, crop in plan:
            x = self.body[name](x)
            if crop is not None:
                x, box = _crop(x, box, core, crop)
            if name in self.body.return_layers:
                f, fbox = _crop(x, box, core, keep)
                feats.append(f)
        return feats, fbox


def _crop(x: torch.Tensor, box: tuple[int, int, int, int], core: tuple[int, int, int, int],
          margin: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``x`` (covering window px ``box``) cropped to ``core`` +- ``margin`` px within ``box``."""
    new = (max(box[0], core[0] - margin), min(box[1], core[1] + margin),
           max(box[2], core[2] - margin), min(box[3], core[3] + margin))
    ry, rx = (box[1] - box[0]) // x.shape[-2], (box[3] - box[2]) // x.shape[-1]
    return x[..., (new[0] - box[0]) // ry:(new[1] - box[0]) // ry,
             (new[2] - box[2]) // rx:(new[3] - box[2]) // rx], new
