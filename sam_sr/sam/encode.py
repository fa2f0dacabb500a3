"""SAM's image encoder over several photos in one call, and setting a predictor from its output.

``SamPredictor.set_image`` encodes one photo per call. A folder run on a GPU can instead encode a
few photos at once (:meth:`sam_sr.sam.source.LiveSam.prime`, ``sam-sr infer --images ... --sam-batch
N``): each photo is resized and padded exactly as ``set_image`` does it (SAM's
``ResizeLongestSide`` to the 1024 px frame, then ``Sam.preprocess``: normalised and zero-padded to
1024 x 1024), the padded frames are stacked and the encoder runs once per batch. The embeddings are
those of ``set_image`` up to float rounding (the batched kernels may sum in another order).

On this project's 2-core CPU a batch does not pay: MobileSAM's encoder per photo, bf16, took
0.584 s at batch 1, 0.595 s at batch 2 and 0.866 s at batch 4 (docs/BENCHMARKS.md), so the folder
run's default is batch 1. On a GPU it is measured by ``benchmarks/gpu_profile.py`` (its SAM
section) when one is lent.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


@torch.no_grad()    # as set_image: plain tensors (inference-mode ones refuse in-place use outside it)
def encode_images(predictor, images: Sequence[np.ndarray], batch: int) -> list[dict[str, Any]]:
    """SAM's image embeddings of ``images``, ``batch`` photos per image-encoder call.

    Args:
        predictor: a segment_anything (or mobile_sam) ``SamPredictor``: its model, device and resize
            transform are used; its own image is left as it was.
        images: uint8 (H, W, 3) RGB photos, any sizes.
        batch: photos per encoder call (>= 1).

    Returns:
        One dict per photo, in order: ``features`` float32 (1, 256, 64, 64) on the predictor's device,
        ``original_size`` (H, W) and ``input_size`` (the resized photo's (h, w) inside the frame), as
        ``set_image`` would leave them on the predictor.

    Raises:
        ValueError: ``batch`` below 1, or an image that is not (H, W, 3).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    model, out = predictor.model, []
    for start in range(0, len(images), batch):
        frames, sizes = [], []
        for image in images[start:start + batch]:
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
            if model.image_format != "RGB":            # as set_image: the model's channel order
                image = image[..., ::-1]
            resized = predictor.transform.apply_image(image)
            x = torch.as_tensor(resized, device=predictor.device).permute(2, 0, 1).contiguous()[None]
            frames.append(model.preprocess(x))
            sizes.append((tuple(image.shape[:2]), tuple(x.shape[-2:])))
        features = model.image_encoder(torch.cat(frames))
        for f, (original, inp) in zip(features, sizes):
            out.append({"features": f[None].float(), "original_size": original, "input_size": inp})
    return out


def set_predictor_features(predictor, entry: dict[str, Any]) -> None:
    """Leave ``predictor`` as ``set_image`` would, from an embedding computed elsewhere (a batch of
    :func:`encode_images`, or the disk cache): ``entry`` holds ``features`` (1, 256, 64, 64) (tensor
    or array), ``original_size`` and ``input_size``."""
    predictor.reset_image()
    f = entry["features"]
    f = f if isinstance(f, torch.Tensor) else torch.from_numpy(np.asarray(f).astype(np.float32))
    predictor.features = f.to(predictor.device, torch.float32)
    predictor.original_size = tuple(int(v) for v in entry["original_size"])
    predictor.input_size = tuple(int(v) for v in entry["input_size"])
    predictor.is_image_set = True
