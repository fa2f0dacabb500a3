"""SAM input stages: what SAM adds to (or changes in) the refiner's input, one class per kind.

A stage runs before the refiner, at inference and in training alike::

    coarse, extra, info = stage(source, image, coarse, rng)

- ``source``: a :class:`~sam_sr.sam.source.SamSource` (a live SAM at inference, the cache of
  precomputed outputs in training);
- ``image``: uint8 (H, W, 3) RGB; ``coarse``: float32 (H, W) in [0, 1] (binary or soft);
- ``rng``: a numpy Generator for the stage's random choices (prompt points, colours), or None for
  the fixed seed 0 (inference is deterministic);
- returns the coarse mask for the refiner (float32 or bool (h, w) with the image's aspect ratio: the
  input, or a replacement, e.g. SAM's union (v1); a replacement of another size is resized to the
  image), ``extra``: per-pixel channels float32 (H, W, C) in [0, 1], SAM's image embedding float32
  tensor (1, C, 64, 64), or None; and ``info``, a dict about the run (e.g. v1's ``used_sam``). An
  ``info["cascade"]`` dict recommends this photo's cascade settings (:class:`CascadeConfig` fields);
  the predictor applies those the caller did not set explicitly.

The variants' stages live with their variants (:mod:`sam_sr.variants`); :class:`SamInputs` and
:class:`SamTrainingInputs` bind a stage to its source for the predictor and the training dataset.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..errors import SamSrError
from .features import sample_embedding
from .source import SamSource

#: Photos with a side under this many px, or an aspect ratio over :data:`MAX_SAM_ASPECT`, are not
#: given to SAM: its 1024 px frame would blow a few pixels up into blocks, or squeeze the photo into a
#: strip of one or two cells of its 256 grid.
MIN_SAM_SIDE, MAX_SAM_ASPECT = 32, 100.0

#: Keys of a config's ``sam`` section that name the SAM model and its cache (read by training and
#: ``sam-sr precompute-sam``); the other keys are the settings of the variant's stage.
SAM_KEYS = ("type", "checkpoint", "cache", "points_per_side")


class SamStage:
    """Base class of a variant's SAM input stage (see module docstring).

    Class attributes:
        uses_masks: the stage reads SAM's automatic masks (precompute them for training).
        uses_embedding: the stage reads SAM's image embedding or its predictor.
    """

    uses_masks = False
    uses_embedding = False
    #: the stage only corrects the coarse mask (it returns no extra input), so the refiner can run
    #: without it where SAM cannot see the photo (a side under :data:`MIN_SAM_SIDE` px, or an aspect
    #: ratio over :data:`MAX_SAM_ASPECT`)
    optional = False
    #: the settings this stage reads (keys of a config's ``sam`` section besides :data:`SAM_KEYS`)
    setting_keys: tuple[str, ...] = ()

    def __init__(self, settings: Mapping[str, Any] | None = None):
        given = {k: v for k, v in dict(settings or {}).items() if k not in SAM_KEYS}
        unknown = sorted(set(given) - set(self.setting_keys))
        if unknown:
            raise SamSrError(f"unknown SAM settings {unknown} for {type(self).__name__}"
                             + (f"; it reads {list(self.setting_keys)}" if self.setting_keys else
                                "; it reads none"))
        self.settings = given

    def kept_settings(self) -> dict[str, Any]:
        """The cascade settings (:class:`~sam_sr.inference.cascade.CascadeConfig` fields) for a coarse
        mask whose regions are kept whole, when the caller asks for that (``Refiner.from_checkpoint(...,
        regions="keep")``, ``sam-sr infer --regions keep``): the stage is not run, and the boundary step
        refines the coarse mask with these. The base stage recommends nothing ({}: the checkpoint's own
        settings); v5's decision stage recommends what it uses when it takes no change."""
        return {}

    def bind(self, model) -> "SamStage":
        """Give the stage the refiner it feeds (a stage with learned parts, such as v4's region
        network, reads them from it); returns the stage. The base stage needs nothing."""
        return self

    @staticmethod
    def seed(rng: np.random.Generator | None) -> int:
        """A seed for the stage's random choices: 0 without ``rng`` (inference), else drawn from it."""
        return 0 if rng is None else int(rng.integers(0, 2**31 - 1))

    def __call__(self, source: SamSource, image: np.ndarray, coarse: np.ndarray,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, Any, dict[str, Any]]:
        raise NotImplementedError


class SamInputs:
    """A stage bound to a live SAM, called by :class:`sam_sr.Refiner` as
    ``inputs(image, coarse) -> (coarse, extra, info)`` (see module docstring)."""

    def __init__(self, stage: SamStage, source: SamSource):
        self.stage, self.source = stage, source

    def __call__(self, image: np.ndarray, coarse: np.ndarray):
        return self.stage(self.source, image, coarse, None)


class SamTrainingInputs:
    """A stage bound to the SAM cache, for :class:`sam_sr.data.RefinementDataset`.

    Called as ``inputs(image, coarse, rng) -> (coarse, extra, embedding)`` with ``extra`` float32
    (H, W, C) in [0, 1] or None and ``embedding`` float32 (1, C, 64, 64) or None.
    :meth:`features_at` reads an embedding at a crop's pixel coordinates.
    """

    def __init__(self, stage: SamStage, source: SamSource):
        self.stage, self.source = stage, source

    def __call__(self, image: np.ndarray, coarse: np.ndarray, rng: np.random.Generator):
        coarse, extra, _ = self.stage(self.source, image, coarse, rng)
        if isinstance(extra, torch.Tensor):
            return coarse, None, extra
        return coarse, extra, None

    @staticmethod
    def features_at(embedding: torch.Tensor, image_hw: tuple[int, int], ys: torch.Tensor,
                    xs: torch.Tensor) -> torch.Tensor:
        """The embedding read at image points (pixel coordinates): float32 (C, R, Cc); see
        :func:`sam_sr.sam.features.sample_embedding`."""
        return sample_embedding(embedding, image_hw, ys, xs)
