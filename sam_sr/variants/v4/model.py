"""SAM-SR v4: a region step on SAM's grid, then the CRM cascade for the boundary (sam-sr's default).

Not in the SAM-SR thesis; it follows the layout of the published refiners that fix regions and
boundaries (SAMRefiner's SAM prompting, CRM's cascade):

1. SAM (MobileSAM by default) encodes the photo once; prompts derived from the coarse mask
   (:mod:`sam_sr.sam.prompt`, one answer per entry of ``prompts``) give SAM's view of the object.
2. The region network (:class:`~sam_sr.variants.v4.region_net.RegionNet`) decides on SAM's 256 x 256 grid
   which cells belong to the object, from the embedding, the coarse mask, SAM's answers and the
   photo: it can add a missing part or drop a wrong region anywhere in the photo.
3. Its decisions replace the coarse mask where they differ from it by regions
   (:func:`sam_sr.variants.v4.region_step.compose`, opening radius ``compose`` grid cells), and the CRM
   refiner this model also is (:class:`~sam_sr.models.crm.CRM`) re-draws the boundary at full
   resolution in its cascade.

Steps 1-3 run in the variant's SAM stage (:mod:`sam_sr.variants.v4`); the cascade calls this model's
CRM interface as for any refiner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import SamSrError
from ...models.base import config_from_dict, config_to_dict
from ...models.crm import CRM, CRMConfig
from .region_net import RegionConfig, RegionNet

#: SAM answers the region step reads (sam_sr.sam.prompt.PromptConfig fields), one per region input.
DEFAULT_PROMPTS = ({"rounds": 1, "mask": False},   # points + box: SAM's own view of the object
                   {"rounds": 1})                  # + the coarse mask as dense prompt: SAM reshaping it


@dataclass
class V4Config(CRMConfig):
    """A CRM refiner's architecture (:class:`CRMConfig` fields) plus the region step's.

    Args:
        region: :class:`~sam_sr.variants.v4.region_net.RegionConfig` fields.
        prompts: :class:`~sam_sr.sam.prompt.PromptConfig` field dicts, one SAM answer each (as many as
            ``region["sam_inputs"]``, default 2).
        compose: opening radius, in cells of SAM's 256 grid, of the region step's disagreements with
            the coarse mask (see :func:`sam_sr.variants.v4.region_step.compose`); 0 = the region mask alone.

    Raises:
        SamSrError: unknown keys, a bad region config or prompt, a prompt count that is not the
            region network's ``sam_inputs``, a negative ``compose``.
    """

    region: dict[str, Any] = field(default_factory=dict)
    prompts: list[dict[str, Any]] = field(default_factory=lambda: [dict(p) for p in DEFAULT_PROMPTS])
    compose: float = 1.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "V4Config":
        cfg = config_from_dict(cls, d, "v4 model")
        from ...sam.prompt import PromptConfig
        region = RegionConfig.from_dict(dict(cfg.region))
        prompts = [PromptConfig.from_dict(dict(p)) for p in cfg.prompts]
        if len(prompts) != region.sam_inputs:
            raise SamSrError(f"v4 needs one prompt setting per region input: {len(prompts)} prompts, "
                             f"region sam_inputs {region.sam_inputs}")
        if float(cfg.compose) < 0:
            raise SamSrError(f"v4 compose must be >= 0 grid cells, got {cfg.compose!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["region"] = RegionConfig.from_dict(dict(self.region)).to_dict()
        d["prompts"] = [dict(p) for p in self.prompts]
        return d

    def refiner_dict(self) -> dict[str, Any]:
        """The CRM fields alone (the boundary refiner's config)."""
        d = self.to_dict()
        for k in ("region", "prompts", "compose"):
            d.pop(k)
        return d


class SamSrV4(CRM):
    """A CRM boundary refiner with a region network (see the module docstring). SAM runs outside
    the module: its image encoder once per photo, its prompt decoder per prompt.

    Attributes:
        region: the :class:`RegionNet`.
    """

    variant = "v4"

    def __init__(self, config: V4Config | None = None):
        super().__init__(config or V4Config())
        self.region = RegionNet(RegionConfig.from_dict(dict(self.config.region)))

    def prompt_configs(self):
        """The :class:`~sam_sr.sam.prompt.PromptConfig` of each SAM answer the region step reads."""
        from ...sam.prompt import PromptConfig
        return [PromptConfig.from_dict(dict(p)) for p in self.config.prompts]
