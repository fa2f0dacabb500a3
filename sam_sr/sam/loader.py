"""Loading SAM / MobileSAM through the real libraries, and their mask generator and predictor.

- ``vit_b``, ``vit_l``, ``vit_h``: ``segment_anything.sam_model_registry`` (official SAM checkpoints).
- ``vit_t``: MobileSAM from the PyPI package ``mobilesam-mirror`` (module ``mobile_sam``), whose
  prompt encoder and mask decoder are segment_anything's.
The SAM packages (segment-anything, mobilesam-mirror) are dependencies of sam-sr. Nothing is downloaded: the checkpoint is a local path.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import SamSrError

SAM_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")

#: MobileSAM's official checkpoint, shipped inside the package (Apache-2.0; see the NOTICE beside it).
BUNDLED_SAM = Path(__file__).resolve().parent.parent / "weights" / "mobile_sam.pt"
#: Its published sha256, checked at every load.
BUNDLED_SAM_SHA256 = "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`SamSrError` naming ``path`` unless its sha256 equals ``expected`` (hex)."""
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise SamSrError(f"cannot read SAM checkpoint {path}: {exc}") from exc
    if actual != expected.lower():
        raise SamSrError(f"SAM checkpoint {path} has sha256 {actual[:16]}..., expected {expected[:16]}...; "
                         f"the file is corrupt or not the expected checkpoint")


def _lib(model_type: str):
    import warnings
    try:
        with warnings.catch_warnings():  # mobile_sam re-registers timm's TinyViT names on import
            warnings.simplefilter("ignore")
            if model_type == "vit_t":
                import mobile_sam as lib
            else:
                import segment_anything as lib
    except ImportError as exc:
        raise SamSrError(f"SAM model {model_type!r} needs the SAM packages, which sam-sr depends on: pip install segment-anything mobilesam-mirror "
                         f"({exc})") from exc
    return lib


def load_sam(model_type: str = "vit_t", checkpoint: str | os.PathLike | None = None,
             device: str | torch.device | None = None, sha256: str | None = None):
    """Build a SAM model of ``model_type`` and load ``checkpoint`` (eval mode, for inference only: its
    batch norms are folded into their convolutions, :func:`sam_sr.models.fold.fold_batch_norm`).

    Args:
        model_type: ``vit_t`` (MobileSAM), ``vit_b``, ``vit_l`` or ``vit_h``.
        checkpoint: a local checkpoint file; ``None`` = the MobileSAM checkpoint bundled with sam-sr
            (``vit_t`` only), whose sha256 is always checked.
        sha256: check a given checkpoint against this hex digest first.

    Raises:
        SamSrError: unknown type, missing/corrupt/wrong-hash checkpoint, one of another SAM type, or
            no checkpoint for a type other than ``vit_t``. Each message names the file.
    """
    if model_type not in SAM_TYPES:
        raise SamSrError(f"unknown SAM type {model_type!r}; choose from {SAM_TYPES}")
    if checkpoint is None:
        if model_type != "vit_t":
            raise SamSrError(f"SAM type {model_type!r} needs a checkpoint (--sam-checkpoint); only "
                             f"MobileSAM (vit_t) ships with sam-sr")
        checkpoint, sha256 = BUNDLED_SAM, BUNDLED_SAM_SHA256
        if not BUNDLED_SAM.is_file():
            raise SamSrError(f"the bundled MobileSAM checkpoint is missing ({BUNDLED_SAM}); reinstall "
                             f"sam-sr or pass --sam-checkpoint")
    p = Path(checkpoint)
    if not p.is_file():
        raise SamSrError(f"SAM checkpoint not found: {p}")
    if sha256 is not None:
        check_sha256(p, sha256)
    lib = _lib(model_type)
    try:
        sam = lib.sam_model_registry[model_type](checkpoint=str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise SamSrError(f"{p} is not a {model_type} SAM checkpoint: {first}") from exc
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of corrupt files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SamSrError(f"cannot read SAM checkpoint {p}: {first}") from exc
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sam = sam.to(dev).eval()
    # SAM is only ever run here, never trained: each batch norm (MobileSAM's TinyViT has 27) is merged
    # into its convolution (models/fold.py: 0.298 -> 0.262 s per 1024 px encoding in bf16, float32
    # embedding changed by 1.6e-6 relative)
    from ..models.fold import fold_batch_norm
    fold_batch_norm(sam)
    # The image encoder's convolution weights in channels-last order: oneDNN (and cuDNN) then run the
    # convolutions in their native NHWC layout instead of reordering every activation. Measured
    # 2026-12-06 on a 2-core AMD EPYC with AVX-512 BF16, MobileSAM at 1024 x 1024 (best of 4): fp32
    # 1.09 -> 0.85 s (relative change of the embedding 2.5e-6), bf16 autocast 0.75 -> 0.47 s. The
    # embedding comes back in channels-last strides; every consumer reads it by shape.
    sam.image_encoder.to(memory_format=torch.channels_last)
    return sam


class _Bf16Encoder(torch.nn.Module):
    """SAM's image encoder run under bfloat16 autocast, its embedding returned as float32 (the prompt
    encoder and mask decoder stay float32). Measured 2026-12-03 on a 2-core AMD EPYC with AVX-512
    BF16, MobileSAM on a 1024 x 683 photo: 1.42 s -> 0.77 s, embedding relative error 0.020 (L2);
    0.47 s with :func:`load_sam`'s channels-last weights."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.img_size = getattr(encoder, "img_size", 1024)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.encoder(x).float()


def set_encoder_precision(sam, precision: str = "fp32") -> str:
    """Run ``sam``'s image encoder in ``precision`` (modified in place): ``fp32``, ``bf16``
    (bfloat16 autocast, :class:`_Bf16Encoder`) or ``auto`` (bf16 where the model's device computes
    bfloat16 natively, :func:`sam_sr.devices.native_bf16`). Returns the precision chosen, ``fp32``
    or ``bf16``.

    Raises:
        SamSrError: an unknown precision."""
    from ..devices import resolve_precision
    precision = resolve_precision(precision, next(sam.parameters()).device)
    sam.image_encoder = _Bf16Encoder(plain_encoder(sam)) if precision == "bf16" else plain_encoder(sam)
    return precision


def plain_encoder(sam) -> torch.nn.Module:
    """``sam``'s image encoder without the bfloat16 wrapper (e.g. for an ONNX export)."""
    enc = sam.image_encoder
    return enc.encoder if isinstance(enc, _Bf16Encoder) else enc


def _is_mobile(sam) -> bool:
    return type(sam).__module__.startswith("mobile_sam")


def mask_generator(sam, points_per_side: int = 16, points_per_batch: int = 64,
                   pred_iou_thresh: float = 0.86, stability_score_thresh: float = 0.92,
                   box_nms_thresh: float = 0.7, min_mask_region_area: int = 0, **kw: Any):
    """segment_anything's automatic mask generator (a point grid of ``points_per_side``^2 prompts,
    3 masks per point, predicted-IoU and stability filtering, box NMS). 16x16 suits a CPU; SAM's
    default is 32x32."""
    lib = _lib("vit_t" if _is_mobile(sam) else "vit_b")
    return lib.SamAutomaticMaskGenerator(
        sam, points_per_side=points_per_side, points_per_batch=points_per_batch,
        pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
        box_nms_thresh=box_nms_thresh, min_mask_region_area=min_mask_region_area, **kw)


def predictor(sam):
    """segment_anything's ``SamPredictor`` (prompted masks: points, boxes, mask inputs)."""
    lib = _lib("vit_t" if _is_mobile(sam) else "vit_b")
    return lib.SamPredictor(sam)


def build_tiny_sam(image_size: int = 256, seed: int = 0):
    """A tiny, randomly initialised ``segment_anything.modeling.Sam`` for wiring tests (no weights).

    Same modules as SAM (ViT image encoder, prompt encoder, two-way-transformer mask decoder) with
    small widths; its masks are meaningless, its shapes and interfaces are real.
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )
    torch.manual_seed(seed)
    emb = image_size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(img_size=image_size, patch_size=16, embed_dim=32, depth=1,
                                      num_heads=2, out_chans=32, window_size=0, global_attn_indexes=()),
        prompt_encoder=PromptEncoder(embed_dim=32, image_embedding_size=(emb, emb),
                                     input_image_size=(image_size, image_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=32,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64,
                                                               num_heads=2),
                                 iou_head_depth=2, iou_head_hidden_dim=32),
    )
    return sam.eval()
