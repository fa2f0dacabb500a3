"""Training samples for the region step of SAM-SR v4, made once and stored (SAM never runs in training).

For every training photo (and, for label maps, every sampled class) we store on SAM's grids:
the photo and a validity map on the 256 x 256 low-resolution grid, the ground truth on a 512 x 512
grid of the same padded 1024 px frame, and ``k`` coarse masks with SAM's answer to prompts derived
from each (:func:`sam_sr.sam.prompt.sam_prompt`). The SAM image embedding stays in the SAM cache
(:class:`sam_sr.sam.cache.SamCache`) and is looked up by the photo's key.

Coarse masks (``mode`` of each sample):

- ``real``: a real segmenter's output stored with the dataset (sod: PiCANet, DSS, Amulet);
- ``missing_part``: parts of the object removed (target IoU in ``region_iou``);
- ``extra_blob``: random blobs added next to and away from the object;
- ``neighbour``: a neighbouring object added, found by prompting SAM with a point just outside the
  object (a real region of the photo, not a drawn shape);
- ``swap``: a part removed and a neighbouring object added;
- ``boundary``: CascadePSP's boundary perturbation only (target IoU in ``boundary_iou``), so the
  network also sees masks it should keep;
- ``scale_gap``: the ground truth down- and up-sampled (x4-x16);
- ``fill_holes`` / ``open_holes`` (off unless a config weights them): the truth's enclosed holes (or the
  gaps between its thin parts) filled, or holes cut inside it (:mod:`sam_sr.data.perturb`), so the
  network sees holes wrong in both directions.
Region modes are then given, with probability ``degrade_prob``, a segmenter's blur: a scale gap or a
light boundary perturbation, and with probability ``soft_prob`` a Gaussian blur into a soft map.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from ...data.perturb import _add_blobs, _remove_part, fill_holes, mask_iou, open_holes, perturb_to_iou, scale_gap
from ...errors import SamSrError
from ...imaging.write import atomic_write_bytes

#: Grid of the stored ground truth (cells per side of SAM's padded frame).
GT_GRID = 512


def frame_grid(mask: np.ndarray, grid: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    """A float (H, W) or (H, W, C) array resized into the top-left of a ``grid`` x ``grid`` square,
    as SAM places an image in its padded frame (longer side = ``grid``); zero elsewhere."""
    from ...sam.prompt import frame_shape
    h, w = mask.shape[:2]
    fh, fw = frame_shape(h, w, grid)
    out = np.zeros((grid, grid) + mask.shape[2:], np.float32)
    out[:fh, :fw] = cv2.resize(mask.astype(np.float32), (fw, fh), interpolation=interpolation)
    return out


def frame_image(image: np.ndarray, grid: int) -> np.ndarray:
    """A uint8 (H, W, C) photo resized into a ``grid`` x ``grid`` square as :func:`frame_grid` does:
    uint8 (grid, grid, C), equal to ``np.round(frame_grid(image, grid))``.

    A photo that shrinks is resized as uint8 (OpenCV's area average, rounded), which skips
    :func:`frame_grid`'s float32 copy of the whole photo (3492 x 2328: 0.22 -> 0.02 s; equal on 51
    real photos and on random photos up to 6000 x 4000, ``tests/sam/test_region_step.py``). One that
    grows goes through the float path, since OpenCV's uint8 upscaling rounds differently.
    """
    from ...sam.prompt import frame_shape
    h, w = image.shape[:2]
    fh, fw = frame_shape(h, w, grid)
    if image.dtype != np.uint8 or fh > h or fw > w:
        return np.round(frame_grid(image, grid)).astype(np.uint8)
    out = np.zeros((grid, grid) + image.shape[2:], np.uint8)
    out[:fh, :fw] = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA).reshape((fh, fw) + image.shape[2:])
    return out


def frame_cover(shape: tuple[int, int], grid: int) -> np.ndarray:
    """float32 (grid, grid): 1 on the cells that an (H, W) photo covers in :func:`frame_grid`'s square,
    0 on the padding; equal to ``frame_grid(ones(shape), grid) >= 0.5`` without building the photo-sized
    array of ones."""
    from ...sam.prompt import frame_shape
    fh, fw = frame_shape(*shape, grid)
    out = np.zeros((grid, grid), np.float32)
    out[:fh, :fw] = 1.0
    return out


@dataclass
class RegionSynthConfig:
    """Mixture of coarse-mask modes (see the module docstring) and their target IoU ranges."""

    mode_weights: dict[str, float] = field(default_factory=lambda: {
        "missing_part": 0.2, "extra_blob": 0.1, "neighbour": 0.2, "swap": 0.15, "boundary": 0.2,
        "scale_gap": 0.15})
    region_iou: tuple[float, float] = (0.4, 0.9)
    boundary_iou: tuple[float, float] = (0.8, 0.98)
    scale_factors: tuple[int, ...] = (4, 8, 16)
    degrade_prob: float = 0.6
    soft_prob: float = 0.3


def neighbour_region(predictor, gt: np.ndarray, rng: np.random.Generator, tries: int = 6) -> np.ndarray | None:
    """A region next to the object: SAM's mask for a point in a ring just outside ``gt`` (the
    predictor's image must be set), minus the object. None when no candidate touches the object's
    surroundings with a usable size (2% to 150% of the object's area)."""
    g = gt.astype(np.uint8)
    area = int(g.sum())
    if area == 0:
        return None
    r = max(3, int(0.15 * np.sqrt(area)))
    ring = cv2.dilate(g, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) & ~gt.astype(bool)
    ys, xs = np.nonzero(ring)
    if len(ys) == 0:
        return None
    for _ in range(tries):
        i = int(rng.integers(0, len(ys)))
        masks, scores, _ = predictor.predict(point_coords=np.array([[xs[i] + 0.5, ys[i] + 0.5]], np.float32),
                                             point_labels=np.array([1]), multimask_output=True)
        for k in rng.permutation(len(masks)):
            n = masks[k] & ~gt.astype(bool)
            if 0.02 * area <= n.sum() <= 1.5 * area:
                return n
    return None


def synthesize(gt: np.ndarray, mode: str, rng: np.random.Generator, cfg: RegionSynthConfig,
               predictor=None) -> tuple[np.ndarray, str]:
    """One coarse mask of ``mode`` from a binary ground truth.

    Returns:
        (float32 (H, W) in [0, 1], the mode actually used: ``neighbour`` and ``swap`` fall back to
        ``extra_blob`` / ``missing_part`` when SAM finds no neighbouring region).
    """
    g = (gt > 0).astype(np.uint8)
    target = float(rng.uniform(*cfg.region_iou))
    if mode in ("neighbour", "swap"):
        n = neighbour_region(predictor, g > 0, rng) if predictor is not None else None
        if n is None:
            mode = "extra_blob" if mode == "neighbour" else "missing_part"
        else:
            base = _remove_part(g, float(rng.uniform(0.6, 0.9)), rng) if mode == "swap" else g
            out = (base | n.astype(np.uint8))
    if mode == "missing_part":
        out = _remove_part(g, target, rng)
    elif mode == "extra_blob":
        out = _add_blobs(g, target, rng)
    elif mode == "fill_holes":
        out = fill_holes(g, rng)
    elif mode == "open_holes":
        out = open_holes(g, target, rng)
    elif mode == "boundary":
        return perturb_to_iou(g, float(rng.uniform(*cfg.boundary_iou)), rng).astype(np.float32), mode
    elif mode == "scale_gap":
        k = int(rng.choice(cfg.scale_factors))
        return scale_gap(g, k, soft=bool(rng.random() < 0.5)).astype(np.float32), mode
    elif mode not in ("neighbour", "swap"):
        raise SamSrError(f"unknown region coarse-mask mode {mode!r}")
    out = out.astype(np.float32)
    if rng.random() < cfg.degrade_prob:
        if rng.random() < 0.5:
            k = int(rng.choice(cfg.scale_factors))
            out = scale_gap(out > 0.5, k, soft=False).astype(np.float32)
        else:
            out = perturb_to_iou(out > 0.5, float(rng.uniform(0.9, 0.98)), rng, max_ops=50).astype(np.float32)
    if rng.random() < cfg.soft_prob:
        out = cv2.GaussianBlur(out, (0, 0), max(1.0, rng.uniform(0.003, 0.015) * max(g.shape)))
    return out, mode


def draw_modes(cfg: RegionSynthConfig, k: int, rng: np.random.Generator) -> list[str]:
    names = list(cfg.mode_weights)
    p = np.array([cfg.mode_weights[n] for n in names], float)
    return [names[int(i)] for i in rng.choice(len(names), size=k, p=p / p.sum())]


def make_records(image: np.ndarray, gt: np.ndarray, predictor, prompt_cfgs, coarse: Iterable[tuple[str, np.ndarray]],
                 emb_key: str) -> dict[str, np.ndarray]:
    """Arrays of one photo's (or one class's) region samples.

    Args:
        image: uint8 (H, W, 3). gt: bool (H, W). predictor: SamPredictor with the image set.
        prompt_cfgs: :class:`~sam_sr.sam.prompt.PromptConfig` list: one SAM answer per entry.
        coarse: (mode, float (H, W) in [0, 1]) pairs.
        emb_key: the SAM cache key of the photo.

    Returns:
        ``image256`` uint8 (256, 256, 3), ``valid`` uint8 (256, 256), ``gt512`` uint8 (512, 512) (x255,
        area-averaged), ``coarse256`` uint8 (K, 256, 256) (x255), ``sam256`` float16 (K, S, 256, 256)
        (SAM's logits, one per prompt config), ``modes`` (K,) str, ``coarse_iou`` float32 (K,), ``emb_key`` str.
    """
    from ...sam.prompt import LOWRES, image_to_lowres, sam_prompt
    valid = frame_grid(np.ones(gt.shape, np.float32), LOWRES) >= 0.5
    rec: dict[str, Any] = {
        "image256": frame_image(image, LOWRES),
        "valid": valid.astype(np.uint8),
        "gt512": np.round(frame_grid(gt.astype(np.float32), GT_GRID) * 255).astype(np.uint8),
        "emb_key": np.array(emb_key),
    }
    cs, ss, modes, ious = [], [], [], []
    for mode, c in coarse:
        answers = [sam_prompt(predictor, c >= 0.5, cfg)[0] for cfg in prompt_cfgs]
        cs.append(np.round(image_to_lowres(c) * 255).astype(np.uint8))
        ss.append(np.stack(answers).astype(np.float16))
        modes.append(mode)
        ious.append(mask_iou(c >= 0.5, gt))
    rec.update(coarse256=np.stack(cs), sam256=np.stack(ss), modes=np.array(modes),
               coarse_iou=np.array(ious, np.float32))
    return rec


def write_records(path: Path, rec: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **rec)
    atomic_write_bytes(path, buf.getvalue())


def seed_of(*parts: Any) -> int:
    """A stable 63-bit seed from any parts (dataset, id, ...)."""
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:15], 16)


def _camvid_items(root: Path, split: str, classes_per_frame: int, ignore_index: int, rng_seed: int):
    """(id, image path, binary gt (H, W), simulated segmenter coarse (H, W)) per sampled class."""
    from ...data.labels import simulate_coarse_labels
    from ...imaging.read import read_label_map
    d = root / split
    for p in sorted((d / "images").glob("*.jpg")):
        labels, _ = read_label_map(d / "labels" / f"{p.stem}.png")
        rng = np.random.default_rng(seed_of(rng_seed, "camvid", p.stem))
        present = [c for c in np.unique(labels) if c != ignore_index and (labels == c).mean() >= 0.01]
        if not present:
            continue
        coarse_labels = simulate_coarse_labels(labels, 8, 0.1, ignore_index, seed=seed_of(rng_seed, p.stem) % 2**31)
        for c in rng.choice(present, size=min(classes_per_frame, len(present)), replace=False):
            yield f"{p.stem}_c{int(c)}", p, labels == c, (coarse_labels == c).astype(np.float32)


def new_items(spec: dict[str, Any], out_root: Path, stats: dict[str, int], seed: int, split: str,
              classes_per_frame: int, desc: str):
    """The items of one dataset spec not stored yet, with a progress bar: yields (id, record path,
    image uint8 (H, W, 3), ground truth bool (H, W), the sample or the CamVid class's coarse mask);
    stored ones count in ``stats["skipped"]``, empty ground truths are passed over.

    Raises:
        SamSrError: a ground truth of another size than its photo.
    """
    from tqdm.auto import tqdm

    from ...data.datasets import load_samples
    from ...imaging.read import read_image, read_mask
    name = spec["name"]
    if spec.get("layout") == "camvid":
        items = list(_camvid_items(Path(spec["root"]), spec.get("split", split),
                                   int(spec.get("classes_per_frame", classes_per_frame)),
                                   int(spec.get("ignore_index", 11)), seed))
    else:
        items = [(s.id, s.image, None, s) for s in load_samples(spec)]
    for item_id, image_path, gt, extra in tqdm(items, desc=f"{desc} {name}", unit="img", mininterval=10):
        path = Path(out_root) / name / f"{item_id}.npz"
        if path.is_file():
            stats["skipped"] += 1
            continue
        image = read_image(image_path)
        if gt is None:
            gt = read_mask(extra.mask) >= 0.5
        if gt.shape != image.shape[:2]:
            raise SamSrError(f"{name}/{item_id}: mask {gt.shape} and image {image.shape[:2]} differ")
        if gt.any():
            yield item_id, path, image, gt, extra


def build_region_data(datasets: list[dict[str, Any]], out_root: str | Path, sam_cache, predictor, prompt_cfgs,
                      synth: RegionSynthConfig | None = None, seed: int = 0) -> dict[str, int]:
    """Make and store region samples (see the module docstring); photos already stored are skipped,
    so an interrupted run resumes.

    Args:
        datasets: specs ``{name, layout, root, ids_file?, k, real?: bool}`` (``layout`` as in
            :func:`sam_sr.data.load_samples`, or ``camvid`` with ``split`` and ``classes_per_frame``).
            ``k`` synthesised coarse masks per photo (or class); ``real`` adds the dataset's real
            coarse masks; ``protocols`` (e.g. ``[scale_gap_x8]``) adds the evaluation's scale gaps.
        out_root: folder of ``<name>/<id>.npz`` records.
        sam_cache: the :class:`~sam_sr.sam.cache.SamCache` holding (or receiving) the embeddings.
        predictor: a segment_anything ``SamPredictor`` of the cache's SAM model, or a function
            returning one, called only when a photo is missing (SAM is then loaded only if needed).
        prompt_cfgs: :class:`sam_sr.sam.prompt.PromptConfig` list, one stored SAM answer each.

    Returns:
        ``{"written": n, "skipped": m, "samples": coarse masks written}``.
    """
    from ...imaging.read import read_mask
    from ...sam.cache import image_key
    synth = synth or RegionSynthConfig()
    out_root = Path(out_root)
    pred = predictor if hasattr(predictor, "predict") else None
    stats = {"written": 0, "skipped": 0, "samples": 0}
    for spec in datasets:
        name, k = spec["name"], int(spec["k"])
        for item_id, path, image, gt, extra in new_items(spec, out_root, stats, seed, "train", 3, "region data"):
            if pred is None:
                pred = predictor()
            sam_cache.set_predictor_image(pred, image)
            rng = np.random.default_rng(seed_of(seed, name, item_id))
            coarse = []
            if spec.get("layout") == "camvid":
                coarse.append(("segmenter", extra))
            elif spec.get("real"):
                for src, p in sorted(extra.coarse.items()):
                    c = read_mask(p)
                    if c.shape != gt.shape:
                        c = cv2.resize(c, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
                    coarse.append((f"real:{src}", c))
            for proto in spec.get("protocols", []):   # e.g. scale_gap_x8, as in the evaluation
                if not str(proto).startswith("scale_gap_x"):
                    raise SamSrError(f"unknown coarse protocol {proto!r} (scale_gap_xK)")
                coarse.append((str(proto), scale_gap(gt, int(str(proto)[11:])).astype(np.float32)))
            for mode in draw_modes(synth, k, rng) if k else []:
                c, used = synthesize(gt, mode, rng, synth, pred)
                coarse.append((used, c))
            rec = make_records(image, gt, pred, prompt_cfgs, coarse, image_key(image))
            write_records(path, rec)
            stats["written"] += 1
            stats["samples"] += len(coarse)
    return stats
