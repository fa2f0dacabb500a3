"""SAM-SR v4: a region step on SAM's grid, then the CRM cascade for the boundary (sam-sr's default).

Not in the SAM-SR thesis; it follows the layout of the published refiners that fix regions and
boundaries (SAMRefiner's SAM prompting, CRM's cascade):

1. SAM (MobileSAM by default) encodes the photo once; prompts derived from the coarse mask
   (:mod:`sam_sr.sam.prompt`, one answer per entry of ``prompts``) give SAM's view of the object.
2. The region network (:class:`~sam_sr.models.region.RegionNet`) decides on SAM's 256 x 256 grid
   which cells belong to the object, from the embedding, the coarse mask, SAM's answers and the
   photo: it can add a missing part or drop a wrong region anywhere in the photo.
3. Its logits, resampled to the photo, replace the coarse mask fed to a CRM refiner
   (:class:`~sam_sr.models.crm.CRM`), whose cascade re-draws the boundary at full resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import SamSrError
from .crm import CRM, CRMConfig
from .region import RegionConfig, RegionNet


@dataclass
class V4Config:
    """Architecture of a v4 model: the region network, the boundary refiner and SAM's prompt settings.

    Args:
        region: :class:`RegionConfig` fields. refiner: :class:`CRMConfig` fields.
        prompts: :class:`~sam_sr.sam.prompt.PromptConfig` field dicts, one SAM answer each (as many
            as ``region.sam_inputs``).
        mask: what replaces the coarse mask for the refiner: ``binary`` (the region logits > 0) or
            ``soft`` (their sigmoid).
    """

    region: dict[str, Any] = field(default_factory=dict)
    refiner: dict[str, Any] = field(default_factory=dict)
    prompts: list[dict[str, Any]] = field(default_factory=lambda: [{"rounds": 1, "mask": False},
                                                                   {"rounds": 1}])
    mask: str = "binary"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "V4Config":
        """Build from a dict; raises :class:`SamSrError` on unknown keys or inconsistent settings."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise SamSrError(f"unknown v4 model config keys {unknown}; allowed: {sorted(cls.__dataclass_fields__)}")
        cfg = cls(**{k: v for k, v in d.items()})
        from ..sam.prompt import PromptConfig
        prompts = [PromptConfig.from_dict(p) for p in cfg.prompts]
        if len(prompts) != RegionConfig.from_dict(cfg.region).sam_inputs:
            raise SamSrError("v4 needs one prompt setting per region sam_inputs")
        if cfg.mask not in ("binary", "soft"):
            raise SamSrError(f"v4 mask must be binary or soft, got {cfg.mask!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {"region": RegionConfig.from_dict(self.region).to_dict(),
                "refiner": CRMConfig.from_dict(self.refiner).to_dict(),
                "prompts": [dict(p) for p in self.prompts], "mask": self.mask}


class SamSrV4(nn.Module):
    """A region network and a CRM boundary refiner (see the module docstring). SAM runs outside
    the module (its image encoder once per photo, its prompt decoder per prompt)."""

    variant = "v4"

    def __init__(self, config: V4Config | None = None):
        super().__init__()
        self.config = config or V4Config()
        self.region = RegionNet(RegionConfig.from_dict(self.config.region))
        self.refiner = CRM(CRMConfig.from_dict(self.config.refiner))

    def prompt_configs(self):
        """The :class:`~sam_sr.sam.prompt.PromptConfig` of each SAM answer the region step reads."""
        from ..sam.prompt import PromptConfig
        return [PromptConfig.from_dict(p) for p in self.config.prompts]
