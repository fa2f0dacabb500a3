"""Torch devices named by the user (``--device``, ``device=``), checked before anything is loaded."""
from __future__ import annotations

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
