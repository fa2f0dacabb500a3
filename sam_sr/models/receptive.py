"""How far a CNN's outputs see: the receptive-field bound that makes window-wise encoding exact.

A feature computed on a window of the input equals the one computed on the whole input when the
window holds the feature's whole receptive field (convolutions zero-pad only at the window's own
border, which the feature then does not reach). :func:`receptive_field` bounds that field for the
convolutions and pools a module runs, following the standard recurrence (Araujo et al., Distill 2019,
"Computing Receptive Fields of Convolutional Neural Networks"): a layer with kernel k, dilation d,
padding p whose input cells lie J input pixels apart extends the field by ``J * p`` pixels before
and ``J * (d (k - 1) - p)`` after. Summing over every such layer the module runs, in any branch,
bounds residual and multi-branch networks too (a parallel branch only adds its own, usually 1x1,
extent).

Global context makes the field unbounded. Hooks see it as a module run on a map pooled to a single
cell (squeeze-and-excitation blocks pool with ``x.mean((2, 3))`` and then run a 1x1 convolution on
the 1 x 1 map), as an adaptive pool, or as a non-convolutional layer (``nn.Linear``, ``nn.Conv1d``)
inside the CNN; :func:`receptive_field` then returns None. :func:`window_is_exact` checks a bound
numerically (the tests run it for every backbone the encoder accepts).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.Linear, nn.Conv1d)


@dataclass(frozen=True)
class ReceptiveField:
    """Input pixels before (``before``) and after (``after``) an output cell's own anchor pixel
    (the top-left pixel of the cell, at ``stride * index``) that the cell may depend on, along each
    axis, and the coarsest stride seen (``stride``, input pixels per output cell)."""

    before: int
    after: int
    stride: int


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _trace(module: nn.Module, in_channels: int, size: int, owner=None):
    """One probe pass with hooks: ({owner key: [before, after]}, coarsest stride, bounded?).

    ``owner(m)`` names the part each layer's extent is added to (default: one part, None)."""
    parts: dict = {}
    stride = 1
    bad = False

    def hook(mod, inputs, output):
        nonlocal stride, bad
        x = inputs[0]
        if isinstance(mod, _GLOBAL) or x.dim() != 4 or x.shape[-2:] == (1, 1):
            bad = True
            return
        jump = size // max(1, x.shape[-1])
        stride = max(stride, size // max(1, output.shape[-1]))
        k = _pair(mod.kernel_size)[1]
        d = _pair(getattr(mod, "dilation", 1))[1]
        pad = mod.padding
        if isinstance(pad, str):
            if pad not in ("valid", "same"):
                bad = True
                return
            p = 0 if pad == "valid" else d * (k - 1) // 2
        else:
            p = _pair(pad)[1]
        part = parts.setdefault(owner(mod) if owner else None, [0, 0])
        part[0] += jump * p
        part[1] += jump * max(0, d * (k - 1) - p)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d,) + _POOLS + _GLOBAL)]
    try:
        with torch.no_grad():
            module(torch.zeros(1, in_channels, size, size))
    finally:
        for h in handles:
            h.remove()
    return parts, stride, not bad


def receptive_field(module: nn.Module, in_channels: int, size: int = 64) -> ReceptiveField | None:
    """Bound of the receptive field of ``module``'s outputs, from one forward pass with hooks.

    Args:
        module: a CNN taking float (1, ``in_channels``, size, size).
        in_channels: its input channels.
        size: probe input side in pixels (a multiple of the network's stride).

    Returns:
        the bound, or None when the module runs a layer of unbounded or unknown extent: global
        context (see the module docstring), ``nn.Upsample``, string padding other than
        ``"valid"``/``"same"``.
    """
    parts, stride, ok = _trace(module, in_channels, size)
    before, after = parts.get(None, [0, 0])
    return ReceptiveField(before, after, stride) if ok else None


def stage_reach(body: nn.Module, stages: list[str], in_channels: int, size: int = 64) -> dict[str, int] | None:
    """Each top-level stage's own extent of a sequential CNN ``body`` whose children named ``stages``
    run in order: {name: max(before, after) px added by that stage's layers}, or None as for
    :func:`receptive_field`."""
    owner_of = {m: name for name in stages for m in body.get_submodule(name).modules()}
    parts, _, ok = _trace(body, in_channels, size, owner=lambda m: owner_of.get(m))
    if not ok:
        return None
    return {name: max(parts.get(name, [0, 0])) for name in stages}


def window_is_exact(encode, in_channels: int, context: int, core: int = 32, outer: int = 64,
                    seed: int = 0, tol: float = 1e-4) -> bool:
    """Whether ``encode`` over a window (a ``core`` px square with ``context`` px around it) gives
    the same values in the core as over a larger input holding that window (``outer`` px more random
    input on each side): a numerical check of a receptive-field bound.

    Args:
        encode: ``encode(x, core_box) -> float (1, K, h, w)`` features of the core box
            ``(y0, y1, x0, x1)`` (input pixels of ``x``) of input float (1, in_channels, H, W).
        context, core, outer: pixels (multiples of the network's stride).
        tol: the largest absolute difference allowed, relative to the features' largest magnitude.
    """
    g = torch.Generator().manual_seed(seed)
    side = core + 2 * context
    big = torch.rand(1, in_channels, side + 2 * outer, side + 2 * outer, generator=g)
    with torch.no_grad():
        window = encode(big[..., outer:outer + side, outer:outer + side],
                        (context, context + core, context, context + core))
        whole = encode(big, (outer + context, outer + context + core, outer + context, outer + context + core))
    scale = float(whole.abs().max()) + 1e-12
    return window.shape == whole.shape and float((window - whole).abs().max()) <= tol * scale


__all__ = ["ReceptiveField", "receptive_field", "stage_reach", "window_is_exact"]
