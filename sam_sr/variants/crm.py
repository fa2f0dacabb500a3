"""CRM: the refiner alone (Shen et al. 2022), no SAM. The shipped model is a CRM."""
from ..models.crm import CRM, CRMConfig
from .spec import VariantSpec

SPEC = VariantSpec(
    name="crm", model=CRM, config=CRMConfig, default_checkpoint="weights/crm_r18.pt",
    summary="CRM: ResNet encoder over image + coarse mask, fusion, implicit decoder, cascade")
