"""Reading images and masks, and writing outputs atomically.

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
  uint16 /65535, other integer types /255 if their maximum is at most 255 else /65535, negatives
  clipped to 0); float masks must lie in [0, 1] (a tolerance of 1e-3 is clipped; values outside, or
  NaN, are refused). RGB/RGBA masks use the maximum over the colour channels (alpha is ignored unless
  the colour channels are constant, then alpha is the mask); palette ('P') masks use index > 0 as
  foreground. A binary coarse mask is ``value >= 0.5``, i.e. thresholded at half the range.
- outputs: :func:`write_mask` picks the format from the file's extension: ``.png`` (PNG) or
  ``.tif``/``.tiff`` (TIFF, deflate-compressed); lossy (``.jpg``, ``.webp``) and other extensions are
  refused. :func:`check_outputs` and :func:`folder_outputs` check a run's output paths before it
  starts (no output is an input, outputs differ, no two inputs share a stem).
"""
from __future__ import annotations

import io as _io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SamSrError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Image.MAX_IMAGE_PIXELS = 200_000_000  # 14k x 14k; we target up to 6k images

#: Output formats by extension (lossless only: an output mask must keep its exact values).
MASK_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}
_LOSSY = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".heic", ".gif")
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
        raise SamSrError(f"{what} {p} is too large to read safely ({exc}); the limit is "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels (PIL.Image.MAX_IMAGE_PIXELS)") from exc
    except MemoryError as exc:
        raise SamSrError(f"not enough memory to read {what} {p}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SamSrError(f"cannot read {what} {p}: {exc}") from exc
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # noqa: BLE001 - corrupt EXIF blocks raise many types inside PIL
        raise SamSrError(f"cannot apply the EXIF orientation of {what} {p}: {exc}") from exc


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
    a = np.asarray(arr)
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
    if a.dtype.kind in "iu":
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo >= 0 and hi <= 1:             # binary {0, 1} of any integer type
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


def _writable_folder(p: Path) -> None:
    """Raise :class:`SamSrError` if ``p``'s folder cannot be created or written (checked on the
    nearest existing ancestor)."""
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SamSrError(f"cannot write {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SamSrError(f"cannot write {p}: folder {parent} is not writable")


def check_output_path(path: str | os.PathLike, force: bool = False) -> Path:
    """Check one output path before a run writes it.

    Raises:
        SamSrError: ``path`` exists and not ``force``; it is a folder; its folder is a file or is
            not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise SamSrError(f"output path is a directory: {p}")
    if p.exists() and not force:
        raise SamSrError(f"output exists: {p} (use --force to overwrite)")
    _writable_folder(p)
    return p


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check a folder a run writes into (created when missing) before the run starts.

    Raises:
        SamSrError naming ``what`` (e.g. ``train.out_dir``): ``path`` is a file, a parent of it is a
            file, or the folder (or its nearest existing parent) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise SamSrError(f"{what} {p} is a file; it must be a folder (it is created if missing)")
    try:
        _writable_folder(p / "x")
    except SamSrError as exc:
        raise SamSrError(f"{what}: {exc}") from None
    return p


def mask_format(path: str | os.PathLike) -> str:
    """The PIL format an output mask or overlay at ``path`` is written in, from its extension:
    ``"PNG"`` for ``.png``, ``"TIFF"`` for ``.tif``/``.tiff`` (case-insensitive).

    Raises:
        SamSrError: a lossy format (``.jpg``, ``.webp``, ...: it would change mask values and blur
            boundaries), another or no extension.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext in MASK_FORMATS:
        return MASK_FORMATS[ext]
    if ext in _LOSSY:
        raise SamSrError(f"output {p}: {ext} is a lossy format that would change the mask's values; "
                         f"name it .png or .tif")
    raise SamSrError(f"output {p}: unknown output format {ext or '(no extension)'}; "
                     f"name it .png or .tif")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _named(paths) -> dict[str, Path]:
    if paths is None:
        return {}
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    items = paths.items() if isinstance(paths, Mapping) else ((None, q) for q in paths)
    return {(name or str(q)): Path(q) for name, q in items if q is not None}


def check_outputs(inputs: Mapping[str, str | os.PathLike | None] | Iterable[str | os.PathLike],
                  outputs: Mapping[str, str | os.PathLike | None] | Iterable[str | os.PathLike],
                  force: bool = False, images: Iterable[str] = ()) -> dict[str, Path]:
    """Check a run's output paths before anything is read or refined.

    Args:
        inputs: the run's input files, as ``{name: path}`` (e.g. ``{"--image": ..., "--mask": ...}``;
            names appear in errors) or a list of paths; ``None`` values are skipped.
        outputs: the run's output files, likewise (e.g. ``{"--out": ..., "--overlay": ...}``).
        force: allow overwriting existing outputs (never an input).
        images: names of ``outputs`` written as images: their extension must be a lossless mask
            format (:func:`mask_format`).

    Returns:
        ``{name: Path}`` of the outputs.

    Raises:
        SamSrError naming the argument and path: an output is the same file as an input (even with
        ``force``; symbolic and hard links count), two outputs are the same file, an output exists
        (without ``force``) or is a folder, its folder is a file or not writable, an image output
        with a lossy or unknown extension.
    """
    ins, outs = _named(inputs), _named(outputs)
    for oname, o in outs.items():
        for iname, i in ins.items():
            if _same_file(o, i):
                raise SamSrError(f"{oname} {o} is the input {iname}; an input is never overwritten "
                                 f"(not even with --force): choose another output path")
    names = list(outs)
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            if _same_file(outs[a], outs[b]):
                raise SamSrError(f"{a} and {b} are the same file {outs[a]}; give them different paths")
    for name in images:
        if name in outs:
            mask_format(outs[name])
    for name, o in outs.items():
        check_output_path(o, force)
    return outs


def folder_outputs(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   suffix: str = ".png", protected: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Output paths ``out_dir/<input stem><suffix>`` of a folder run, checked before it starts.

    Existing outputs are not checked here (a folder run reports each as a failed item unless
    forced); see :func:`check_output_path`.

    Args:
        inputs: the run's input files (e.g. the photos); their stems name the outputs.
        out_dir: output folder (created when written).
        suffix: output extension, ``.png`` or ``.tif`` (:func:`mask_format`).
        protected: more input files (e.g. the coarse masks) that no output may be.

    Returns:
        One output path per input, in order.

    Raises:
        SamSrError: two inputs with the same stem (naming both: they would write one file), an
            output that is an input or a protected file, ``out_dir`` is a file, a lossy or unknown
            ``suffix``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SamSrError(f"output folder {out} is a file")
    mask_format(f"x{suffix}")
    seen: dict[str, Path] = {}
    paths = []
    for src in map(Path, inputs):
        key = src.stem.lower() if os.path.normcase("A") == "a" else src.stem
        if key in seen:
            raise SamSrError(f"{seen[key]} and {src} have the same stem: both would be written to "
                             f"{out / (src.stem + suffix)}; rename one")
        seen[key] = src
        paths.append(out / f"{src.stem}{suffix}")
    taken = [Path(p) for p in inputs] + [Path(p) for p in protected]
    if out.is_dir():
        existing = {p.resolve() for p in taken if p.exists()}
        for p in paths:
            if p.exists() and p.resolve() in existing:
                raise SamSrError(f"output {p} would overwrite an input of this run; choose another "
                                 f"output folder")
    else:
        _writable_folder(out / "x")
    return paths


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` then rename; never leaves a partial file.

    Raises:
        SamSrError: the folder cannot be created (a parent is a file) or written (permissions, a
            read-only file system, a full disk), naming ``path``.
    """
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give outputs the usual mode
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError)) and not p.parent.is_dir():
            raise SamSrError(f"cannot write {p}: a parent of it is a file, not a folder") from exc
        raise SamSrError(f"cannot write {p}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def encode_image(arr: np.ndarray, fmt: str = "PNG", palette: list[int] | None = None) -> bytes:
    """Encode a mask, label map or overlay losslessly.

    Args:
        arr: uint8 (H, W) or (H, W, 3); uint16 (H, W); bool (H, W) is written as 0 / 255.
        fmt: ``"PNG"`` or ``"TIFF"`` (deflate).
        palette: flat RGB list: write a uint8 index map as a palette image with the same indices.

    Raises:
        SamSrError: an unsupported array, a palette with a non-uint8 or non-2-D array.
    """
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    ok = (a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3))) or \
         (a.dtype == np.uint16 and a.ndim == 2)
    if not ok:
        raise SamSrError(f"cannot write a {a.dtype} array of shape {a.shape} as an image "
                         f"(uint8 H x W or H x W x 3, uint16 H x W)")
    im = Image.fromarray(np.ascontiguousarray(a))
    if palette is not None:
        if im.mode != "L":
            raise SamSrError("a palette image needs a uint8 (H, W) index map")
        im.putpalette(palette)  # 'L' -> 'P' keeping the indices
    buf = _io.BytesIO()
    if fmt == "TIFF":
        im.save(buf, format="TIFF", compression="tiff_deflate")
    else:
        im.save(buf, format=fmt)
    return buf.getvalue()


def write_mask(path: str | os.PathLike, arr: np.ndarray, palette: list[int] | None = None) -> None:
    """Write a mask, label map or overlay atomically, in the format its extension names
    (:func:`mask_format`: ``.png`` PNG, ``.tif``/``.tiff`` TIFF). ``arr`` and ``palette`` as in
    :func:`encode_image`.

    Raises:
        SamSrError: a lossy or unknown extension (nothing is written), a bad array, an unwritable
            path.
    """
    atomic_write_bytes(path, encode_image(arr, mask_format(path), palette))


def write_png(path: str | os.PathLike, arr: np.ndarray, palette: list[int] | None = None) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array (or uint16 (H, W)) atomically. With ``palette``
    (flat RGB list) a uint8 index map is written as a palette image with the same indices.

    The format follows the extension as in :func:`write_mask` (``.tif`` gives TIFF); a path with
    another image extension (``.jpg``, ``.webp``, ``.bmp``, ...) is refused rather than given PNG
    bytes; a path with no or a non-image extension gets PNG.

    Raises:
        SamSrError: see :func:`write_mask`.
    """
    ext = Path(path).suffix.lower()
    known = ext in MASK_FORMATS or ext in _LOSSY or ext in IMAGE_EXTS
    fmt = mask_format(path) if known else "PNG"
    atomic_write_bytes(path, encode_image(arr, fmt, palette))


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
