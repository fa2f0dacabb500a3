"""sam-sr: refine a coarse mask from any segmenter into a boundary-accurate full-resolution mask.

Public API::

    from sam_sr import Refiner
    refined = Refiner.from_checkpoint().refine(image_rgb_uint8, coarse_mask)  # uint8 {0, 255}
"""
from .errors import SamSrError
from .inference import CascadeConfig, Refiner

__version__ = "0.1.0"
__all__ = ["Refiner", "CascadeConfig", "SamSrError", "__version__"]
