"""SAM prompted from a coarse mask: the training-free ``sam-prompt`` refiner and the SAM step of v4.

Follows SAMRefiner (Lin et al., ICLR 2025, "SAMRefiner: Taming Segment Anything Model for Universal
Mask Refinement"), written for sam-sr from the paper's description. From the coarse mask we derive:

- positive points at the peaks of the mask's distance transform (one per connected component that
  holds at least ``min_component`` of the largest component's area): the points deepest inside;
- a negative point at the peak of the background's distance transform inside the box: the pixel of
  the box farthest from the mask, when it is at least ``negative_min_px`` away (in SAM's 1024 frame);
- the box of the mask, optionally widened side by side where SAM's image embedding just outside it
  resembles the embedding inside the mask (SAMRefiner's context-aware elastic box);
- the coarse mask as SAM's dense prompt (its 256 x 256 ``mask_input``): logits of ``logit_min`` at
  the contour growing to ``logit_max`` deep inside (positive) or far outside (negative), with a
  Gaussian profile of the distance from the contour (``sigma`` low-resolution pixels).

SAM returns three candidates; one is chosen by IoU with the coarse mask (``select="coarse_iou"``) or by
SAM's own predicted IoU (``"predicted_iou"``). With ``rounds`` > 1 the prompts are derived again from
the chosen mask and SAM is asked again, its last low-resolution logits being the dense prompt.

SAM's mask is a 256 x 256 logit map of the padded 1024 px frame: about 14 image pixels per mask pixel
at 3.5k. :func:`lowres_to_image` resamples it to the image as SAM's own post-processing does; the
full-resolution boundary is the refiner cascade's job (variants ``sam-prompt`` and ``v4``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SamSrError

#: SAM's input frame (longer side, px) and its low-resolution mask grid (cells per side).
SAM_FRAME = 1024
LOWRES = 256
SELECT = ("coarse_iou", "predicted_iou")


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are derived from a coarse mask (see the module docstring).

    Args:
        rounds: SAM decodings (>= 1); each after the first re-derives the prompts from the last mask.
        select: candidate choice, ``coarse_iou`` (IoU with the coarse mask) or ``predicted_iou``.
        points: add positive points (component peaks of the distance transform).
        negative: add the negative point (peak of the background's distance inside the box).
        negative_min_px: the negative point is used only this far (SAM-frame px) from the mask.
        box: add the box prompt. ``box_expand``: widest widening per side for the elastic box, as a
            fraction of the box side (0 = plain box); ``box_similarity``: cosine similarity of the
            embedding just outside a side, relative to inside the mask, needed to widen it.
        mask: add the coarse mask as the dense prompt, with logits from ``logit_min`` at the contour
            to ``logit_max`` (Gaussian profile of width ``sigma`` low-resolution pixels).
        min_component: components smaller than this share of the largest get no positive point.
        max_points: at most this many positive points (largest components first).

    Raises:
        SamSrError: a value out of range.
    """

    rounds: int = 2
    select: str = "coarse_iou"
    points: bool = True
    negative: bool = True
    negative_min_px: float = 16.0
    box: bool = True
    box_expand: float = 0.0
    box_similarity: float = 0.8
    mask: bool = True
    logit_min: float = 15.0
    logit_max: float = 30.0
    sigma: float = 4.0
    min_component: float = 0.1
    max_points: int = 4

    def __post_init__(self) -> None:
        if int(self.rounds) < 1:
            raise SamSrError(f"rounds must be >= 1, got {self.rounds!r}")
        if self.select not in SELECT:
            raise SamSrError(f"select must be one of {SELECT}, got {self.select!r}")
        if not (self.points or self.box or self.mask):
            raise SamSrError("at least one of points, box and mask prompts is needed")
        if not 0 <= float(self.box_expand) <= 1:
            raise SamSrError(f"box_expand must be in [0, 1], got {self.box_expand!r}")
        if not 0 < float(self.logit_min) <= float(self.logit_max):
            raise SamSrError(f"need 0 < logit_min <= logit_max, got {self.logit_min!r}, {self.logit_max!r}")
        if float(self.sigma) <= 0:
            raise SamSrError(f"sigma must be > 0 low-resolution pixels, got {self.sigma!r}")
        if not 0 <= float(self.min_component) <= 1 or int(self.max_points) < 1:
            raise SamSrError("min_component must be in [0, 1] and max_points >= 1")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "PromptConfig":
        """From a dict of fields; raises :class:`SamSrError` on unknown keys or bad values."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise SamSrError(f"unknown sam-prompt settings {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_shape(h: int, w: int, side: int = SAM_FRAME) -> tuple[int, int]:
    """Size (h', w') of an H x W image resized so that its longer side is ``side`` px, rounded as
    segment_anything's ``ResizeLongestSide`` rounds."""
    s = side / max(h, w)
    return int(h * s + 0.5), int(w * s + 0.5)


def lowres_shape(h: int, w: int) -> tuple[int, int]:
    """Cells (rows, cols) of SAM's 256 x 256 low-resolution grid that the H x W image covers."""
    fh, fw = frame_shape(h, w)
    return max(1, round(fh * LOWRES / SAM_FRAME)), max(1, round(fw * LOWRES / SAM_FRAME))


def image_to_lowres(mask: np.ndarray) -> np.ndarray:
    """A float (H, W) map in [0, 1] on SAM's low-resolution grid: float32 (256, 256), area-averaged
    over the image's cells, zero over the padding."""
    h, w = mask.shape
    lh, lw = lowres_shape(h, w)
    out = np.zeros((LOWRES, LOWRES), np.float32)
    out[:lh, :lw] = cv2.resize(mask.astype(np.float32, copy=False), (lw, lh), interpolation=cv2.INTER_AREA)
    return out


def lowres_to_image(logits: np.ndarray | torch.Tensor, h: int, w: int) -> np.ndarray:
    """SAM's low-resolution logits float (256, 256) -> float32 (H, W) logits of the image, resampled
    as segment_anything's ``postprocess_masks`` does (bilinear to the 1024 frame, crop, bilinear)."""
    t = torch.as_tensor(np.asarray(logits, np.float32))[None, None]
    t = F.interpolate(t, (SAM_FRAME, SAM_FRAME), mode="bilinear", align_corners=False)
    fh, fw = frame_shape(h, w)
    t = F.interpolate(t[..., :fh, :fw], (h, w), mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


def _dist(inside: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of each True pixel to the nearest False one (image border = False)."""
    d = cv2.distanceTransform(np.pad(inside.astype(np.uint8), 1), cv2.DIST_L2, 5)
    return d[1:-1, 1:-1]


def dense_prompt(lowres_mask: np.ndarray, cfg: PromptConfig) -> np.ndarray:
    """SAM's dense prompt from a low-resolution mask: float32 (256, 256) logits, positive inside
    (``lowres_mask`` >= 0.5), negative outside, magnitude ``logit_min`` at the contour rising to
    ``logit_max`` with distance d as ``1 - exp(-d^2 / (2 sigma^2))``."""
    inside = lowres_mask >= 0.5
    # distance to the contour only (the grid's border is not a contour): no padding here
    d = np.where(inside, cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5),
                 cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5))
    mag = cfg.logit_min + (cfg.logit_max - cfg.logit_min) * (1 - np.exp(-d ** 2 / (2 * cfg.sigma ** 2)))
    return np.where(inside, mag, -mag).astype(np.float32)


def _components(mask: np.ndarray, cfg: PromptConfig) -> list[tuple[np.ndarray, int, int]]:
    """The components that get a point, largest first: (bool crop of the component's bounding box,
    its top row, its left column) each."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas)
    keep = [i + 1 for i in order if areas[i] >= cfg.min_component * areas[order[0]]]
    out = []
    for k in keep[: cfg.max_points]:
        x, y, w, h = (int(v) for v in stats[k, :4])
        out.append((lab[y:y + h, x:x + w] == k, y, x))
    return out


def _elastic_box(box: np.ndarray, mask: np.ndarray, embedding: torch.Tensor, cfg: PromptConfig) -> np.ndarray:
    """Widen ``box`` (x0, y0, x1, y1 in image px) side by side, one embedding cell at a time, while
    the cells just outside a side resemble the mask's mean embedding: their mean cosine similarity
    to it is at least ``box_similarity`` times that of the mask's own cells (SAMRefiner's
    context-aware elastic box). A side grows by at most ``box_expand`` of the box's side."""
    h, w = mask.shape
    emb = F.normalize(embedding.float()[0], dim=0)              # (C, 64, 64), cells of 16 frame px
    g = emb.shape[-1]
    fh, fw = frame_shape(h, w)
    rows, cols = -(-fh * g // SAM_FRAME), -(-fw * g // SAM_FRAME)   # cells the image covers
    weight = np.zeros((g, g), np.float32)
    weight[:rows, :cols] = cv2.resize(mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
    if weight.sum() < 1e-6:
        return box
    m = torch.from_numpy(weight)
    proto = F.normalize((emb * m).sum((1, 2)), dim=0)
    sim = torch.einsum("c,chw->hw", proto, emb).numpy()
    thr = cfg.box_similarity * float((sim * weight).sum() / weight.sum())
    cell_y, cell_x = h / rows, w / cols                          # one cell in image px
    c = [int(box[0] // cell_x), int(box[1] // cell_y),
         int(min(cols - 1, (box[2] - 1) // cell_x)), int(min(rows - 1, (box[3] - 1) // cell_y))]
    limit = [cfg.box_expand * (box[2] - box[0]) / cell_x, cfg.box_expand * (box[3] - box[1]) / cell_y]
    grown = [0, 0, 0, 0]
    moved = True
    while moved:
        moved = False
        for k in range(4):
            horizontal = k in (0, 2)
            step = -1 if k < 2 else 1
            nxt = c[k] + step
            if not 0 <= nxt < (cols if horizontal else rows) or grown[k] + 1 > limit[0 if horizontal else 1]:
                continue
            strip = sim[c[1]:c[3] + 1, nxt] if horizontal else sim[nxt, c[0]:c[2] + 1]
            if strip.size and float(strip.mean()) >= thr:
                c[k] = nxt
                grown[k] += 1
                moved = True
    out = box.astype(np.float32).copy()
    out[0] = min(out[0], c[0] * cell_x)
    out[1] = min(out[1], c[1] * cell_y)
    out[2] = max(out[2], (c[2] + 1) * cell_x)
    out[3] = max(out[3], (c[3] + 1) * cell_y)
    return out


def _geometry(m: np.ndarray, cfg: PromptConfig):
    """The box and the point prompts of a bool (H, W) mask: (box float32 (4,), points [(x, y)],
    labels [int]), or None for an empty mask."""
    if not m.any():
        return None
    # Every distance transform runs on a crop (a component's box, the mask's box), not the photo:
    # the distances and the first maximum in raster order are the same (a component's pixels are
    # nearest to the zeros in and around its box; the mask's pixels all lie in its box), and a large
    # photo's work follows the mask's size (the aeroplane's coarse mask: 0.14 -> 0.035 s per call;
    # resized to 6000 x 4000: 0.42 -> 0.11 s). Test: tests/sam/test_prompt.py.
    h, w = m.shape
    scale = max(frame_shape(h, w)) / max(h, w)      # image px -> SAM frame px
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)
    pts, labels = [], []
    if cfg.points:
        for comp, top, left in _components(m, cfg):
            d = _dist(comp)
            y, x = np.unravel_index(int(np.argmax(d)), d.shape)
            pts.append((left + x + 0.5, top + y + 0.5))
            labels.append(1)
    if cfg.negative:
        x0, y0, x1, y1 = box.astype(int)
        bg = ~m[y0:y1, x0:x1]
        if bg.any():   # distance to the mask (not to the box's border), read inside the box
            d = np.where(bg, cv2.distanceTransform(bg.astype(np.uint8), cv2.DIST_L2, 5), 0)
            y, x = np.unravel_index(int(np.argmax(d)), d.shape)
            if d[y, x] * scale >= cfg.negative_min_px:
                pts.append((x0 + x + 0.5, y0 + y + 0.5))
                labels.append(0)
    return box, pts, labels


def _memoised(memo: dict | None, key: tuple, mask, compute):
    """``compute()``, once per (``key``, ``mask`` object) while ``memo`` lives (None: every call). The
    memo holds the mask, so its id names it."""
    if memo is None:
        return compute()
    hit = memo.get((key, id(mask)))
    if hit is not None and hit[0] is mask:
        return hit[1]
    value = compute()
    memo[(key, id(mask))] = (mask, value)
    return value


def derive_prompts(mask: np.ndarray, cfg: PromptConfig, embedding: torch.Tensor | None = None,
                   lowres_logits: np.ndarray | None = None, memo: dict | None = None) -> dict[str, Any]:
    """Prompts for SamPredictor.predict from a binary mask.

    Args:
        mask: bool (H, W), the coarse mask (or the last round's mask) at the image's size.
        embedding: SAM's image embedding float (1, C, 64, 64) (needed for ``box_expand`` > 0).
        lowres_logits: float (256, 256) dense prompt to use instead of one derived from ``mask``.
        memo: a dict shared by calls on the same ``mask`` object (e.g. one per photo and prompt
            setting): the box and the points, whose distance transforms and components cost most at
            high resolution, are computed once per mask and point settings (equal results).

    Returns:
        ``{"point_coords": float32 (N, 2) (x, y) image px or None, "point_labels": int64 (N,) or None,
        "box": float32 (4,) x0, y0, x1, y1 or None, "mask_input": float32 (1, 256, 256) or None}``;
        ``{}`` for an empty mask.
    """
    m = np.asarray(mask, bool)
    key = ("geometry", cfg.points, cfg.negative, cfg.negative_min_px, cfg.min_component, cfg.max_points)
    geometry = _memoised(memo, key, mask, lambda: _geometry(m, cfg))
    if geometry is None:
        return {}
    box, pts, labels = geometry[0].copy(), list(geometry[1]), list(geometry[2])
    h, w = m.shape
    out: dict[str, Any] = {"point_coords": None, "point_labels": None, "box": None, "mask_input": None}
    if pts:
        out["point_coords"] = np.array(pts, np.float32)
        out["point_labels"] = np.array(labels, np.int64)
    if cfg.box:
        if cfg.box_expand > 0 and embedding is not None:
            box = _elastic_box(box, m, embedding, cfg)
        box[[0, 2]] = np.clip(box[[0, 2]], 0, w)
        box[[1, 3]] = np.clip(box[[1, 3]], 0, h)
        out["box"] = box
    if cfg.mask:
        dense = lowres_logits
        if dense is None:
            dense = dense_prompt(_memoised(memo, ("lowres",), mask, lambda: image_to_lowres(m)), cfg)
        out["mask_input"] = np.asarray(dense, np.float32)[None]
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 1.0


@torch.inference_mode()
def decode(predictor, point_coords=None, point_labels=None, box=None, mask_input=None,
           multimask_output: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SAM's prompt encoder and mask decoder on the predictor's image embedding, returning only the
    low-resolution outputs (``SamPredictor.predict`` also upsamples every candidate to the image's
    size, which this skips). Arguments as ``SamPredictor.predict`` (image pixels, x/y order).

    Returns:
        (logits float32 (C, 256, 256), predicted IoU float32 (C,)); C = 3 with ``multimask_output``.
    """
    t, dev, size = predictor.transform, predictor.device, predictor.original_size
    points = boxes = masks = None
    if point_coords is not None:
        coords = torch.as_tensor(t.apply_coords(np.asarray(point_coords, np.float32), size),
                                 dtype=torch.float, device=dev)[None]
        points = (coords, torch.as_tensor(point_labels, dtype=torch.int, device=dev)[None])
    if box is not None:
        boxes = torch.as_tensor(t.apply_boxes(np.asarray(box, np.float32), size), dtype=torch.float,
                                device=dev).reshape(1, 4)
    if mask_input is not None:
        masks = torch.as_tensor(mask_input, dtype=torch.float, device=dev).reshape(1, 1, LOWRES, LOWRES)
    model = predictor.model
    sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks)
    low, iou = model.mask_decoder(image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
                                  sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                  multimask_output=multimask_output)
    return low[0].float().cpu().numpy(), iou[0].float().cpu().numpy()


def sam_prompt(predictor, coarse: np.ndarray, cfg: PromptConfig | None = None,
               memo: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Ask SAM for the object the coarse mask marks (the predictor's image must be set).

    Args:
        predictor: segment_anything ``SamPredictor`` (SAM or MobileSAM) with the image set
            (``set_image``, or the cache's ``set_predictor_image``).
        coarse: bool (H, W) coarse mask at the image's size (nonzero = foreground).
        cfg: :class:`PromptConfig`.
        memo: a dict shared by the calls on one photo with the same bool ``coarse`` array (several
            prompt settings): work on the full-resolution mask is done once (see :func:`derive_prompts`).

    Returns:
        (SAM's low-resolution logits float32 (256, 256) of the chosen candidate in SAM's padded frame,
        info ``{"predicted_iou": float, "coarse_iou": float, "candidate": int, "rounds": int}``).
        An empty coarse mask gives logits of -``logit_max`` everywhere and ``candidate`` -1.

    Raises:
        SamSrError: the predictor has no image set, or its SAM does not use the 1024 px frame.
    """
    cfg = cfg or PromptConfig()
    if not getattr(predictor, "is_image_set", False):
        raise SamSrError("SAM predictor has no image set")
    if getattr(predictor.model.image_encoder, "img_size", SAM_FRAME) != SAM_FRAME:
        raise SamSrError(f"sam-prompt needs SAM's {SAM_FRAME} px input frame (every SAM and MobileSAM model)")
    c = coarse if isinstance(coarse, np.ndarray) and coarse.dtype == bool else np.asarray(coarse) > 0
    if not c.any():
        return np.full((LOWRES, LOWRES), -cfg.logit_max, np.float32), \
            {"predicted_iou": 0.0, "coarse_iou": 0.0, "candidate": -1, "rounds": 0}
    h, w = c.shape
    lh, lw = lowres_shape(h, w)
    target = _memoised(memo, ("lowres",), c, lambda: image_to_lowres(c))[:lh, :lw] >= 0.5
    current, dense = c, None
    info: dict[str, Any] = {}
    logits = None
    for r in range(cfg.rounds):
        prompts = derive_prompts(current, cfg, getattr(predictor, "features", None), dense, memo)
        if not prompts:
            break
        low, scores = decode(predictor, **prompts)
        if cfg.select == "predicted_iou":
            k = int(np.argmax(scores))
        else:
            k = int(np.argmax([_iou(cand[:lh, :lw] > 0, target) for cand in low]))
        logits = low[k]
        info = {"predicted_iou": float(scores[k]), "coarse_iou": _iou(logits[:lh, :lw] > 0, target),
                "candidate": k, "rounds": r + 1}
        if r + 1 < cfg.rounds:
            current = lowres_to_image(logits, h, w) > 0
            dense = logits
            if not current.any():
                break
    return logits, info
