"""Pretrained image features for the refiner: the first stages of MobileSAM's TinyViT encoder.

SAM-SR v3's idea (SAM encoder features inside the refiner), applied to the boundary step: the refiner's
ResNet-18 is trained from scratch on a CPU, while MobileSAM's image encoder (TinyViT-5M, Wu et al.,
ECCV 2022, distilled from SAM's ViT-H by Zhang et al. 2023, "Faster Segment Anything") is pretrained
and ships with sam-sr. Its first two stages are convolutional (a two-convolution patch embedding, two
MBConv blocks and a strided patch merging): they give 64 channels at stride 4 and 128 at stride 8 for
any input size, with a small receptive field (about 31 px), so they run on the refiner's crops and
windows like the ResNet does. The stages are built from ``mobile_sam``'s own modules, their weights
copied from the bundled ``mobile_sam.pt`` (or read from the refiner's checkpoint), and stay frozen: the
refiner learns only 1x1 projections of them, added to its own stride-4 and stride-8 features.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import SamSrError

#: The names of the image-feature sources a refiner accepts (``CRMConfig.image_features``).
IMAGE_FEATURES = ("", "tinyvit")

#: (channels at stride 4, channels at stride 8) of :class:`TinyViTStem`.
TINYVIT_CHANNELS = (64, 128)

#: The prefixes of the stem's tensors in a MobileSAM checkpoint.
_PREFIX = "image_encoder."


class TinyViTStem(nn.Module):
    """MobileSAM's TinyViT stages 0 and 1 (patch embedding and the MBConv stage with its merging),
    frozen and always in eval mode (their batch norms keep MobileSAM's statistics).

    Input: float (B, 3, H, W), RGB normalised with ImageNet's mean and standard deviation (the same
    normalisation as MobileSAM's ``pixel_mean`` / ``pixel_std`` on 0-255 values); any H, W.
    Output: (float (B, 64, ceil(H/4), ceil(W/4)), float (B, 128, ceil(H/8), ceil(W/8))).
    """

    channels = TINYVIT_CHANNELS

    def __init__(self):
        super().__init__()
        import warnings
        with warnings.catch_warnings():  # mobile_sam re-registers timm's TinyViT names on import
            warnings.simplefilter("ignore")
            from mobile_sam.modeling.tiny_vit_sam import ConvLayer, PatchEmbed, PatchMerging
        c4, c8 = TINYVIT_CHANNELS
        self.patch_embed = PatchEmbed(in_chans=3, embed_dim=c4, resolution=1024, activation=nn.GELU)
        # MobileSAM's layer 0: two MBConv blocks (expand ratio 4), then the merging to stride 8
        self.layer0 = ConvLayer(dim=c4, input_resolution=(256, 256), depth=2, activation=nn.GELU,
                                downsample=None, out_dim=c8, conv_expand_ratio=4.0)
        self.merge = PatchMerging((256, 256), dim=c4, out_dim=c8, activation=nn.GELU)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "TinyViTStem":  # noqa: ARG002 - frozen: always eval
        return super().train(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s4 = self.layer0(self.patch_embed(x))
        m = self.merge
        s8 = m.conv3(m.act(m.conv2(m.act(m.conv1(s4)))))  # PatchMerging without its flatten to tokens
        return s4, s8

    def load_mobile_sam(self, path: str | Path) -> None:
        """Copy the stages' weights from a MobileSAM checkpoint (the bundled ``mobile_sam.pt``).

        Raises:
            SamSrError: a missing or unreadable file, or one without these stages' tensors.
        """
        p = Path(path)
        if not p.is_file():
            raise SamSrError(f"MobileSAM checkpoint not found: {p}")
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any read failure is a corrupt file for the user
            raise SamSrError(f"cannot read MobileSAM checkpoint {p}: {exc}") from exc
        rename = {"patch_embed.": "patch_embed.", "layers.0.blocks.": "layer0.blocks.",
                  "layers.0.downsample.": "merge."}
        own = self.state_dict()
        mine = {}
        for k, v in state.items():
            if not k.startswith(_PREFIX):
                continue
            k = k[len(_PREFIX):]
            for a, b in rename.items():
                if k.startswith(a):
                    mine[b + k[len(a):]] = v
        bad = [k for k in own if k not in mine or mine[k].shape != own[k].shape]
        if bad:
            raise SamSrError(f"{p} is not a MobileSAM checkpoint with TinyViT's first stages: "
                             f"{len(bad)} tensors missing or mis-shaped, e.g. {bad[:3]}")
        self.load_state_dict(mine, strict=True)


def build_image_features(name: str, checkpoint: str | None = None) -> nn.Module | None:
    """The image-feature source named ``name`` (``""``: none), its weights from ``checkpoint`` when
    given (otherwise left for the refiner's own checkpoint to fill).

    Raises:
        SamSrError: an unknown name; see :meth:`TinyViTStem.load_mobile_sam`.
    """
    if name not in IMAGE_FEATURES:
        raise SamSrError(f"unknown image_features {name!r}; choose from {list(IMAGE_FEATURES)}")
    if not name:
        return None
    stem = TinyViTStem()
    if checkpoint:
        stem.load_mobile_sam(checkpoint)
    return stem
