"""Reading photos, masks and label maps of any format users bring, as the arrays sam-sr works on.

Conversions (documented behaviour, not errors):

- images: grayscale, palette, RGBA, 16-bit -> uint8 RGB (alpha dropped, 16-bit scaled by 1/257).
  Arrays: uint8 as is; uint16 / 257; bool as 0 / 255; other integer types must hold values in
  0..255; **float images must hold values in [0, 1]** (a float image in 0-255, such as
  ``image.astype(np.float32)``, is refused with :class:`SamSrError` rather than guessed: divide it by
  255 or pass uint8).
- files carry an EXIF orientation tag: photos (and masks and label maps, if they carry one) are
  rotated/mirrored as :func:`PIL.ImageOps.exif_transpose` does, i.e. to the photo as it is displayed;
  a mask is taken as aligned with the displayed photo.
- masks: any size and bit depth. **An integer (or bool) mask whose values are all 0 or 1 is binary**
  (1 = foreground, whatever its dtype: a uint8 {0, 1} PNG, as many segmenters save, reads as
  0 / 255 would). Other integer masks are scaled to [0, 1] by their type's range (uint8 /255,
  uint16 /65535, other integer types /255 if their maximum is at most 255 else /65535; negative
  values are refused, as a signed -1/1 mask is ambiguous); a (1, H, W) array is one mask; float masks must lie in [0, 1] (a tolerance of 1e-3 is clipped; values outside, or
  NaN, are refused). RGB/RGBA masks use the maximum over the colour channels (alpha is ignored unless
  the colour channels are constant, then alpha is the mask); palette ('P') masks use index > 0 as
  foreground. A binary coarse mask is ``value >= 0.5``, i.e. thresholded at half the range.

Writing: :mod:`sam_sr.imaging.write`; output paths: :mod:`sam_sr.imaging.outputs`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import SamSrError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")



Image.MAX_IMAGE_PIXELS = 200_000_000  # 14k x 14k; we target up to 6k images



#: Float images and masks may overshoot [0, 1] by this much (rounding); it is clipped.
FLOAT_TOLERANCE = 1e-3



def _open(path: str | os.PathLike, what: str) -> Image.Image:
    """Open and decode an image file, with its EXIF orientation applied."""
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"{what} not found: {p}" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        im = Image.open(p)
        im.load()
    except Image.DecompressionBombError as exc:
        raise SamSrError(f"{what} {p} is too large to read safely: {_header_size(p)}, over the limit of "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image.MAX_IMAGE_PIXELS)") from exc
    except MemoryError as exc:
        raise SamSrError(f"not enough memory to read {what} {p}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SamSrError(f"cannot read {what} {p}: {exc}") from exc
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # noqa: BLE001 - corrupt EXIF blocks raise many types inside PIL
        raise SamSrError(f"cannot apply the EXIF orientation of {what} {p}: {exc}") from exc



def size_text(hw: tuple[int, int]) -> str:
    """An (H, W) size as image viewers print it: ``"W x H px"``."""
    return f"{int(hw[1])}x{int(hw[0])} px"


def _header_size(p: Path) -> str:
    """The pixel size a file's header declares (read without decoding), e.g. ``"20000x15000 px =
    300,000,000 pixels"``, or ``"its size"`` if even the header cannot be read."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None          # the header only: no pixel is decoded here
        with Image.open(p) as im:
            w, h = im.size
        return f"{w}x{h} px = {w * h:,} pixels"
    except Exception:  # noqa: BLE001 - the size is only for the message
        return "its size"
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _not_a_path(arr, what: str, reader: str) -> None:
    """Refuse a path (or other non-array) where an array is expected, naming the reader to use."""
    if isinstance(arr, (str, bytes, os.PathLike)):
        raise SamSrError(f"the {what} must be an array, got the path {str(arr)!r}: read the file first with "
                         f"sam_sr.imaging.{reader}(path)")


def _float_range(a: np.ndarray, what: str, hint: str) -> np.ndarray:
    """Check that a float array lies in [0, 1] (within :data:`FLOAT_TOLERANCE`) and clip it."""
    if a.size == 0:
        return a.astype(np.float32)
    if not np.isfinite(a).all():
        raise SamSrError(f"{what} has NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
        raise SamSrError(f"a float {what} must hold values in [0, 1], got [{lo:g}, {hi:g}]; {hint}")
    return np.clip(a.astype(np.float32), 0, 1)



def to_rgb_uint8(arr: np.ndarray) -> np.ndarray:
    """Any image array -> a writable uint8 (H, W, 3) RGB copy.

    Args:
        arr: (H, W), (H, W, 1/2/3/4): uint8; uint16 (scaled by 1/257); bool (0/255); other integer
            types with values in 0..255; float with values in [0, 1] (scaled by 255). Two channels
            are gray + alpha, four are RGBA; alpha is dropped.

    Raises:
        SamSrError: another shape; a float image outside [0, 1] (e.g. 0-255 floats: divide by 255
            or pass uint8), NaN/inf; integers outside 0..255.
    """
    _not_a_path(arr, "image", "read_image")
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise SamSrError(f"unsupported image dtype {a.dtype}: pass a uint8, uint16, bool or float array")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 2, 3, 4):
        raise SamSrError(f"image of shape {a.shape} looks channel-first: pass it as (H, W, 3), e.g. "
                         f"image.transpose(1, 2, 0)")
    if a.dtype == np.uint16:
        a = (a // 257).astype(np.uint8)
    elif a.dtype.kind == "f":
        a = (_float_range(a, "image", "divide a 0-255 image by 255, or pass it as uint8") * 255
             + 0.5).astype(np.uint8)
    elif a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind in "iu" and a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise SamSrError(f"an integer ({a.dtype}) image must hold values in 0..255, got "
                             f"[{a.min()}, {a.max()}]; pass uint16 for 16-bit images")
        a = a.astype(np.uint8)
    elif a.dtype != np.uint8:
        raise SamSrError(f"unsupported image dtype {a.dtype}")
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
    """Read a photo as uint8 (H, W, 3) RGB, rotated by its EXIF orientation (as displayed).

    Raises:
        SamSrError: missing, unreadable or too large (PIL's decompression-bomb limit) file.
    """
    im = _open(path, "image")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im).astype(np.float32)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise SamSrError(f"image {path} has 32-bit values outside 0..65535")
        return to_rgb_uint8(a / (65535.0 if a.max() > 255 else 255.0))
    if im.mode != "RGB":
        im = im.convert("RGBA" if "A" in im.mode or im.mode == "P" else "RGB")
    return to_rgb_uint8(np.asarray(im))



def mask_to_float(arr: np.ndarray) -> np.ndarray:
    """Any mask array -> float32 (H, W) in [0, 1] (see the module docstring for the rules).

    Args:
        arr: (H, W) or (H, W, C) of any integer type, bool or float.

    Returns:
        float32 (H, W) in [0, 1]; foreground is ``>= 0.5``. Integer masks holding only 0 and 1 are
        binary (1 -> 1.0); other integers are scaled by their type's range.

    Raises:
        SamSrError: not 2-D (after reducing channels), float values outside [0, 1] or NaN, an
            unsupported dtype.
    """
    _not_a_path(arr, "mask", "read_mask")
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise SamSrError(f"unsupported mask dtype {a.dtype}: pass an integer, bool or float array")
    if a.ndim == 3 and a.shape[0] == 1 and a.shape[2] > 4:
        a = a[0]                            # (1, H, W), e.g. a batch or channel axis first: one mask
                                            # ((1, W, C) with C <= 4 stays a one-row image with channels)
    elif a.ndim == 3 and a.shape[0] in (2, 3, 4) and a.shape[2] > 4:
        raise SamSrError(f"mask of shape {a.shape} looks channel-first: pass (H, W), or (H, W, C)")
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
    if a.dtype.kind in "iu":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0:
            raise SamSrError(f"a {a.dtype} mask holds negative values (min {lo}, max {hi}): sam-sr reads masks "
                             f"as 0 = background; map a signed mask (e.g. -1/1) to 0/1 or 0/255 first")
        if hi <= 1:                         # binary {0, 1} of any integer type
            return a.astype(np.float32)
        if a.dtype == np.uint8:
            return a.astype(np.float32) / 255.0
        if a.dtype == np.uint16:
            return a.astype(np.float32) / 65535.0
        scale = 65535.0 if hi > 255 else 255.0
        return np.clip(a.astype(np.float32) / scale, 0, 1)
    if a.dtype.kind == "f":
        return _float_range(a, "mask", "divide a 0-255 mask by 255 or pass it as uint8; "
                                       "threshold logits or scores first")
    raise SamSrError(f"unsupported mask dtype {a.dtype}")



def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask of any bit depth as float32 (H, W) in [0, 1] (see the module docstring).

    A {0, 1} mask (e.g. a uint8 PNG holding 0 and 1) is binary. An EXIF orientation tag, if the
    file has one, is applied as for photos.

    Raises:
        SamSrError: missing, unreadable or too large file; values :func:`mask_to_float` refuses.
    """
    im = _open(path, "mask")
    if im.mode in ("P", "PA"):
        return (np.asarray(im.getchannel(0) if im.mode == "PA" else im) > 0).astype(np.float32)
    if im.mode == "1":
        return np.asarray(im).astype(np.float32)
    if im.mode not in ("L", "LA", "RGB", "RGBA", "I", "F", "I;16", "I;16B", "I;16L"):
        im = im.convert("RGB")
    try:
        return mask_to_float(np.asarray(im))
    except SamSrError as exc:
        raise SamSrError(f"mask {path}: {exc}") from exc



def read_label_map(path: str | os.PathLike) -> tuple[np.ndarray, list[int] | None]:
    """Read an index ('L', 16-bit) or palette ('P') PNG (EXIF orientation applied if tagged).

    Returns:
        (class indices (H, W) uint8/uint16/int32, the palette as a flat RGB list or None).

    Raises:
        SamSrError: missing/unreadable/too large file, or a colour image (RGB label maps are
            ambiguous).
    """
    im = _open(path, "label map")
    if im.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        raise SamSrError(f"label map {path} must be an index or palette PNG, got mode {im.mode}")
    palette = im.getpalette() if im.mode == "P" else None
    return np.array(im), palette



def exif_rotation_hint(image_path: str | os.PathLike, mask_hw: tuple[int, int]) -> str:
    """A hint for a mask whose aspect ratio matches a photo as stored but not as displayed: the photo's
    EXIF orientation turns it by 90 degrees (sam-sr reads photos as displayed). ``""`` otherwise
    (no tag, no quarter turn, or a mask that would not match either way)."""
    try:
        with Image.open(image_path) as im:
            orientation = im.getexif().get(0x0112, 1)
            w, h = im.size
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    if orientation not in (5, 6, 7, 8):
        return ""
    mh, mw = mask_hw
    if abs(mh / max(mw, 1) - h / max(w, 1)) > 0.02 * (h / max(w, 1)):
        return ""
    return (f"; the photo carries an EXIF orientation tag ({orientation}): it is stored as {w}x{h} px and "
            f"displayed as {h}x{w} px, and sam-sr reads it as displayed. The mask matches the stored "
            f"orientation: rotate the mask to the displayed photo, or save the photo without the tag")


def check_aspect(image_hw: tuple[int, int], mask_hw: tuple[int, int], tol: float = 0.02) -> None:
    """Raise :class:`SamSrError` if the mask's aspect ratio differs from the image's by more than
    ``tol`` (relative) and more than one pixel of rounding. Masks of another size but the same aspect
    ratio are resized to the image."""
    (ih, iw), (mh, mw) = image_hw, mask_hw
    if min(ih, iw, mh, mw) <= 0:
        raise SamSrError(f"empty image or mask: image {size_text(image_hw)}, mask {size_text(mask_hw)}")
    ra, rb = ih / iw, mh / mw
    rounding = min(abs(mh - mw * ra), abs(mw - mh / ra)) <= 1.0
    if abs(ra - rb) / ra > tol and not rounding:
        raise SamSrError(f"the mask ({size_text(mask_hw)}) and the image ({size_text(image_hw)}) differ in "
                         f"aspect ratio; the mask must cover the same field of view")



def check_pair(image_path: str | os.PathLike, image_hw: tuple[int, int], mask_hw: tuple[int, int]) -> None:
    """:func:`check_aspect` for a photo read from ``image_path``, whose error adds
    :func:`exif_rotation_hint` when the photo's EXIF orientation explains the mismatch.

    Raises:
        SamSrError: the aspect ratios differ.
    """
    try:
        check_aspect(image_hw, mask_hw)
    except SamSrError as exc:
        raise SamSrError(f"{exc}{exif_rotation_hint(image_path, mask_hw)}") from None


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by extension, :data:`IMAGE_EXTS`) directly in ``folder``, sorted by name;
    hidden files (names starting with '.') are left out.

    Raises:
        SamSrError: ``folder`` is missing or not a folder.
    """
    d = Path(folder)
    if not d.is_dir():
        raise SamSrError(f"folder not found: {d}" + (" (it is a file)" if d.exists() else ""))
    return sorted(p for p in d.iterdir()
                  if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file())

