"""Datasets, coarse-mask synthesis and joint transforms."""
from .datasets import LAYOUTS, EpochSampler, RefinementDataset, Sample, concat_samples, load_samples, read_ids
from .perturb import CoarseMaskSynthesizer, mask_iou, perturb_to_iou, scale_gap

__all__ = ["LAYOUTS", "EpochSampler", "RefinementDataset", "Sample", "concat_samples", "load_samples", "read_ids",
           "CoarseMaskSynthesizer", "mask_iou", "perturb_to_iou", "scale_gap"]
