"""SAM / MobileSAM loading and SAM-derived inputs."""
from .loader import SAM_TYPES, build_tiny_sam, load_sam, mask_generator, predictor

__all__ = ["SAM_TYPES", "build_tiny_sam", "load_sam", "mask_generator", "predictor"]
