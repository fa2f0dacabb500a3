"""sam-sr: refine a coarse mask from any segmenter into a boundary-accurate full-resolution mask.

Public API::

    from sam_sr import Refiner
    refined = Refiner.from_checkpoint().refine(image_rgb_uint8, coarse_mask)  # uint8 {0, 255}

``Refiner`` and ``CascadeConfig`` are imported on first use (PEP 562), so ``import sam_sr`` and the
command line start without loading torch: Ctrl-C during start-up is handled like any other.
"""
from .errors import SamSrError

__version__ = "0.1.0"
__all__ = ["Refiner", "CascadeConfig", "SamSrError", "__version__"]


def __getattr__(name: str):
    if name in ("Refiner", "CascadeConfig"):
        from . import inference
        return getattr(inference, name)
    raise AttributeError(f"module 'sam_sr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Refiner", "CascadeConfig"})
