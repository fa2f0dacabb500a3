"""Where a SAM input stage gets SAM's outputs for an image: a live SAM model (inference) or the cache
of precomputed outputs (training).

Both give the same three things, so a stage (:mod:`sam_sr.sam.stage`) is written once for inference
and training:

- :meth:`SamSource.masks`: SAM's automatic masks (segment_anything's ``SamAutomaticMaskGenerator``
  on a ``points_per_side`` grid; dicts with a bool (H, W) ``segmentation``);
- :meth:`SamSource.predictor`: a ``SamPredictor`` with the image set (prompted masks);
- :meth:`SamSource.embedding`: SAM's image embedding, float32 (1, C, 64, 64).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import SamSrError
from .cache import SamCache


class SamSource:
    """SAM's outputs for one image at a time (see module docstring)."""

    def masks(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Automatic masks of ``image`` (uint8 (H, W, 3) RGB)."""
        raise NotImplementedError

    def predictor(self, image: np.ndarray):
        """A ``SamPredictor`` whose image is ``image``."""
        raise NotImplementedError

    def embedding(self, image: np.ndarray) -> torch.Tensor:
        """SAM's image embedding of ``image``: float32 (1, C, 64, 64)."""
        raise NotImplementedError

    def forget_image(self) -> None:
        """Forget the last image, so that the next call runs SAM's image encoder again even for the
        same image (benchmarks time each refinement as a new photo's). Sources without such a
        memory do nothing."""


class LiveSam(SamSource):
    """A loaded SAM / MobileSAM (:func:`sam_sr.sam.load_sam`), with an optional cache that is read
    and filled (:class:`SamCache`). The mask generator and the predictor are made when first needed.

    Args:
        sam: the SAM model. cache: optional :class:`SamCache`.
        points_per_side: the automatic-mask point grid (cached as kind ``masks-p<N>``).
    """

    def __init__(self, sam, cache: SamCache | None = None, points_per_side: int = 16):
        self.sam, self.cache = sam, cache
        self.points_per_side = int(points_per_side)
        self.mask_kind = f"masks-p{self.points_per_side}"
        self._generator = self._predictor = None
        self._image_key: str | None = None
        self._primed: dict[str, dict[str, Any]] = {}   # image key -> embedding entry (see prime)

    def masks(self, image: np.ndarray) -> list[dict[str, Any]]:
        if self._generator is None:
            from .loader import mask_generator
            self._generator = mask_generator(self.sam, points_per_side=self.points_per_side)
        if self.cache is not None:
            return self.cache.masks(image, self._generator.generate, self.mask_kind)
        return self._generator.generate(image)

    def _get_predictor(self):
        if self._predictor is None:
            from .loader import predictor
            self._predictor = predictor(self.sam)
        return self._predictor

    def predictor(self, image: np.ndarray):
        """The predictor with ``image`` set; the image encoder runs only when the image differs from
        the last one (by content), e.g. not again for each class of a label map, and not for a photo
        :meth:`prime` encoded ahead."""
        pred = self._get_predictor()
        from .cache import image_key
        key = image_key(image)
        if key == self._image_key and pred.is_image_set:
            return pred
        entry = self._primed.pop(key, None)
        if entry is not None:
            from .encode import set_predictor_features
            set_predictor_features(pred, entry)
        elif self.cache is not None:
            self.cache.set_predictor_image(pred, image, key)
        else:
            pred.set_image(image)
        self._image_key = key
        return pred

    def prime(self, images: Sequence[np.ndarray], batch: int) -> int:
        """Encode the photos a run is about to refine, ``batch`` per image-encoder call
        (:func:`sam_sr.sam.encode.encode_images`), so that :meth:`predictor` finds their embeddings
        (each is used once, then dropped). Photos the disk cache already holds, or already primed,
        are not encoded again; computed ones are also written to the disk cache. Embeddings primed by
        an earlier call and never asked for are dropped (memory stays at one batch: 4 MiB a photo).

        Args:
            images: uint8 (H, W, 3) RGB photos, as they will be given to :meth:`predictor`.
            batch: photos per encoder call (>= 1).

        Returns:
            the number of photos encoded.
        """
        from .cache import image_key
        from .encode import encode_images
        keys = [image_key(im) for im in images]
        kept = {k: self._primed[k] for k in keys if k in self._primed}
        todo, seen = [], set(kept)
        for k, im in zip(keys, images):
            if k in seen or (self.cache is not None and self.cache.path(k, "embedding").is_file()):
                continue
            seen.add(k)
            todo.append((k, im))
        entries = encode_images(self._get_predictor(), [im for _, im in todo], batch) if todo else []
        for (k, _), entry in zip(todo, entries):
            kept[k] = entry
            if self.cache is not None:
                self.cache.store(None, entry, k)
        self._primed = kept
        return len(todo)

    def embedding(self, image: np.ndarray) -> torch.Tensor:
        return self.predictor(image).features.float()

    def forget_image(self) -> None:
        self._image_key = None
        self._primed = {}


def _not_cached(image: np.ndarray):
    raise SamSrError("SAM outputs of a training image are not cached; run scripts/precompute_sam.py "
                     "(sam-sr precompute-sam) with this config first")


class CachedSam(SamSource):
    """SAM's outputs read from the cache only (training never runs SAM's image encoder).

    Args:
        cache: the :class:`SamCache` filled by ``sam-sr precompute-sam``.
        sam_type, sam_checkpoint: the SAM model; its prompt encoder and mask decoder are loaded (once
            per data worker, on the CPU) only when a stage asks for the predictor, and run on the
            cached embedding.
        points_per_side: grid of the cached automatic masks.

    Raises (from the methods):
        SamSrError: an image whose masks or embedding are not cached.
    """

    def __init__(self, cache: SamCache, sam_type: str = "vit_t", sam_checkpoint: str | Path | None = None,
                 points_per_side: int = 8):
        self.cache = cache
        self.sam_type, self.sam_checkpoint = sam_type, sam_checkpoint
        self.mask_kind = f"masks-p{int(points_per_side)}"
        self._predictor = None

    def masks(self, image: np.ndarray) -> list[dict[str, Any]]:
        return self.cache.masks(image, _not_cached, self.mask_kind)

    def predictor(self, image: np.ndarray):
        if not self.cache.has(image, "embedding"):
            _not_cached(image)
        if self._predictor is None:
            from .loader import load_sam, predictor
            if not self.sam_checkpoint:
                raise SamSrError("prompted SAM masks need sam.checkpoint (for SAM's prompt decoder)")
            self._predictor = predictor(load_sam(self.sam_type, self.sam_checkpoint, "cpu"))
        self.cache.set_predictor_image(self._predictor, image)
        return self._predictor

    def embedding(self, image: np.ndarray) -> torch.Tensor:
        if not self.cache.has(image, "embedding"):
            _not_cached(image)
        return torch.from_numpy(self.cache.embedding(image)["features"].astype(np.float32))


def segmentations(masks: Sequence[dict[str, Any]], shape: tuple[int, int]) -> list[np.ndarray]:
    """The ``segmentation`` arrays of automatic SAM masks as bool (H, W) arrays.

    Raises:
        SamSrError: a mask of another size than ``shape``.
    """
    out = []
    for m in masks:
        seg = np.asarray(m["segmentation"], bool)
        if seg.shape != tuple(shape):
            raise SamSrError(f"SAM mask {seg.shape} does not match the image {tuple(shape)}")
        out.append(seg)
    return out
