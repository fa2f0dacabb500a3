"""Refiner models: the refiner interface (:mod:`.base`), encoder, fusion, implicit decoder, pixel head,
CRM and the SAM-SR v3 architecture. Variant names -> models: :mod:`sam_sr.variants`."""
from .base import RefinerModel
from .crm import CRM, CRMConfig
from .implicit_decoder import ImplicitDecoder, query_grid

__all__ = ["RefinerModel", "CRM", "CRMConfig", "ImplicitDecoder", "query_grid"]
