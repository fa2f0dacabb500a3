"""Shared fixtures: tiny models and checkpoints, synthetic photos, the real-data location."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam_sr.checkpoint import save_checkpoint
from sam_sr.variants import build_model

ROOT = Path(__file__).resolve().parent.parent
#: The real data: $SAM_SR_DATA when set, else ../shared/data beside the checkout.
SHARED_DATA = Path(os.environ.get("SAM_SR_DATA") or ROOT.parent / "shared" / "data").resolve()
SHARED = SHARED_DATA.parent

needs_shared = pytest.mark.skipif(not (SHARED_DATA / "sod").is_dir(),
                                  reason=f"real data {SHARED_DATA} is absent (see shared/data/README.md; "
                                         f"set SAM_SR_DATA)")

TINY = {"backbone": "resnet18", "out_indices": [0, 1, 2], "branch_channels": [8, 8, 8],
        "fusion_channels": 16, "decoder_hidden": [16, 16]}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _fp32(monkeypatch):
    """Tests run in fp32 unless they ask for another precision: ``--precision auto`` (the default) is
    bf16 on CPUs with AVX-512 BF16 or AMX and fp32 elsewhere, and the equality checks (patched against
    unpatched fusion, sparse against dense, the golden files) are fp32's. ``tests/test_devices.py`` and
    the bf16 tests set their precision themselves."""
    monkeypatch.setenv("SAM_SR_PRECISION", "fp32")


@pytest.fixture
def data_env(monkeypatch) -> Path:
    """SAM_SR_DATA set (to the real data folder, which may be absent: configs only name paths in it)."""
    monkeypatch.setenv("SAM_SR_DATA", str(SHARED_DATA))
    return SHARED_DATA


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_model("crm", TINY).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model) -> Path:
    p = tmp_path / "tiny.pt"
    save_checkpoint(p, tiny_model, "crm", tiny_model.config.to_dict(), iteration=0)
    return p


def disk_photo(h: int = 96, w: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo with a bright ellipse; returns (uint8 HxWx3, uint8 HxW 0/255 mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    ry, rx = h * rng.uniform(0.15, 0.3), w * rng.uniform(0.15, 0.3)
    mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    img[mask] = np.clip(img[mask].astype(int) + np.array([180, 120, 60]), 0, 255).astype(np.uint8)
    return img, mask.astype(np.uint8) * 255


def save_pair(folder_img: Path, folder_mask: Path, stem: str, seed: int = 0, img_ext: str = ".jpg",
              mask_ext: str = ".png") -> None:
    folder_img.mkdir(parents=True, exist_ok=True)
    folder_mask.mkdir(parents=True, exist_ok=True)
    img, mask = disk_photo(seed=seed)
    Image.fromarray(img).save(folder_img / f"{stem}{img_ext}")
    Image.fromarray(mask).save(folder_mask / f"{stem}{mask_ext}")
