"""Cascade inference and the Refiner predictor."""
from .cascade import CascadeConfig, cascade_refine
from .predictor import DEFAULT_CHECKPOINT, Refiner, prepare_mask

__all__ = ["CascadeConfig", "cascade_refine", "DEFAULT_CHECKPOINT", "Refiner", "prepare_mask"]
