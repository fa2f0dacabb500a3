"""Refiner models: encoder, fusion, implicit decoder, CRM, and the variant registry."""
from .crm import CRM, CRMConfig
from .implicit_decoder import ImplicitDecoder, query_grid
from .registry import available_variants, build_model, register_variant

__all__ = ["CRM", "CRMConfig", "ImplicitDecoder", "query_grid", "available_variants", "build_model",
           "register_variant"]
