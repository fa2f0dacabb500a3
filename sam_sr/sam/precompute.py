"""Precompute SAM outputs for training and evaluation images (``sam-sr precompute-sam``).

For every image: SAM's image embedding (v2.2 prompts and v3.x features are decoded from it) and the
automatic masks of a ``points_per_side`` x ``points_per_side`` grid (v1, v2.1). Both go to a
:class:`~sam_sr.sam.cache.SamCache` keyed by image content and SAM model; images already cached are
skipped, so an interrupted run resumes. The image encoder runs once per image: the mask generator's
predictor reads the embedding through the cache.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..imaging.read import read_image
from .cache import SamCache
from .loader import mask_generator, predictor


def precompute(sam, images: list[str | Path], cache: SamCache, points_per_side: int = 8,
               masks: bool = True) -> dict[str, Any]:
    """Fill ``cache`` for the image files ``images``.

    Args:
        sam: a loaded SAM / MobileSAM (:func:`sam_sr.sam.load_sam`).
        points_per_side: automatic-mask grid (cached as kind ``masks-p<N>``).
        masks: also generate automatic masks (False: embeddings only, enough for v2.2 and v3.x).

    Returns:
        ``{"images", "computed", "skipped", "wall_s", "mask_counts"}``.

    Raises:
        SamSrError: unreadable images (nothing is cached for them).
    """
    kind = f"masks-p{points_per_side}"
    gen = mask_generator(sam, points_per_side=points_per_side) if masks else None
    pred = gen.predictor if gen is not None else predictor(sam)
    # the generator calls predictor.set_image(image); route it through the cache
    pred.set_image = lambda image, image_format="RGB": cache.set_predictor_image(pred, image)
    computed = skipped = 0
    counts = []
    t0 = time.time()
    for path in tqdm(images, desc="SAM", unit="img"):
        image = read_image(path)
        if cache.has(image, "embedding") and (not masks or cache.has(image, kind)):
            skipped += 1
            continue
        cache.set_predictor_image(pred, image)
        if masks:
            counts.append(len(cache.masks(image, gen.generate, kind)))
        computed += 1
    return {"images": len(images), "computed": computed, "skipped": skipped,
            "wall_s": time.time() - t0, "mask_counts": counts}


def cache_for(root: str | Path, model_type: str, checkpoint: str | Path) -> SamCache:
    """The cache of one SAM model under ``root``."""
    from .cache import model_tag
    return SamCache(root, model_tag(model_type, checkpoint))
