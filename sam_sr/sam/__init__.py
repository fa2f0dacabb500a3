"""SAM / MobileSAM: loading, the cache of outputs, where stages read them, SAM stages, prompts and
label-map fusion."""
from .loader import SAM_TYPES, build_tiny_sam, load_sam, mask_generator, predictor

__all__ = ["SAM_TYPES", "build_tiny_sam", "load_sam", "mask_generator", "predictor"]
