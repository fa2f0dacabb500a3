"""Reading images and masks, and writing outputs atomically.

Conversions (documented behaviour, not errors):
- images: grayscale, palette, RGBA, 16-bit -> uint8 RGB (alpha dropped, 16-bit scaled by 1/257);
- masks: any size and bit depth. Values are scaled to [0, 1] by their type's range (uint8 /255,
  uint16 /65535, bool as is, float clipped to [0, 1]); RGB/RGBA masks use the maximum over the colour
  channels (alpha is ignored unless the colour channels are constant, then alpha is the mask);
  palette ('P') masks use index > 0 as foreground. A binary coarse mask is ``value >= 0.5``, i.e.
  thresholded at half the range.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import SamSrError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Image.MAX_IMAGE_PIXELS = 200_000_000  # 14k x 14k; we target up to 6k images


def _open(path: str | os.PathLike, what: str) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"{what} not found: {p}")
    try:
        im = Image.open(p)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SamSrError(f"cannot read {what} {p}: {exc}") from exc
    return im


def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Any H x W, H x W x 1/2/3/4 array (uint8/uint16/float in [0,1]) -> uint8 H x W x 3 RGB."""
    a = np.asarray(arr)
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    elif a.dtype.kind == "f":
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] in (1, 2):
        a = np.repeat(a[..., :1], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise SamSrError(f"image must be H x W x 3 (or grayscale/RGBA), got shape {a.shape}")
    return np.array(a, dtype=np.uint8, order="C")  # a writable copy


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a photo as uint8 (H, W, 3) RGB. Raises :class:`SamSrError` if missing or unreadable."""
    im = _open(path, "image")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float32)
        return to_rgb_uint8(a / (65535.0 if a.max() > 255 else 255.0))
    if im.mode != "RGB":
        im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
    return to_rgb_uint8(np.asarray(im))


def mask_to_float(arr: np.ndarray) -> np.ndarray:
    """Any mask array -> float32 (H, W) in [0, 1] (see module docstring for the rules)."""
    a = np.asarray(arr)
    if a.ndim == 3:
        if a.shape[2] in (2, 4):
            colour = a[..., : a.shape[2] - 1]
            a = a[..., -1] if colour.min() == colour.max() else colour.max(axis=2)
        else:
            a = a.max(axis=2)
    if a.ndim != 2:
        raise SamSrError(f"mask must be 2-D (or an image with channels), got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype.kind in "iu":
        hi = 65535.0 if a.max() > 255 else 255.0
        return np.clip(a.astype(np.float32) / hi, 0, 1)
    return np.clip(a.astype(np.float32), 0, 1)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask of any bit depth as float32 (H, W) in [0, 1].

    Raises :class:`SamSrError` if missing or unreadable.
    """
    im = _open(path, "mask")
    if im.mode == "P":
        return (np.asarray(im) > 0).astype(np.float32)
    if im.mode == "1":
        return np.asarray(im).astype(np.float32)
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im).astype(np.float32) / 65535.0
    return mask_to_float(np.asarray(im))


def read_label_map(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """Read an index ('L', 16-bit) or palette ('P') PNG.

    Returns:
        (class indices (H, W) uint8/uint16/int32, the palette as a flat RGB list or None).

    Raises:
        SamSrError: missing/unreadable file, or a colour image (RGB label maps are ambiguous).
    """
    im = _open(path, "label map")
    if im.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise SamSrError(f"label map {path} must be an index or palette PNG, got mode {im.mode}")
    palette = im.getpalette() if im.mode == "P" else None
    return np.array(im), palette


def check_aspect(image_hw: tuple[int, int], mask_hw: tuple[int, int], tol: float = 0.02) -> None:
    """Raise :class:`SamSrError` if the mask's aspect ratio differs from the image's by more than
    ``tol`` (relative) and more than one pixel of rounding. Masks of another size but the same aspect
    ratio are resized to the image."""
    (ih, iw), (mh, mw) = image_hw, mask_hw
    if min(ih, iw, mh, mw) <= 0:
        raise SamSrError(f"empty image or mask: image {ih}x{iw}, mask {mh}x{mw}")
    ra, rb = ih / iw, mh / mw
    rounding = min(abs(mh - mw * ra), abs(mw - mh / ra)) <= 1.0
    if abs(ra - rb) / ra > tol and not rounding:
        raise SamSrError(f"mask aspect ratio {mh}x{mw} does not match image {ih}x{iw}; "
                         f"the mask must cover the same field of view")


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """Raise :class:`SamSrError` if ``path`` exists and not ``force``, or its folder is missing."""
    p = Path(path)
    if p.exists() and not force:
        raise SamSrError(f"output exists: {p} (use --force to overwrite)")
    if p.is_dir():
        raise SamSrError(f"output path is a directory: {p}")
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` then rename; never leaves a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give outputs the usual mode
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_png(path: str | os.PathLike, arr: np.ndarray, palette: list[int] | None = None) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array (or uint16 (H, W)) as PNG, atomically. With
    ``palette`` (flat RGB list) a uint8 index map is written as a palette PNG with the same indices."""
    import io as _io
    im = Image.fromarray(np.ascontiguousarray(arr))
    if palette is not None:
        if im.mode != "L":
            raise SamSrError("a palette PNG needs a uint8 (H, W) index map")
        im.putpalette(palette)  # 'L' -> 'P' keeping the indices
    buf = _io.BytesIO()
    im.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    d = Path(folder)
    if not d.is_dir():
        raise SamSrError(f"folder not found: {d}")
    return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
