"""Torch devices named by the user (``--device``, ``device=``), checked before anything is loaded,
and the precision a device computes in (``--precision``)."""
from __future__ import annotations

import os

import torch

from .errors import SamSrError


def check_device(device: str | torch.device | None, what: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device` this machine has; ``None`` gives CUDA when available,
    else the CPU.

    Accepted: ``cpu``, ``cuda``, ``cuda:N`` or the index N (N below the number of CUDA devices),
    ``mps``.

    Raises:
        SamSrError naming ``what``: an unknown device name, an absent device (no CUDA, a CUDA
            index this machine lacks, no MPS), another device type.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if isinstance(device, torch.device):
            dev = device
        elif isinstance(device, int) and not isinstance(device, bool):   # torch's CUDA index
            dev = torch.device("cuda", device)
        else:
            dev = torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        raise SamSrError(f"{what}: unknown device {device!r} (cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise SamSrError(f"{what} {str(device)!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= n:
            raise SamSrError(f"{what} {str(device)!r}: this machine has {n} CUDA device(s), "
                             f"cuda:0..cuda:{n - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise SamSrError(f"{what} {str(device)!r}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise SamSrError(f"{what} {str(device)!r} is not supported (cpu, cuda, cuda:N or mps)")
    return dev


#: ``--precision``: ``auto`` is bf16 where the device computes bfloat16 natively (:func:`native_bf16`),
#: else fp32.
PRECISIONS = ("auto", "fp32", "bf16")
#: Environment variable giving the default precision (one of :data:`PRECISIONS`; unset = ``auto``).
PRECISION_ENV = "SAM_SR_PRECISION"


def default_precision() -> str:
    """The default ``--precision``: ``$SAM_SR_PRECISION`` when set, else ``auto``.

    Raises:
        SamSrError: ``$SAM_SR_PRECISION`` is not one of :data:`PRECISIONS`."""
    value = os.environ.get(PRECISION_ENV, "auto").strip() or "auto"
    if value not in PRECISIONS:
        raise SamSrError(f"{PRECISION_ENV}={value!r}: choose from {', '.join(PRECISIONS)}")
    return value


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it
    (``torch.cuda.is_bf16_supported``), or a CPU whose oneDNN has bfloat16 kernels (AVX-512 BF16 or
    AMX: ``torch.ops.mkldnn._is_mkldnn_bf16_supported``). Elsewhere bfloat16 is emulated and slower
    than float32, so ``auto`` keeps fp32 there."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``precision`` (one of :data:`PRECISIONS`) as ``"fp32"`` or ``"bf16"`` on ``device``.

    Raises:
        SamSrError: an unknown precision."""
    if precision not in PRECISIONS:
        raise SamSrError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision
