"""Joint augmentation of image, ground truth and coarse mask with albumentations."""
from __future__ import annotations

import albumentations as A
import cv2


def train_transform(crop_size: int = 224, scale: tuple[float, float] = (0.3, 1.0),
                    jitter: tuple[float, float, float] = (0.2, 0.05, 0.05),
                    grayscale_prob: float = 0.05, extra_targets: tuple[str, ...] = (),
                    mode: str = "resized", native_scale: tuple[float, float] = (0.75, 1.33)) -> A.Compose:
    """Random crop (default 224 px), horizontal flip, colour jitter and random grayscale
    (CRM's recipe), applied jointly: ``t(image=uint8 HxWx3, mask=float HxW, coarse=float HxW)``.

    ``mode="resized"``: a random resized crop covering ``scale`` of the image area (CRM), so objects
    are usually shrunk. ``mode="native"``: the image is rescaled by a random factor in
    ``native_scale`` and a crop containing ground-truth foreground is cut at that scale, so the
    model sees objects (and coarse-mask errors, in pixels) at about the size the full-resolution
    cascade step sees them. Images smaller than the crop are padded (reflect) first.
    ``extra_targets`` are further (H, W) or (H, W, C) float maps transformed like the masks
    (geometry only, nearest-neighbour), e.g. SAM maps and pixel-coordinate maps.

    Raises:
        ValueError: unknown ``mode``.
    """
    b, c, s = jitter
    if mode == "resized":
        crop = [A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_REFLECT_101),
                A.RandomResizedCrop(size=(crop_size, crop_size), scale=scale, ratio=(0.75, 1.333))]
    elif mode == "native":
        lo, hi = native_scale
        crop = [A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), p=1.0),
                A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_REFLECT_101),
                A.CropNonEmptyMaskIfExists(height=crop_size, width=crop_size)]
    else:
        raise ValueError(f"unknown crop mode {mode!r} (resized | native)")
    return A.Compose([
        *crop,
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=0.0, p=0.8),
        A.ToGray(p=grayscale_prob),
    ], additional_targets={"coarse": "mask", **{k: "mask" for k in extra_targets}})
