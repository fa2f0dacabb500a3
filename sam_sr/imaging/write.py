"""Writing masks, label maps and overlays atomically and losslessly.

:func:`write_mask` picks the format from the file's extension: ``.png`` (PNG) or ``.tif``/``.tiff``
(TIFF, deflate-compressed); lossy (``.jpg``, ``.webp``) and other extensions are refused. Every file
is written to a temporary name beside its path and renamed (:func:`atomic_write_bytes`), so an
interrupted run never leaves a partial file.
"""
from __future__ import annotations

import io as _io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SamSrError
from .read import IMAGE_EXTS

#: Output formats by extension (lossless only: an output mask must keep its exact values).
MASK_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}



_LOSSY = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".heic", ".gif")



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

