"""CRM: the refiner alone (Shen et al. 2022), no SAM, in two trained forms.

- ``crm``: the band refiner (``weights/crm_r18.pt``): trained on points near the coarse contour, it
  re-draws only a band around it (``contour`` decoding); v4's and v5's boundary step.
- ``crm-full``: its full-decoding companion (``weights/crm_r18_full.pt``): the band refiner fine-tuned
  on every pixel of its crops (``configs/crm_r18/crm_r18_full.yaml``), so ``full``, ``strided`` and
  ``hierarchical`` decoding have a meaningful output to agree with.
"""
from ..models.crm import CRM, CRMConfig
from .spec import VariantSpec

SPEC = VariantSpec(
    name="crm", model=CRM, config=CRMConfig, default_checkpoint="weights/crm_r18.pt",
    summary="CRM: ResNet encoder over image + coarse mask, fusion, implicit decoder, cascade")

SPEC_FULL = VariantSpec(
    name="crm-full", model=CRM, config=CRMConfig, runs_checkpoints_of=("crm",),
    default_checkpoint="weights/crm_r18_full.pt",
    summary="CRM trained on every pixel: full, strided and hierarchical decoding")
