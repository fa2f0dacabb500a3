"""The public API: ``Refiner.from_checkpoint(path).refine(image, mask)``."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..checkpoint import load_model
from ..devices import check_device, resolve_precision
from ..errors import SamSrError
from ..imaging.read import check_aspect, mask_to_float, size_text, to_rgb_uint8
from ..models.base import EXTRA_NONE, RefinerModel
from ..models.fold import fold_batch_norm
from ..sam.stage import MAX_SAM_ASPECT, MIN_SAM_SIDE, SamInputs
from ..variants import get_variant
from .cascade import CascadeConfig, cascade_refine
from .decode_validity import KEY as VALID_DECODE
from .decode_validity import check_decode, valid_modes
from .heap import trim_heap, tune_allocator

log = logging.getLogger("sam_sr")

#: The variant run when none is named: SAM-SR v5 with the boundary step trained where the truth sits
#: on the edge (see docs/MODEL_CARD.md).
DEFAULT_VARIANT = "v5-edge"
#: Its checkpoint, trained by us and shipped in the package (the variant's own; a test holds them equal).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "sam_sr_v5_edge.pt"
#: The CRM band refiner trained by us (the default until SAM-SR v4; ``--variant crm``).
CRM_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "crm_r18.pt"

#: Masks with fewer foreground (or background) pixels than this come back unchanged (CRM: ~4).
MIN_PIXELS = 4


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return check_device(None)


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (Python's MemoryError, or torch's CPU or CUDA
    allocator refusing a tensor)."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text \
        or "not enough memory" in text or "failed to allocate" in text


def prepare_mask(mask: np.ndarray, image_hw: tuple[int, int], threshold: float | None = None) -> np.ndarray:
    """Coarse mask of any size/bit depth/channels -> float32 (H, W) in [0, 1] at the image's size.

    Values are scaled to [0, 1] by their type's range (see :mod:`sam_sr.imaging.read`) and resized
    bilinearly to the image (:func:`fit_mask`). A binary mask (only 0 and 1 after scaling) stays
    binary: it is thresholded at 0.5 after resizing. A soft mask (any value strictly between 0 and 1,
    e.g. a segmenter's probability map) is kept soft: the refiner was trained on soft coarse masks too
    (``data.soft_prob`` and the real soft maps), and the cascade's mask skip, margin and ``contour``
    band read it as it is (the band and the empty/full test threshold it at 0.5). With ``threshold``,
    any mask is binarised at ``threshold`` (after resizing) instead.

    Raises:
        SamSrError: the mask's aspect ratio differs from the image's (more than 2%), or ``threshold``
            is outside (0, 1).
    """
    if threshold is not None and not 0.0 < float(threshold) < 1.0:
        raise SamSrError(f"mask threshold must be in (0, 1), got {threshold!r}")
    m = mask_to_float(mask)
    check_aspect(image_hw, m.shape)
    if np.asarray(mask).dtype == bool and m.shape == tuple(image_hw):
        return m    # {0, 1} at the image's size: what binarising would give (any threshold in (0, 1))
    return fit_mask(m, image_hw, threshold)


def fit_mask(m: np.ndarray, image_hw: tuple[int, int], threshold: float | None = None) -> np.ndarray:
    """A float32 mask in [0, 1] (h, w) with the image's aspect ratio, resized bilinearly to the image
    (H, W): binary stays binary (thresholded at 0.5 after resizing), soft stays soft, unless
    ``threshold`` binarises it there. Used for the user's coarse mask (:func:`prepare_mask`) and for a
    SAM stage's replacement of it."""
    binary = threshold is None and not bool(((m > 0) & (m < 1)).any())
    if m.shape != tuple(image_hw):
        m = cv2.resize(m, (image_hw[1], image_hw[0]), interpolation=cv2.INTER_LINEAR)
    if threshold is not None:
        return (m >= threshold).astype(np.float32)
    return (m >= 0.5).astype(np.float32) if binary else np.clip(m, 0.0, 1.0)


@dataclass(frozen=True)
class Refinement:
    """One refinement (:meth:`Refiner.predict`).

    Attributes:
        mask: the refined mask, uint8 (H, W) in {0, 255}.
        soft: the refined probability map, float32 (H, W) in [0, 1] (``mask`` is ``soft >= 0.5``).
        coarse: the coarse mask as the refiner read it, float32 (H, W) in [0, 1] at the image's size
            (:func:`prepare_mask`; before any SAM stage), e.g. for overlays and scores.
        info: the call's information (see :meth:`Refiner.predict`).
    """

    mask: np.ndarray
    soft: np.ndarray
    coarse: np.ndarray
    info: dict[str, Any]


def _cascade_config(state: dict[str, Any], given: dict[str, Any], path: Path,
                    variant_settings: dict[str, Any] | None = None) -> CascadeConfig:
    """CascadeConfig from explicit fields over ``variant_settings`` (a variant's own recommendation
    when it runs a checkpoint of another variant) over the checkpoint's ``config["inference"]``
    settings (its ``valid_decode`` list is not a setting: see :mod:`.decode_validity`)."""
    stored = {**dict((state.get("config") or {}).get("inference") or {}), **dict(variant_settings or {})}
    stored.pop(VALID_DECODE, None)
    unknown = set(stored) - CascadeConfig.setting_names()
    if unknown:
        raise SamSrError(f"checkpoint {path} has unknown inference settings {sorted(unknown)}")
    unknown = set(given) - CascadeConfig.setting_names()
    if unknown:
        raise SamSrError(f"unknown cascade settings {sorted(unknown)}; known: {sorted(CascadeConfig.setting_names())}")
    return CascadeConfig(**{**stored, **given})


#: How a :class:`Refiner` treats the coarse mask's regions (see :meth:`Refiner.from_checkpoint`).
REGIONS = ("auto", "keep")


def _keep_regions(spec, model, cascade: CascadeConfig, given: dict[str, Any]) -> CascadeConfig:
    """``cascade`` with the settings ``spec``'s SAM stage recommends for a coarse mask kept whole
    (those not ``given``), for ``regions="keep"``.

    Raises:
        SamSrError: a variant with no SAM stage (its boundary step is all it runs), or one whose SAM
            stage feeds the boundary step and cannot be skipped.
    """
    if not spec.uses_sam:
        raise SamSrError(f"regions 'keep' is for models with a region step; variant {spec.name} has none "
                         f"and refines the boundary alone already (leave --regions out)")
    stage = spec.stage()
    if not stage.optional or model.extra_input != EXTRA_NONE:
        raise SamSrError(f"variant {spec.name} feeds SAM to its boundary step, so its regions cannot be "
                         f"kept without SAM; regions 'keep' runs the default, v4, v5, v5-holes, v1 or "
                         f"sam-prompt")
    kept = stage.bind(model).kept_settings()
    return cascade.replace(**{k: v for k, v in kept.items() if k not in given})


class Refiner:
    """Thin predictor around a refiner model and the cascade.

    A Refiner never changes its settings while refining: one instance can serve many callers (the
    last call's information is also kept in :attr:`last_info`, which concurrent callers share; use
    ``predict(...).info`` for a call's own).

    Args:
        model: a refiner (:class:`~sam_sr.models.base.RefinerModel`, see :func:`sam_sr.variants.build_model`).
        device: torch device; default CUDA when available, else CPU.
        cascade: :class:`CascadeConfig` (scales, min_size, decode, margin, ...).
        info: description of the model (checkpoint, variant, iteration), for reports.
        sam_inputs: the variant's SAM input stage bound to a SAM model
            (:class:`sam_sr.sam.stage.SamInputs`); required by models with an extra input.
        regions: ``"auto"`` (the model's own region step runs, where it has one) or ``"keep"`` (the
            coarse mask's regions are kept whole: it is thresholded at 0.5 and only its boundary is
            refined; see :meth:`from_checkpoint`).
        blocky: widen the contour band for a blocky coarse mask (see :meth:`from_checkpoint`).

    Raises:
        SamSrError: a model with an extra input and no ``sam_inputs``.
    """

    def __init__(self, model: RefinerModel, device: str | torch.device | None = None,
                 cascade: CascadeConfig | None = None, info: dict[str, Any] | None = None,
                 sam_inputs: SamInputs | None = None, regions: str = "auto", blocky: bool = True):
        if regions not in REGIONS:
            raise SamSrError(f"unknown regions mode {regions!r}; choose {' or '.join(REGIONS)}")
        self.regions = regions
        self.blocky = bool(blocky)
        self.device = check_device(device)            # an unknown or absent device: SamSrError
        tune_allocator()                              # once per process: see sam_sr.inference.heap
        self.model = model.to(self.device).eval()
        self.cascade = cascade or CascadeConfig()
        self.info = info or {}
        self.sam_inputs = sam_inputs
        self.last_info: dict[str, Any] = {}
        #: cascade settings the caller chose explicitly (a SAM stage's per-photo recommendation, e.g.
        #: v5's, never overrides them); set by :meth:`from_checkpoint`
        self.given: frozenset[str] = frozenset()
        if model.extra_input != EXTRA_NONE and sam_inputs is None:
            raise SamSrError(f"a {model.variant} model needs SAM inputs (--sam-type and --sam-checkpoint)")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, variant: str | None = None,
                        device: str | torch.device | None = None, sam_type: str | None = None,
                        sam_checkpoint: str | os.PathLike | None = None, sam_cache=None,
                        sam_points_per_side: int = 16, allow_any_decode: bool = False,
                        runtime: str = "torch", onnx_dir: str | os.PathLike | None = None,
                        regions: str = "auto", blocky: bool = True, **cascade: Any) -> "Refiner":
        """Load a sam-sr checkpoint (default: the model shipped in the package).

        Args:
            path: checkpoint file; ``None`` = the variant's own shipped checkpoint when it has one
                (``variant="crm"``: the CRM band refiner), else :data:`DEFAULT_CHECKPOINT` run as
                :data:`DEFAULT_VARIANT`.
            variant: run as this variant (:mod:`sam_sr.variants`); the checkpoint must be of it or of
                a variant whose checkpoints it runs (``"v1"`` also runs a CRM checkpoint: v1 only
                replaces the refiner's coarse-mask input). Default: the checkpoint's variant.
            sam_type, sam_checkpoint: SAM model for variants that use SAM (``vit_t`` = MobileSAM);
                default: the variant's own default checkpoint, if it has one.
            sam_cache: optional :class:`sam_sr.sam.cache.SamCache` for SAM masks and embeddings.
            sam_points_per_side: automatic-mask point grid of v1 / v2.1 (SAM's default is 32).
            allow_any_decode: run a ``decode`` mode the checkpoint was not trained for (logs a
                warning) instead of refusing it (:mod:`sam_sr.inference.decode_validity`).
            runtime: ``"torch"``, or ``"onnx"``: the networks run by onnxruntime on the CPU
                (:mod:`sam_sr.inference.onnx_runtime`), from ``onnx_dir`` (default: a per-checkpoint
                folder under ``~/.cache/sam-sr/onnx``, exported there on first use).
            regions: ``"auto"``: the variant's SAM stage runs (the default's region step and its
                keep-or-change decision). ``"keep"``: the coarse mask's regions are kept whole, for
                masks that are right but for their boundary: SAM is neither loaded nor run, the
                coarse mask is thresholded at 0.5, and the boundary step refines it with the settings
                the model uses for a mask whose region changes it all leaves (the default's
                ``contour:2``, margin 0.3: :meth:`sam_sr.sam.stage.SamStage.kept_settings`), except
                those given in ``cascade``. Only for variants whose SAM stage corrects the coarse mask
                and nothing else (the default, v4, v5, v5-holes, v1, sam-prompt).
            blocky: a coarse mask nearest-upsampled from a lower resolution (a staircase of period k
                px, found from the mask alone: :func:`sam_sr.inference.staircase.staircase_period`)
                is refined with a contour band of half a period each side and no margin, where the
                model decodes a contour band and ``cascade`` sets neither ``decode`` nor ``margin``
                (chosen on the sod validation photos: docs/RESULTS.md). False: every mask gets the
                model's settings.
            cascade: :class:`CascadeConfig` fields (``scales``, ``min_size``, ``decode``, ...).
                Fields not given come from the checkpoint's recommended inference settings (its
                config's ``inference`` section, e.g. the shipped model's ``decode: contour:W``),
                then from :class:`CascadeConfig`'s defaults.

        Raises:
            SamSrError: missing/corrupt checkpoint, not a sam-sr checkpoint, unknown variant or variant
                mismatch, a SAM variant without a SAM checkpoint, an invalid inference setting, a
                decode mode the checkpoint is not valid for (the message names the valid ones)
                without ``allow_any_decode``, an unknown or absent ``device``, an unknown ``regions``
                or ``"keep"`` for a variant with no region step or one that feeds SAM to its
                boundary step.
        """
        if regions not in REGIONS:
            raise SamSrError(f"unknown regions mode {regions!r}; choose {' or '.join(REGIONS)}")
        device = check_device(device)      # before anything is loaded onto it
        tune_allocator()                   # before the models' and SAM's allocations
        if path is not None:
            p = Path(path)
        else:           # the variant's own shipped checkpoint (e.g. --variant crm; none named: the default)
            variant = variant or DEFAULT_VARIANT
            p = get_variant(variant).checkpoint()
            if p is None:
                raise SamSrError(f"variant {variant} ships no checkpoint: train one (configs/experiments/sam_sr/{variant}.yaml) "
                                 f"and pass it (--checkpoint)")
        if path is None and not p.is_file():
            raise SamSrError(f"the default model is missing from the package ({p}); reinstall sam-sr "
                             f"or pass a checkpoint")
        model, state = load_model(p, variant)
        fold_batch_norm(model)   # inference only: each batch norm merged into its convolution
        spec = get_variant(variant or state.get("variant", "crm"))
        own = spec.inference if spec.name != state.get("variant", "crm") else None
        cascade_config = _cascade_config(state, cascade, p, own)   # bad settings fail before SAM loads
        if regions == "keep":
            cascade_config = _keep_regions(spec, model, cascade_config, cascade)
        valid = valid_modes(state)
        check_decode(cascade_config.decode, valid, f"checkpoint {p}", allow_any_decode)
        if runtime == "onnx":   # onnxruntime's sessions compute in float32 whatever torch's autocast says
            cascade_config = replace(cascade_config, precision="fp32")
        info = {"checkpoint": str(p), "variant": spec.name, "iteration": state.get("iteration"),
                "valid_decode": valid, "precision": resolve_precision(cascade_config.precision, device)}
        sam_inputs = None
        if spec.uses_sam and regions == "auto":
            sam_ckpt = spec.sam_checkpoint(sam_checkpoint)
            if sam_ckpt is None:
                raise SamSrError(f"variant {spec.name} needs --sam-type and --sam-checkpoint")
            from ..sam import load_sam
            from ..sam.source import LiveSam
            from ..sam.loader import set_encoder_precision
            sam = load_sam(sam_type or spec.default_sam_type, sam_ckpt, device)
            # SAM's image encoder in the cascade's precision (auto: bf16 where native); fp32 under
            # onnxruntime, which replaces it with its own float32 session
            info["sam_precision"] = set_encoder_precision(sam, "fp32" if runtime == "onnx" else cascade_config.precision)
            source = LiveSam(sam, cache=sam_cache,
                             points_per_side=sam_points_per_side)
            stage = spec.stage().bind(model)
            sam_inputs = SamInputs(stage, source)
        trim_heap()   # the checkpoints' loaded copies are freed: give their pages back
        if regions == "keep":
            info["regions"] = "keep"
        refiner = cls(model, device, cascade_config, info, sam_inputs, regions, blocky)
        refiner.given = frozenset(cascade)
        if runtime == "onnx":
            from .onnx_runtime import attach_onnx, default_onnx_dir, export_onnx
            folder = Path(onnx_dir) if onnx_dir is not None else default_onnx_dir(p)
            if onnx_dir is None and not (folder / "manifest.json").is_file():
                log.warning("warning: exporting %s to ONNX once, into %s", p, folder)
                export_onnx(model, folder, p, getattr(sam_inputs.source, "sam", None) if sam_inputs else None)
            attach_onnx(refiner, folder, p)
        elif runtime != "torch":
            raise SamSrError(f"unknown runtime {runtime!r}; choose torch or onnx")
        return refiner

    def _blocky(self, prepared: np.ndarray, cascade: CascadeConfig, info: dict[str, Any]) -> CascadeConfig:
        """``cascade`` for a blocky coarse mask (a nearest-upsampled staircase of period k px:
        :mod:`sam_sr.inference.staircase`): its contour band widened to half a period each side, with
        no margin, where the model decodes a contour band and the caller set neither ``decode`` nor
        ``margin``; ``info["blocky"]`` then holds the period and the settings. Other masks: unchanged."""
        from .staircase import BLOCKY_MARGIN, BLOCKY_WIDTH, blocky_settings, staircase_period
        if not self.blocky or self.given & {"decode", "margin"} or cascade.decode.name != "contour":
            return cascade
        period = staircase_period(prepared)
        if not period:
            return cascade
        settings = blocky_settings(period, prepared.shape, cascade.upsample_to, BLOCKY_WIDTH, BLOCKY_MARGIN)
        info["blocky"] = {"period": period, **settings}
        return cascade.replace(**settings)

    def refine(self, image: np.ndarray, mask: np.ndarray, mask_threshold: float | None = None) -> np.ndarray:
        """Refine a coarse mask at the image's full resolution: the refined mask alone,
        ``predict(image, mask, mask_threshold).mask`` (see :meth:`predict`).

        Returns:
            uint8 (H, W) in {0, 255}.

        Raises:
            SamSrError: see :meth:`predict`.
        """
        return self.predict(image, mask, mask_threshold).mask

    def predict(self, image: np.ndarray, mask: np.ndarray, mask_threshold: float | None = None) -> Refinement:
        """Refine a coarse mask at the image's full resolution.

        Args:
            image: uint8 (H, W, 3) RGB; grayscale (H, W), RGBA and 16-bit images are converted.
            mask: coarse mask (H', W') or (H', W', C), any bit depth, same aspect ratio as the image;
                resized to (H, W). Binary masks stay binary, soft masks (probability maps) are refined
                as they are (see :func:`prepare_mask`, run once here); ``mask_threshold`` binarises any
                mask first.

        Returns:
            a :class:`Refinement`: the refined ``mask`` (uint8 {0, 255}), its ``soft`` map (float32
            [0, 1]), the prepared ``coarse`` mask and ``info``: ``decoded_points``, ``steps``
            ((h, w) per cascade step), ``sparse_steps`` (per step: whether it encoded only the tiles
            its decoded pixels read), ``encoded_fraction`` (input pixels encoded over the steps'
            padded input pixels), ``pixel_fraction`` (models with a pixel head) and, with SAM inputs,
            ``sam`` (the stage's info, e.g. v1's ``used_sam``), and for a blocky coarse mask ``blocky`` (its
            staircase's period in px and the band it was refined with). An (almost) empty or full coarse
            mask (fewer than :data:`MIN_PIXELS` pixels >= 0.5 on one side) comes back unchanged
            (binarised at 0.5; soft = the coarse mask).

        Raises:
            SamSrError: mismatched aspect ratio or bad array shapes.
        """
        img = to_rgb_uint8(image)
        prepared = coarse = prepare_mask(mask, img.shape[:2], mask_threshold)
        if self.regions == "keep":        # as v5 hands on a coarse mask whose changes it all leaves
            prepared = coarse = (coarse >= 0.5).astype(np.float32)
        cascade = self.cascade
        fg = int((coarse >= 0.5).sum())
        info: dict[str, Any] = {}
        if fg < MIN_PIXELS or coarse.size - fg < MIN_PIXELS:
            soft = coarse
            info = {"decoded_points": 0, "steps": []}
        else:
            extra = None
            h, w = img.shape[:2]
            unseen = min(h, w) < MIN_SAM_SIDE or max(h, w) / min(h, w) > MAX_SAM_ASPECT
            if self.sam_inputs is not None and unseen:
                if not self.sam_inputs.stage.optional:
                    raise SamSrError(f"a {self.model.variant} model cannot refine a {size_text((h, w))} image: "
                                     f"SAM needs sides of at least {MIN_SAM_SIDE} px and an aspect ratio up "
                                     f"to {MAX_SAM_ASPECT:g}; use --variant crm")
                info["sam"] = {"skipped": f"a {size_text((h, w))} image is too small or too narrow for SAM "
                                          f"(sides >= {MIN_SAM_SIDE} px, aspect <= {MAX_SAM_ASPECT:g}): "
                                          f"only the boundary step ran"}
                log.warning("warning: %s", info["sam"]["skipped"])
            elif self.sam_inputs is not None:
                coarse, extra_in, info_sam = self.sam_inputs(img, coarse)
                c = np.asarray(coarse)
                if c.dtype == bool and c.shape == img.shape[:2]:
                    coarse = c.astype(np.float32)
                else:         # float32 (or bool) at another size: resized as the user's mask is
                    c = mask_to_float(c if c.dtype == bool else c.astype(np.float32))
                    check_aspect(img.shape[:2], c.shape)
                    coarse = fit_mask(c, img.shape[:2])
                info["sam"] = info_sam
                # a stage may recommend this photo's cascade settings (v5: the band refiner's own when it
                # kept the coarse mask whole); settings the caller gave explicitly stay
                recommended = {k: v for k, v in dict((info_sam or {}).get("cascade") or {}).items()
                               if k not in self.given}
                if recommended:
                    cascade = cascade.replace(**recommended)
                trim_heap(h * w)   # a large image's SAM-stage temporaries leave before the cascade
                if isinstance(extra_in, torch.Tensor):  # SAM's image embedding (v3.x)
                    extra = extra_in.to(self.device)
                elif extra_in is not None:
                    extra = torch.from_numpy(np.ascontiguousarray(extra_in.transpose(2, 0, 1)))[None].to(self.device)
            cascade = self._blocky(prepared, cascade, info)
            # uint8: the cascade reads it as value / 255 in float32 where it needs it (equal results)
            x = torch.from_numpy(img).to(self.device).permute(2, 0, 1)[None]
            m = torch.from_numpy(coarse).to(self.device)[None, None].float()
            try:
                out, run = cascade_refine(self.model, x, m, cascade, extra, return_info=True)
            except (MemoryError, RuntimeError) as exc:
                if not out_of_memory(exc):
                    raise
                raise SamSrError(f"not enough memory to refine this {size_text(img.shape[:2])} image with "
                                 f"{cascade.settings()['upsample_to'] or 'no'} upsampling and "
                                 f"{cascade.decode} decoding: free memory, lower --upsample-to, or use "
                                 f"a smaller --sparse-tile") from None
            soft = out[0, 0].cpu().numpy()
            info.update(run)
            del x, m, out
            trim_heap(h * w)
        self.last_info = info
        return Refinement((soft >= 0.5).astype(np.uint8) * 255, soft, prepared, info)
