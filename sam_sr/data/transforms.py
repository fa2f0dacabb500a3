"""Joint augmentation of image, ground truth and coarse mask with albumentations."""
from __future__ import annotations

import albumentations as A
import cv2


def train_transform(crop_size: int = 224, scale: tuple[float, float] = (0.3, 1.0),
                    jitter: tuple[float, float, float] = (0.2, 0.05, 0.05),
                    grayscale_prob: float = 0.05, extra_targets: tuple[str, ...] = ()) -> A.Compose:
    """Random resized crop (default 224 px), horizontal flip, colour jitter and random grayscale
    (CRM's recipe), applied jointly: ``t(image=uint8 HxWx3, mask=float HxW, coarse=float HxW)``.

    The crop covers ``scale`` of the image area; images smaller than the crop are padded first.
    ``extra_targets`` are further (H, W) or (H, W, C) float maps transformed like the masks
    (geometry only, nearest-neighbour), e.g. SAM maps and pixel-coordinate maps.
    """
    b, c, s = jitter
    return A.Compose([
        A.PadIfNeeded(min_height=crop_size, min_width=crop_size, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomResizedCrop(size=(crop_size, crop_size), scale=scale, ratio=(0.75, 1.333)),
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=b, contrast=c, saturation=s, hue=0.0, p=0.8),
        A.ToGray(p=grayscale_prob),
    ], additional_targets={"coarse": "mask", **{k: "mask" for k in extra_targets}})
