"""Benchmark: can small photos skip the default's 1024 px SAM encoding or its 960 px cascade?

    SAM_SR_DATA=/path/to/data python benchmarks/small_photos.py [--split sod_val] [--sources dss,picanet,amulet]

Issue 23 asks small photos (sod: 481 x 321 or so) not to pay for a 1024 px MobileSAM encoding and a
960 px cascade they may not need, as long as quality drops by at most 0.2 IoU and 0.2 mBA. This runs
the default model (v5) in one warm process over the ``--split`` photos (the 30 sod validation photos:
never the evaluation photos, never trained on by the region network) with each real coarse source,
under four settings:

- ``frame 1024, upsample 960``: the default as shipped;
- ``frame 1024, own size``: the cascade at the photo's own size (``upsample_to=0``);
- ``frame 640, upsample 960`` and ``frame 512, upsample 960``: MobileSAM's TinyViT built for a
  640 (512) px frame with the bundled weights (its window attention and convolutions take any size),
  the photo resized so that its longer side fills that frame, and the image embedding resized
  bilinearly to the 64 x 64 grid that SAM's mask decoder and v5's region network read (the prompts
  stay in the 1024 frame's coordinates). Not a shipped option: a what-if for this benchmark.
- ``frame 1024 trimmed, upsample 960``: the 1024 px frame without its padding. SAM resizes a photo's
  longer side to 1024 and pads the shorter one to 1024 (a 3:2 photo: a third of the frame is
  padding); here TinyViT runs over the photo's part alone (the shorter side rounded up to 16 px, its
  window attention and convolutions take any size), in the shipped encoder's precision, and the
  embedding's padded cells are filled with the embedding of padding (one cell from the middle of an
  all-padding 256 px frame), so that the mask decoder and v5's region network read the same 64 x 64
  grid. Also a what-if.

Prints IoU / mBA (%, mean over photos) per setting and source, their change against the shipped
setting, and the refinement time per photo (seconds, start-up excluded; all settings in this one
process); writes ``benchmarks/results/small_photos.json``. No setting that changes quality by more
than 0.2 is adopted (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"frame 1024, upsample 960": (1024, None), "frame 1024, own size": (1024, 0),
            "frame 640, upsample 960": (640, None), "frame 512, upsample 960": (512, None),
            "frame 1024 trimmed, upsample 960": ("trim", None)}


def framed_encoder(sam, frame: int):
    """MobileSAM's TinyViT for a ``frame`` px square input with ``sam``'s weights, and a function
    image (uint8 (H, W, 3) RGB) -> embedding float32 (1, 256, 64, 64) (bilinear from frame / 16)."""
    import torch
    import torch.nn.functional as F
    from mobile_sam.modeling import TinyViT
    from mobile_sam.utils.transforms import ResizeLongestSide
    enc = TinyViT(img_size=frame, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
                  depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                  drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0,
                  local_conv_size=3, layer_lr_decay=0.8)
    from sam_sr.models.fold import fold_batch_norm
    fold_batch_norm(enc.eval())     # the same layout as load_sam's encoder, whose batch norms are folded
    enc.load_state_dict(sam.image_encoder.state_dict())
    enc.eval()                      # again: TinyViT's attention biases are cached at eval() from the weights
    resize = ResizeLongestSide(frame)

    @torch.no_grad()
    def embed(image: np.ndarray) -> torch.Tensor:
        x = _normalised(sam, resize, image)
        x = F.pad(x, (0, frame - x.shape[-1], 0, frame - x.shape[-2]))
        t = _tinyvit_forward(enc, x, (frame // 16, frame // 16))
        return F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False)

    return embed


def _normalised(sam, resize, image: np.ndarray):
    """``image`` uint8 (H, W, 3) RGB resized by ``resize`` (ResizeLongestSide) and normalised as SAM
    does: float32 (1, 3, h, w), not yet padded."""
    import torch
    x = torch.as_tensor(resize.apply_image(image)).permute(2, 0, 1)[None].float()
    return (x - sam.pixel_mean) / sam.pixel_std


def _tinyvit_forward(enc, x, grid: tuple[int, int]):
    """TinyViT ``enc`` over ``x`` float (1, 3, H, W) whose layers are set for H x W, to the neck's
    embedding float (1, 256, rows, cols) on the ``grid`` (rows, cols) = (H / 16, W / 16)."""
    t = enc.patch_embed(x)
    for layer in enc.layers:
        t = layer(t)
    return enc.neck(t.view(1, grid[0], grid[1], -1).permute(0, 3, 1, 2))


def _tinyvit_at(enc, height: int, width: int) -> tuple[int, int]:
    """Set each TinyViT layer's ``input_resolution`` for a ``height`` x ``width`` px input (multiples
    of 16; MobileSAM's layers read it to reshape their tokens); returns the output grid (rows, cols)."""
    h, w = height // 4, width // 4
    for layer in enc.layers:
        layer.input_resolution = (h, w)
        for block in layer.blocks:
            if hasattr(block, "input_resolution"):
                block.input_resolution = (h, w)
        if layer.downsample is not None:
            layer.downsample.input_resolution = (h, w)
            if layer.downsample.conv2.c.stride[0] == 2:
                h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def trimmed_encoder(sam):
    """A function image (uint8 (H, W, 3) RGB) -> embedding float32 (1, 256, 64, 64): ``sam``'s own
    TinyViT (and precision) over the 1024 frame's photo part only, padding cells filled (see above)."""
    import torch
    from mobile_sam.utils.transforms import ResizeLongestSide
    from sam_sr.sam.loader import plain_encoder
    enc = plain_encoder(sam)
    bf16 = enc is not sam.image_encoder
    resize = ResizeLongestSide(1024)

    @torch.no_grad()
    def run(x):
        grid = _tinyvit_at(enc, *x.shape[-2:])
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return _tinyvit_forward(enc, x.contiguous(memory_format=torch.channels_last), grid).float()
        finally:
            _tinyvit_at(enc, enc.img_size, enc.img_size)

    pad_cell = run(torch.zeros(1, 3, 256, 256))[:, :, 8:9, 8:9]

    def embed(image: np.ndarray) -> torch.Tensor:
        x = _normalised(sam, resize, image)
        h, w = (-(-s // 16) * 16 for s in x.shape[-2:])
        x = torch.nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
        e = run(x)
        out = pad_cell.expand(1, e.shape[1], 64, 64).clone()
        out[..., :e.shape[-2], :e.shape[-1]] = e
        return out

    return embed


def use_frame(refiner, frame) -> None:
    """Make ``refiner``'s SamPredictor encode at ``frame`` px (1024: SAM's own ``set_image``; "trim":
    :func:`trimmed_encoder`)."""
    source = refiner.sam_inputs.source
    source.predictor(np.zeros((64, 64, 3), np.uint8))          # makes the predictor
    pred = source._predictor
    pred.set_image = type(pred).set_image.__get__(pred)      # the library's own, undoing earlier settings
    if frame != 1024:
        embed = trimmed_encoder(source.sam) if frame == "trim" else framed_encoder(source.sam, frame)

        def set_image(image, image_format="RGB"):
            pred.reset_image()
            pred.features = embed(image)
            h, w = image.shape[:2]
            pred.original_size = (h, w)
            pred.input_size = tuple(int(s * 1024 / max(h, w) + 0.5) for s in (h, w))  # as ResizeLongestSide
            pred.is_image_set = True

        pred.set_image = set_image
    source.forget_image()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="sod_val")
    ap.add_argument("--sources", default="dss,picanet,amulet")
    ap.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    ap.add_argument("--settings", default=";".join(SETTINGS),
                    help="setting names separated by ';' (the shipped one is always run)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/small_photos.json"))
    args = ap.parse_args(argv)
    chosen = {"frame 1024, upsample 960", *[n.strip() for n in args.settings.split(";") if n.strip()]}
    unknown = chosen - set(SETTINGS)
    if unknown:
        raise SystemExit(f"unknown settings {sorted(unknown)}; choose from {list(SETTINGS)}")
    data = Path(os.environ.get("SAM_SR_DATA", "")).expanduser() / "sod"
    if not data.is_dir():
        raise SystemExit("set SAM_SR_DATA to the data folder (with sod/)")
    from sam_sr import Refiner
    from sam_sr.data.datasets import read_ids
    from sam_sr.evaluation.metrics import boundary_accuracy, iou
    from sam_sr.imaging import read_image, read_mask

    ids = read_ids(ROOT / "configs/splits" / f"{args.split}.txt")
    ids = ids[:args.limit] if args.limit else ids
    sources = args.sources.split(",")
    photos = [(read_image(data / "images" / f"{i}.jpg"), read_mask(data / "masks" / f"{i}.png") >= 0.5,
               {s: read_mask(data / "coarse" / s / f"{i}.png") for s in sources}) for i in ids]
    results: dict = {"split": args.split, "photos": len(ids), "sources": sources, "settings": {}}
    refiners = {}
    for name, (frame, upsample) in SETTINGS.items():
        if name not in chosen:
            continue
        if upsample not in refiners:
            refiners[upsample] = Refiner.from_checkpoint(None, **({} if upsample is None else {"upsample_to": upsample}))
        r = refiners[upsample]
        use_frame(r, frame)
        r.refine(photos[0][0], photos[0][2][sources[0]])       # warm-up, untimed
        row, seconds, n = {}, 0.0, 0
        for s in sources:
            ious, bas = [], []
            for image, gt, coarse in tqdm(photos, desc=f"{name} / {s}", leave=False):
                t = time.perf_counter()
                out = r.refine(image, coarse[s]) >= 128
                seconds += time.perf_counter() - t
                n += 1
                ious.append(iou(out, gt))
                bas.append(boundary_accuracy(out, gt))
            row[s] = {"iou": 100 * float(np.mean(ious)), "mba": 100 * float(np.mean(bas))}
        row["seconds_per_photo"] = seconds / n
        results["settings"][name] = row
        use_frame(r, 1024)
    base = results["settings"]["frame 1024, upsample 960"]
    print(f"\n{args.split}, {len(ids)} photos; IoU / mBA (%) and the change against the shipped setting")
    print("| setting | " + " | ".join(sources) + " | s per photo |")
    print("|---|" + "---|" * len(sources) + "---|")
    for name, row in results["settings"].items():
        cells = [f"{row[s]['iou']:.2f} / {row[s]['mba']:.2f} ({row[s]['iou'] - base[s]['iou']:+.2f} / "
                 f"{row[s]['mba'] - base[s]['mba']:+.2f})" for s in sources]
        row["worst_change"] = min(min(row[s]["iou"] - base[s]["iou"], row[s]["mba"] - base[s]["mba"]) for s in sources)
        print(f"| {name} | " + " | ".join(cells) + f" | {row['seconds_per_photo']:.2f} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
