"""On-disk cache of SAM outputs, keyed by image content and SAM model.

Training steps must not run SAM: ``scripts/precompute_sam.py`` fills the cache once per training
image, and datasets read from it. Entries are compressed ``.npz`` files written atomically:
``<root>/<model_tag>/<image_sha256[:32]>.<kind>.npz`` with kinds
- ``masks``: automatic masks (``segmentation`` bits packed, ``area``, ``predicted_iou``);
- ``embedding``: the image encoder's output (float32 (1, 256, 64, 64), exactly as computed, so a run
  that reads the cache gives what a run without it gives; entries written before 2026-12-07 evening
  hold float16, which is still read, rounded: refill such a cache for exact results) with the
  predictor's sizes, so prompted masks (v2.2) can be decoded without the image encoder.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import SamSrError
from ..imaging.write import atomic_write_bytes


def image_key(image: np.ndarray) -> str:
    """sha256 of the image's shape and pixels (first 32 hex digits)."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(str(a.shape).encode() + str(a.dtype).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:32]


def model_tag(model_type: str, checkpoint: str | Path) -> str:
    """``<type>-<sha256 of the checkpoint file, first 12 hex digits>``."""
    h = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{model_type}-{h.hexdigest()[:12]}"


class SamCache:
    """Cache of SAM outputs under ``root/tag``.

    Args:
        root: cache folder (created on first write).
        tag: model identity, e.g. from :func:`model_tag`; entries of other models are never read.
    """

    def __init__(self, root: str | Path, tag: str):
        self.dir = Path(root) / tag
        self.hits = 0
        self.misses = 0

    def path(self, key: str, kind: str) -> Path:
        return self.dir / f"{key}.{kind}.npz"

    def _read(self, p: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(p) as z:
                return {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - a corrupt entry is reported, never used
            raise SamSrError(f"corrupt SAM cache entry {p}: {exc}; delete it to recompute") from exc

    def _write(self, p: Path, arrays: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(p, buf.getvalue())

    def masks(self, image: np.ndarray, generate: Callable[[np.ndarray], list[dict[str, Any]]],
              kind: str = "masks") -> list[dict[str, Any]]:
        """Automatic masks of ``image``: from the cache, or ``generate(image)`` stored then returned.

        ``kind`` names the generator's settings (e.g. ``masks-p8`` for an 8 x 8 point grid), so
        masks of different settings never mix."""
        p = self.path(image_key(image), kind)
        if p.is_file():
            self.hits += 1
            z = self._read(p)
            h, w = (int(v) for v in z["shape"])
            segs = np.unpackbits(z["bits"], axis=1, count=h * w).reshape(-1, h, w).astype(bool)
            return [{"segmentation": s, "area": int(a), "predicted_iou": float(q)}
                    for s, a, q in zip(segs, z["area"], z["predicted_iou"])]
        self.misses += 1
        masks = generate(image)
        h, w = image.shape[:2]
        segs = np.stack([m["segmentation"] for m in masks]) if masks else np.zeros((0, h, w), bool)
        self._write(p, {"shape": np.array([h, w]),
                        "bits": np.packbits(segs.reshape(len(segs), h * w), axis=1),
                        "area": np.array([m["area"] for m in masks], np.int64),
                        "predicted_iou": np.array([m.get("predicted_iou", 0.0) for m in masks], np.float32)})
        return [{"segmentation": s, "area": int(s.sum()), "predicted_iou": float(m.get("predicted_iou", 0.0))}
                for s, m in zip(segs, masks)]

    def has(self, image: np.ndarray, kind: str) -> bool:
        """Whether an entry of ``kind`` exists for ``image``."""
        return self.path(image_key(image), kind).is_file()

    def embedding(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The cached embedding entry of ``image``: ``features`` float32 (1, 256, 64, 64) (float16 in
        entries written before 2026-12-07 evening),
        ``original_size``, ``input_size``.

        Raises:
            SamSrError: no entry (run ``scripts/precompute_sam.py``) or a corrupt one.
        """
        p = self.path(image_key(image), "embedding")
        if not p.is_file():
            raise SamSrError(f"no cached SAM embedding for this image in {self.dir}; "
                             f"run scripts/precompute_sam.py first")
        return self._read(p)

    def set_predictor_image(self, predictor, image: np.ndarray, key: str | None = None) -> None:
        """``predictor.set_image(image)``, with the image embedding read from or written to the cache.
        ``key``: the image's :func:`image_key` where already known."""
        from .encode import set_predictor_features
        key = key or image_key(image)
        p = self.path(key, "embedding")
        if p.is_file():
            self.hits += 1
            set_predictor_features(predictor, self._read(p))
            return
        self.misses += 1
        type(predictor).set_image(predictor, image)  # the class's method, even if patched on the object
        self.store(image, {"features": predictor.features, "original_size": predictor.original_size,
                           "input_size": predictor.input_size}, key)

    def store(self, image: np.ndarray | None, entry: dict[str, Any], key: str | None = None) -> None:
        """Write the embedding entry of ``image`` (``features`` (1, 256, 64, 64) tensor or array,
        ``original_size``, ``input_size``; e.g. one of :func:`sam_sr.sam.encode.encode_images`).
        ``key``: the image's :func:`image_key` where already known (then ``image`` may be None)."""
        f = entry["features"]
        f = f.detach().float().cpu().numpy() if hasattr(f, "detach") else np.asarray(f, np.float32)
        # stored as computed (float32): with float16, as before 2026-12-07, the run that filled the cache and
        # the runs that read it refined differently (sod validation, PiCANet: +3.01 / +3.12 IoU gain)
        self._write(self.path(key or image_key(image), "embedding"),
                    {"features": f.astype(np.float32), "original_size": np.array(entry["original_size"]),
                     "input_size": np.array(entry["input_size"])})
