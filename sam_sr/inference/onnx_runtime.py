"""ONNX Runtime for inference on the CPU: the heavy networks exported once to ONNX, run by
onnxruntime, while the cascade, query selection and SAM's prompt decoder stay as they are.

:func:`export_onnx` writes, into a folder, what the refinement's time is spent in:

- ``encoder.onnx``: encoder (with its image features, when the model has them) + fusion + the
  decoder's per-cell projection, normalised input
  float32 (B, 4, H, W) -> features (B, K, H/2, W/2) (dynamic batch and size; sizes multiples of 8);
- ``decoder_mlp.onnx``: the implicit decoder's MLP, float32 (N, K) -> (N, 1) (the feature reads and
  the local ensemble around it are index arithmetic and stay in torch);
- ``pixel_head.onnx`` (models with a pixel head): (B, 4, H, W) -> (B, 1, H, W);
- ``region.onnx`` (SAM-SR v4, v5): the region network on SAM's 256 x 256 grid;
- ``sam_encoder.onnx``: MobileSAM's (or SAM's) image encoder, (1, 3, 1024, 1024) -> (1, 256, 64, 64),
  when it exports and runs within :data:`TOLERANCE` (recorded in the manifest either way);
- ``manifest.json``: the checkpoint's SHA-256, the variant, the files, the opset and the largest
  difference from torch measured at export.

:func:`attach_onnx` makes a :class:`~sam_sr.inference.predictor.Refiner` run those networks with
onnxruntime (``Refiner.from_checkpoint(..., runtime="onnx")``, ``--runtime onnx``): each torch
module's ``forward`` is replaced, on that instance only, by a call into its session, so every code
path (dense and sparse steps, decode modes, the SAM stage) is the same. Encoder windows are encoded
whole and cropped (exact: the window holds the model's receptive field). Outputs agree with torch's
within float rounding (``tests/inference/test_onnx_runtime.py``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import SamSrError
from ..sam.loader import file_sha256

#: Largest absolute difference from torch accepted at export, per output (float32 rounding).
TOLERANCE = 1e-3
OPSET = 17
MANIFEST = "manifest.json"
FORMAT = "sam-sr-onnx/1"


class _Encode(nn.Module):
    """The refiner's encoding as one module: normalised input -> the decoder's projected features."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = getattr(self.model, "features", self.model.encoder)   # CRM: with its image features
        return self.model.decoder.prepare(self.model.fusion(features(x)))


def _export(module: nn.Module, args: tuple, path: Path, names_in: list[str], names_out: list[str],
            dynamic: dict[str, dict[int, str]] | None) -> float:
    """Export ``module`` (eval mode) and return the largest absolute difference of onnxruntime's
    outputs from torch's on ``args``."""
    import warnings

    import onnxruntime as ort
    module = module.eval()
    with warnings.catch_warnings():   # the tracer's notes on shape-dependent Python ops: not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names_in, output_names=names_out,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    module.eval()                                   # the exporter restores the wrapper's training flag
    with torch.no_grad():
        ref = module(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {n: a.numpy() for n, a in zip(names_in, args)})
    return float(max(np.abs(r.numpy() - o).max() for r, o in zip(ref, outs)))


def export_onnx(model, out_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                sam=None, force: bool = False) -> dict[str, Any]:
    """Export a refiner's networks to ONNX (see the module docstring).

    Args:
        model: a CRM-family :class:`~sam_sr.models.base.RefinerModel` (``crm``, ``crm-full``, v1,
            sam-prompt, v4, v5) without extra input channels.
        out_dir: the folder to write (created; it must not hold an export unless ``force``).
        checkpoint: the checkpoint file the model came from (its SHA-256 goes into the manifest).
        sam: a SAM model whose image encoder to export too (the variants that use SAM), or None.

    Returns:
        The manifest.

    Raises:
        SamSrError: onnx or onnxruntime not installed (``pip install sam-sr[onnx]``), a model of
            another kind, an existing export without ``force``, an export differing from torch by more
            than :data:`TOLERANCE`.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise SamSrError("ONNX export needs onnx and onnxruntime: pip install 'sam-sr[onnx]'") from None
    if not all(hasattr(model, a) for a in ("encoder", "fusion", "decoder")) or \
            getattr(model.config, "extra_channels", 0):
        raise SamSrError(f"ONNX export supports the CRM-family refiners without extra inputs, not a "
                         f"{model.variant} model")
    out = Path(out_dir)
    if (out / MANIFEST).exists() and not force:
        raise SamSrError(f"{out} already holds an ONNX export (use --force to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    diffs, files = {}, {}
    x = torch.randn(1, 4, 128, 160, generator=torch.Generator().manual_seed(0))
    dyn = {"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "hy", 3: "wy"}}
    files["encoder"] = "encoder.onnx"
    diffs["encoder"] = _export(_Encode(model), (x,), out / files["encoder"], ["x"], ["y"], dyn)
    k = model.decoder.mlp[1].in_features
    files["decoder_mlp"] = "decoder_mlp.onnx"
    diffs["decoder_mlp"] = _export(model.decoder.mlp, (torch.randn(257, k),), out / files["decoder_mlp"], ["x"], ["y"],
                                   {"x": {0: "n"}, "y": {0: "n"}})
    if model.pixel_head is not None:
        files["pixel_head"] = "pixel_head.onnx"
        diffs["pixel_head"] = _export(model.pixel_head, (x,), out / files["pixel_head"], ["x"], ["y"], dyn)
    if hasattr(model, "region"):
        s = model.region.config.sam_inputs
        g = torch.Generator().manual_seed(1)
        args = (torch.randn(1, model.region.config.sam_channels, 64, 64, generator=g), torch.rand(1, 1, 256, 256, generator=g),
                torch.randn(1, s, 256, 256, generator=g) * 5, torch.rand(1, 3, 256, 256, generator=g),
                torch.ones(1, 1, 256, 256))
        files["region"] = "region.onnx"
        diffs["region"] = _export(model.region, args, out / files["region"],
                                  ["embedding", "coarse", "sam", "image", "valid"], ["y"], None)
    sam_note = None
    if sam is not None:
        try:
            from ..sam.loader import plain_encoder
            size = int(getattr(sam.image_encoder, "img_size", 1024))
            d = _export(plain_encoder(sam), (torch.randn(1, 3, size, size),), out / "sam_encoder.onnx",
                        ["x"], ["y"], None)
            if d <= TOLERANCE:
                files["sam_encoder"], diffs["sam_encoder"] = "sam_encoder.onnx", d
            else:
                sam_note = f"exported but differs from torch by {d:.3g}: not used"
        except Exception as exc:  # noqa: BLE001 - any exporter failure leaves SAM on torch
            sam_note = f"did not export: {str(exc).splitlines()[0][:200]}"
    bad = {n: d for n, d in diffs.items() if d > TOLERANCE}
    if bad:
        raise SamSrError(f"ONNX export differs from torch beyond {TOLERANCE}: {bad}")
    manifest = {"format": FORMAT, "variant": model.variant, "opset": OPSET, "files": files,
                "max_abs_diff": diffs, "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
                "sam_encoder_note": sam_note}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def default_onnx_dir(checkpoint: str | os.PathLike) -> Path:
    """Where ``--runtime onnx`` keeps a checkpoint's export when no folder is given:
    ``$SAM_SR_ONNX_CACHE`` (default ``~/.cache/sam-sr/onnx``) / the checkpoint's SHA-256 prefix."""
    root = Path(os.environ.get("SAM_SR_ONNX_CACHE") or Path.home() / ".cache" / "sam-sr" / "onnx")
    return root / file_sha256(checkpoint)[:16]


class _Session:
    """One onnxruntime session, called with torch tensors and returning torch tensors."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        feeds = {n: np.ascontiguousarray(a.detach().float().cpu().numpy()) for n, a in zip(self.names, args)}
        return torch.from_numpy(self.sess.run(None, feeds)[0])


def attach_onnx(refiner, onnx_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None):
    """Make ``refiner`` run its exported networks with onnxruntime (see the module docstring).

    Raises:
        SamSrError: onnxruntime missing, no export in ``onnx_dir``, an export of another checkpoint
            (its SHA-256 differs) or variant, a device other than the CPU.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise SamSrError("--runtime onnx needs onnxruntime: pip install 'sam-sr[onnx]'") from None
    d = Path(onnx_dir)
    if not (d / MANIFEST).is_file():
        raise SamSrError(f"no ONNX export in {d} (write one with sam-sr export CHECKPOINT --onnx {d})")
    manifest = json.loads((d / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise SamSrError(f"{d} holds an ONNX export of another format ({manifest.get('format')!r})")
    if checkpoint is not None and manifest.get("checkpoint_sha256") not in (None, file_sha256(checkpoint)):
        raise SamSrError(f"the ONNX export in {d} is of another checkpoint than {checkpoint}; export it again")
    if refiner.device.type != "cpu":
        raise SamSrError("--runtime onnx runs on the CPU (onnxruntime's CPU provider); drop --device")
    model = refiner.model
    threads = max(1, torch.get_num_threads())
    files = manifest["files"]
    enc = _Session(d / files["encoder"], threads)

    def encode(image, mask, extra=None, fusion_patches=0):
        return enc(model.normalise(image, mask)).to(image.device)

    from ..models.base import RefinerModel
    model.encode = encode
    model.encode_window = RefinerModel.encode_window.__get__(model)    # the whole window, then its core
    mlp = _Session(d / files["decoder_mlp"], threads)
    model.decoder.mlp.forward = lambda h: mlp(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:-1], 1)
    if "pixel_head" in files and model.pixel_head is not None:
        head = _Session(d / files["pixel_head"], threads)
        model.pixel_head.forward = lambda x: head(x)
    if "region" in files and hasattr(model, "region"):
        region = _Session(d / files["region"], threads)
        model.region.forward = lambda *a: region(*a)
    sam_inputs = getattr(refiner, "sam_inputs", None)
    if "sam_encoder" in files and sam_inputs is not None:
        sam_enc = _Session(d / files["sam_encoder"], threads)
        sam = getattr(sam_inputs.source, "sam", None)
        if sam is not None:
            sam.image_encoder.forward = lambda x: sam_enc(x)
    refiner.info["runtime"] = f"onnxruntime ({', '.join(sorted(files))})"
    return refiner


__all__ = ["export_onnx", "attach_onnx", "default_onnx_dir", "TOLERANCE"]
