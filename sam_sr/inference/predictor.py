"""The public API: ``Refiner.from_checkpoint(path).refine(image, mask)``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..checkpoint import load_model
from ..errors import SamSrError
from ..io import check_aspect, mask_to_float, to_rgb_uint8
from .cascade import CascadeConfig, cascade_refine

#: The model trained by us and shipped in the package (see docs/MODEL_CARD.md).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "crm_r18.pt"

#: Masks with fewer foreground (or background) pixels than this come back unchanged (CRM: ~4).
MIN_PIXELS = 4


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_mask(mask: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Coarse mask of any size/bit depth/channels -> bool (H, W) at the image's size.

    Values are scaled to [0, 1] by their type's range (see :mod:`sam_sr.io`), resized bilinearly to
    the image and thresholded at 0.5 (half the range).

    Raises:
        SamSrError: the mask's aspect ratio differs from the image's (more than 2%).
    """
    m = mask_to_float(mask)
    check_aspect(image_hw, m.shape)
    if m.shape != tuple(image_hw):
        m = cv2.resize(m, (image_hw[1], image_hw[0]), interpolation=cv2.INTER_LINEAR)
    return m >= 0.5


def _cascade_config(state: dict[str, Any], given: dict[str, Any], path: Path) -> CascadeConfig:
    """CascadeConfig from explicit fields over the checkpoint's ``config["inference"]`` settings."""
    stored = dict((state.get("config") or {}).get("inference") or {})
    unknown = set(stored) - CascadeConfig.setting_names()
    if unknown:
        raise SamSrError(f"checkpoint {path} has unknown inference settings {sorted(unknown)}")
    if "scales" in stored:
        stored["scales"] = tuple(stored["scales"])
    return CascadeConfig(**{**stored, **given})


class Refiner:
    """Thin predictor around a refiner model and the cascade.

    Args:
        model: a CRM-family model (see :func:`sam_sr.models.build_model`).
        device: torch device; default CUDA when available, else CPU.
        cascade: :class:`CascadeConfig` (scales, min_size, pad, chunk).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 cascade: CascadeConfig | None = None, info: dict[str, Any] | None = None,
                 sam_inputs=None):
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.cascade = cascade or CascadeConfig()
        self.info = info or {}
        self.sam_inputs = sam_inputs
        self.last_sam_info: dict[str, Any] = {}
        extra = getattr(getattr(model, "config", None), "extra_channels", 0) \
            or getattr(model, "extra_is_features", False)
        if extra and sam_inputs is None:
            raise SamSrError(f"a {getattr(model, 'variant', '?')} model needs SAM inputs "
                             f"(--sam-type and --sam-checkpoint)")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, variant: str | None = None,
                        device: str | torch.device | None = None, sam_type: str | None = None,
                        sam_checkpoint: str | os.PathLike | None = None, sam_cache=None,
                        sam_points_per_side: int = 16, **cascade: Any) -> "Refiner":
        """Load a sam-sr checkpoint (default: the model shipped in the package).

        Args:
            path: checkpoint file; ``None`` = :data:`DEFAULT_CHECKPOINT`.
            variant: if given, the checkpoint must be of this variant (``"v1"`` also accepts a CRM
                checkpoint: v1 only replaces the refiner's coarse-mask input).
            sam_type, sam_checkpoint: SAM model for the SAM-SR variants (``vit_t`` = MobileSAM).
            sam_cache: optional :class:`sam_sr.sam.cache.SamCache` for SAM masks and embeddings.
            sam_points_per_side: automatic-mask point grid of v1 / v2.1 (SAM's default is 32).
            cascade: :class:`CascadeConfig` fields (``scales``, ``min_size``, ``decode``, ...).
                Fields not given come from the checkpoint's recommended inference settings (its
                config's ``inference`` section, e.g. the shipped model's ``decode: contour:W``),
                then from :class:`CascadeConfig`'s defaults.

        Raises:
            SamSrError: missing/corrupt checkpoint, not a sam-sr checkpoint, variant mismatch, a
                SAM-SR variant without a SAM checkpoint, an invalid inference setting.
        """
        p = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if path is None and not p.is_file():
            raise SamSrError(f"the default model is missing from the package ({p}); reinstall sam-sr "
                             f"or pass a checkpoint")
        # v1 changes only the refiner's input, so a CRM checkpoint serves it too
        model, state = load_model(p, None if variant == "v1" else variant)
        if variant == "v1" and state.get("variant", "crm") not in ("crm", "v1"):
            raise SamSrError(f"checkpoint {p} is a {state.get('variant')!r} model, not 'v1' or 'crm'")
        cascade_config = _cascade_config(state, cascade, p)   # bad settings fail before SAM loads
        run_as = variant or state.get("variant")
        info = {"checkpoint": str(p), "variant": run_as, "iteration": state.get("iteration")}
        sam_inputs = None
        from ..sam.pipeline import SAM_VARIANTS
        if run_as in SAM_VARIANTS:
            if sam_checkpoint is None:
                raise SamSrError(f"variant {run_as} needs --sam-type and --sam-checkpoint")
            from ..sam import load_sam
            from ..sam.pipeline import SamPipeline
            sam_inputs = SamPipeline(run_as, load_sam(sam_type or "vit_t", sam_checkpoint, device),
                                     cache=sam_cache, points_per_side=sam_points_per_side)
        return cls(model, device, cascade_config, info, sam_inputs)

    def refine(self, image: np.ndarray, mask: np.ndarray, return_soft: bool = False):
        """Refine a coarse mask at the image's full resolution.

        Args:
            image: uint8 (H, W, 3) RGB; grayscale (H, W), RGBA and 16-bit images are converted.
            mask: coarse mask (H', W') or (H', W', C), any bit depth, same aspect ratio as the image;
                resized to (H, W) and thresholded at half its range.
            return_soft: also return the refined probability map.

        Returns:
            uint8 (H, W) in {0, 255}; with ``return_soft``, ``(binary, soft)`` where soft is float32
            (H, W) in [0, 1]. An (almost) empty or full coarse mask comes back unchanged.

        Raises:
            SamSrError: mismatched aspect ratio or bad array shapes.
        """
        img = to_rgb_uint8(image)
        coarse = prepare_mask(mask, img.shape[:2])
        fg = int(coarse.sum())
        if fg < MIN_PIXELS or coarse.size - fg < MIN_PIXELS:
            out = coarse.astype(np.uint8) * 255
            return (out, coarse.astype(np.float32)) if return_soft else out
        extra = None
        if self.sam_inputs is not None:
            coarse, extra_np, self.last_sam_info = self.sam_inputs(img, coarse)
            if isinstance(extra_np, torch.Tensor):  # SAM embedding (v3.x)
                extra = extra_np.to(self.device)
            elif extra_np is not None:
                extra = torch.from_numpy(np.ascontiguousarray(extra_np.transpose(2, 0, 1)))[None].to(self.device)
        x = torch.from_numpy(img).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        m = torch.from_numpy(np.asarray(coarse)).to(self.device)[None, None].float()
        soft = cascade_refine(self.model, x, m, self.cascade, extra)[0, 0].cpu().numpy()
        out = (soft >= 0.5).astype(np.uint8) * 255
        return (out, soft) if return_soft else out
