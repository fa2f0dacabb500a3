"""Dataset readers for the training and evaluation layouts, and the training dataset.

Layouts (``layout:`` in a config's ``data.datasets`` list):
- ``msra10k``: ``<root>/**/<id>.jpg`` with ``<id>.png`` beside it.
- ``duts``: ``<root>/DUTS-TR-Image/*.jpg`` + ``<root>/DUTS-TR-Mask/*.png`` (and/or ``DUTS-TE-*``).
- ``dut_omron``: ``<root>/DUT-OMRON-image/*.jpg`` + ``<root>/pixelwiseGT-new-PNG/*.png`` (also found
  under ``DUT-OMRON-gt-pixelwise/``).
- ``ecssd``: ``<root>/images/*.jpg`` + ``<root>/ground_truth_mask/*.png``.
- ``fss1000``: ``<root>/<class>/<n>.jpg`` + ``<root>/<class>/<n>.png``.
- ``generic``: ``<root>/images/*`` + ``<root>/masks/<id>.png``, optional coarse masks
  ``<root>/coarse/<source>/<id>.png`` (this is also the layout of the sod and horse folders of ``$SAM_SR_DATA``).
- ``big``: ``<root>/**/<id>_im.jpg`` + ``<id>_gt.png`` + coarse ``<id>_seg.png``.
- ``matting``: ``<root>/images/*`` + ``<root>/alpha/<id>.png`` (an alpha matte, read as a mask: its
  threshold at 0.5 is the mask; e.g. the ``fur`` folder of ``$SAM_SR_DATA``, whose mattes come from a
  matting network: near right, not ground truth. Scored with the ``gt`` source, a refiner's IoU with a
  mask that is already right measures how little it changes it).
A sample is a :class:`Sample` (paths); ``ids_file`` keeps only the listed ids (one per line).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import SamSrError
from ..imaging.read import IMAGE_EXTS, read_image, read_mask


@dataclass
class Sample:
    """One image with its ground truth and optional coarse masks (``{source: path}``)."""

    id: str
    image: Path
    mask: Path
    coarse: dict[str, Path] = field(default_factory=dict)


def _pairs(img_dir: Path, mask_dir: Path, prefix: str = "") -> list[Sample]:
    out = []
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTS:
            continue
        m = mask_dir / f"{p.stem}.png"
        if m.is_file() and m != p:
            out.append(Sample(prefix + p.stem, p, m))
    return out


def _need_dir(p: Path) -> Path:
    if not p.is_dir():
        raise SamSrError(f"dataset folder not found: {p}")
    return p


def read_msra10k(root: Path) -> list[Sample]:
    """MSRA-10K: jpg and png side by side."""
    return [Sample(p.stem, p, p.with_suffix(".png")) for p in sorted(_need_dir(root).rglob("*.jpg"))
            if p.with_suffix(".png").is_file()]


def read_duts(root: Path) -> list[Sample]:
    """DUTS: ``DUTS-TR-Image``/``DUTS-TR-Mask`` and/or ``DUTS-TE-Image``/``DUTS-TE-Mask``."""
    out = []
    for split in ("TR", "TE"):
        d = _need_dir(root) / f"DUTS-{split}-Image"
        if d.is_dir():
            out += _pairs(d, root / f"DUTS-{split}-Mask", prefix=f"{split}/")
    return out


def read_dut_omron(root: Path) -> list[Sample]:
    """DUT-OMRON: ``DUT-OMRON-image`` + ``pixelwiseGT-new-PNG`` (possibly one folder deeper)."""
    root = _need_dir(root)
    imgs = root / "DUT-OMRON-image"
    cands = [root / "pixelwiseGT-new-PNG", root / "DUT-OMRON-gt-pixelwise" / "pixelwiseGT-new-PNG"]
    masks = next((c for c in cands if c.is_dir()), None)
    if not imgs.is_dir() or masks is None:
        raise SamSrError(f"{root} is not a DUT-OMRON folder (DUT-OMRON-image/, pixelwiseGT-new-PNG/)")
    return _pairs(imgs, masks)


def read_ecssd(root: Path) -> list[Sample]:
    """ECSSD: ``images`` + ``ground_truth_mask``."""
    return _pairs(_need_dir(root / "images"), _need_dir(root / "ground_truth_mask"))


def read_fss1000(root: Path) -> list[Sample]:
    """FSS-1000: class folders holding ``N.jpg`` + ``N.png``."""
    out = []
    for cls in sorted(d for d in _need_dir(root).iterdir() if d.is_dir()):
        out += _pairs(cls, cls, prefix=f"{cls.name}/")
    return out


def read_generic(root: Path) -> list[Sample]:
    """``images/`` + ``masks/``, optional ``coarse/<source>/`` (e.g. ``$SAM_SR_DATA/sod``)."""
    samples = _pairs(_need_dir(root / "images"), _need_dir(root / "masks"))
    coarse_root = root / "coarse"
    if coarse_root.is_dir():
        for src in sorted(d for d in coarse_root.iterdir() if d.is_dir()):
            for s in samples:
                c = src / f"{s.id}.png"
                if c.is_file():
                    s.coarse[src.name] = c
    return samples


def read_big(root: Path) -> list[Sample]:
    """BIG evaluation layout: ``<id>_im.jpg``, ``<id>_gt.png``, coarse ``<id>_seg.png``."""
    out = []
    for p in sorted(_need_dir(root).rglob("*_im.jpg")):
        stem = p.name[: -len("_im.jpg")]
        gt = p.with_name(f"{stem}_gt.png")
        seg = p.with_name(f"{stem}_seg.png")
        if gt.is_file():
            out.append(Sample(stem, p, gt, {"seg": seg} if seg.is_file() else {}))
    return out


def read_matting(root: Path) -> list[Sample]:
    """``images/`` + ``alpha/`` (alpha mattes as masks)."""
    return _pairs(_need_dir(root / "images"), _need_dir(root / "alpha"))


LAYOUTS: dict[str, Callable[[Path], list[Sample]]] = {
    "msra10k": read_msra10k, "duts": read_duts, "dut_omron": read_dut_omron, "ecssd": read_ecssd,
    "fss1000": read_fss1000, "generic": read_generic, "big": read_big, "matting": read_matting,
}


def read_ids(path: str | Path) -> list[str]:
    """Ids listed one per line (blank lines and ``#`` comments ignored)."""
    p = Path(path)
    if not p.is_file():
        raise SamSrError(f"ids file not found: {p}")
    return [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def load_samples(spec: dict[str, Any], base: Path | None = None) -> list[Sample]:
    """Samples of one dataset spec ``{layout, root, ids_file?, coarse_sources?}``.

    Relative ``root``/``ids_file`` paths resolve against the current folder.

    Raises:
        SamSrError: unknown layout, missing folders, or no samples found.
    """
    layout = spec.get("layout", "generic")
    if layout not in LAYOUTS:
        raise SamSrError(f"unknown dataset layout {layout!r}; known: {sorted(LAYOUTS)}")
    root = Path(spec["root"])
    samples = LAYOUTS[layout](root)
    if spec.get("ids_file"):
        keep = set(read_ids(spec["ids_file"]))
        samples = [s for s in samples if s.id in keep]
    if spec.get("coarse_sources") is not None:
        allowed = set(spec["coarse_sources"])
        for s in samples:
            s.coarse = {k: v for k, v in s.coarse.items() if k in allowed}
    if not samples:
        raise SamSrError(f"no samples found for {layout} dataset at {root}")
    return samples


def concat_samples(specs: list[dict[str, Any]]) -> list[Sample]:
    """Samples of several dataset specs, concatenated."""
    out: list[Sample] = []
    for spec in specs:
        out += load_samples(spec)
    return out


class RefinementDataset(Dataset):
    """Training dataset: (image, ground truth, coarse mask) crops.

    Each item's coarse mask is, with probability ``real_coarse_prob`` and when the sample has real
    coarse masks, one of them (chosen at random, kept soft); otherwise ``synthesizer(gt)``.

    Deterministic: an item is indexed by a key ``epoch * len(dataset) + i`` (plain indices are epoch
    0; :class:`EpochSampler` yields such keys), and all its randomness (coarse-mask choice and
    synthesis, SAM inputs, the albumentations crop, flip and colour jitter) comes from one numpy
    generator seeded with ``(seed, epoch, i)``. The same key gives the same item in any process or
    data-loader worker, and each epoch gives new crops.

    Items are dicts of float32 tensors: ``image`` (3, S, S) in [0, 1], ``gt`` (1, S, S) in {0, 1},
    ``coarse`` (1, S, S) in [0, 1], with S the transform's crop size. With ``sam_inputs`` (a
    :class:`sam_sr.sam.stage.SamTrainingInputs`; the transform must declare the extra
    targets ``extra`` and ``coords``) items also have ``extra``: the SAM map (C, S, S) in [0, 1]
    (v2.1, v2.2) or SAM's embedding read at the crop's stride-8 cells (256, S/8, S/8) (v3.x).
    """

    def __init__(self, samples: list[Sample], synthesizer, transform, real_coarse_prob: float = 0.0,
                 seed: int = 0, sam_inputs=None):
        if not samples:
            raise SamSrError("empty training dataset")
        self.samples = samples
        self.synthesizer = synthesizer
        self.transform = transform
        self.real_coarse_prob = real_coarse_prob
        self.seed = seed
        self.sam_inputs = sam_inputs

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(int(key), len(self.samples))
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, epoch, i])
        image = read_image(s.image)
        gt = read_mask(s.mask) >= 0.5
        if gt.shape != image.shape[:2]:
            raise SamSrError(f"mask {s.mask} size {gt.shape} differs from image {image.shape[:2]}")
        if s.coarse and rng.random() < self.real_coarse_prob:
            src = list(s.coarse)[int(rng.integers(0, len(s.coarse)))]
            coarse = read_mask(s.coarse[src])
            if coarse.shape != gt.shape:
                import cv2
                coarse = cv2.resize(coarse, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
        else:
            coarse = self.synthesizer(gt, rng)
        targets = {}
        extra = emb = None
        if self.sam_inputs is not None:
            coarse, extra, emb = self.sam_inputs(image, coarse.astype(np.float32), rng)
            if extra is not None:
                targets["extra"] = extra
            if emb is not None:  # pixel-centre coordinates follow the crop and flip
                h, w = gt.shape
                ys, xs = np.meshgrid(np.arange(h, dtype=np.float32) + 0.5,
                                     np.arange(w, dtype=np.float32) + 0.5, indexing="ij")
                targets["coords"] = np.stack([ys, xs], -1)
        if hasattr(self.transform, "set_random_seed"):   # albumentations: seeded per item
            self.transform.set_random_seed(int(rng.integers(0, 2**32 - 1)))
        out = self.transform(image=image, mask=gt.astype(np.float32), coarse=coarse.astype(np.float32),
                             **targets)
        item = {
            "image": torch.from_numpy(out["image"].transpose(2, 0, 1).copy()).float() / 255.0,
            "gt": torch.from_numpy((out["mask"] >= 0.5).astype(np.float32))[None],
            "coarse": torch.from_numpy(np.clip(out["coarse"], 0, 1).astype(np.float32))[None],
        }
        if extra is not None:
            e = out["extra"] if out["extra"].ndim == 3 else out["extra"][..., None]
            item["extra"] = torch.from_numpy(np.clip(e, 0, 1).transpose(2, 0, 1).copy()).float()
        if emb is not None:
            c = torch.from_numpy(out["coords"][4::8, 4::8].copy())
            item["extra"] = self.sam_inputs.features_at(emb, gt.shape, c[..., 0], c[..., 1])
        return item


class EpochSampler(Sampler[int]):
    """Shuffles ``n`` items anew each epoch, reproducibly: epoch e's order is a permutation drawn from
    a generator seeded with ``(seed, e)``, and it yields keys ``e * n + i`` (see
    :class:`RefinementDataset`). Call :meth:`set_epoch` before iterating an epoch (the training loop
    does; with :func:`accelerate.skip_first_batches` a resumed run re-enters an epoch mid-way)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        return iter((self.epoch * self.n + torch.randperm(self.n, generator=g)).tolist())
