"""What a variant is: :class:`VariantSpec`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import SamSrError

if TYPE_CHECKING:     # annotations only: the registry names variants without importing torch
    from ..models.base import RefinerModel
    from ..sam.stage import SamStage

#: The package folder; relative ``default_sam_checkpoint`` paths resolve against it.
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class VariantSpec:
    """One refiner variant: everything the predictor, training, evaluation and the ablation need.

    Args:
        name: the registry name (``variant:`` in configs and checkpoints, ``--variant`` on the CLI).
        model: the refiner class (a :class:`~sam_sr.models.base.RefinerModel`); ``model(config)``
            builds it.
        config: the model's config dataclass (``from_dict``/``to_dict``; ``model:`` in configs).
        defaults: the variant's default model config, over the config class's own defaults.
        fixed: keys of ``defaults`` this variant requires (a config giving another value is refused).
        extra_channels: the refiner's extra input channels (0 = none; for SAM's image embedding, its
            channels, 256 for SAM and MobileSAM).
        sam_stage: the SAM input stage class (:class:`~sam_sr.sam.stage.SamStage`), or None for a
            variant that does not use SAM. A stage may replace the coarse mask (v1), add channels
            (v2.x) or give SAM's embedding (v3.x).
        runs_checkpoints_of: other variants whose checkpoints this variant can run (v1 runs a CRM
            checkpoint: only its input differs).
        default_sam_checkpoint: SAM checkpoint used when none is given (a path; relative paths are
            inside the package, e.g. ``weights/mobile_sam.pt``), or None (then one must be given).
        default_sam_type: the SAM type of ``default_sam_checkpoint`` (``vit_t`` = MobileSAM).
        default_checkpoint: the checkpoint ``Refiner.from_checkpoint(variant=name)`` loads when no
            path is given (relative paths inside the package, e.g. ``weights/crm_r18.pt``), or None
            (then the package's default model, which must be of a variant this one runs).
        inference: cascade settings this variant recommends when it runs a checkpoint of another
            variant (e.g. sam-prompt running a CRM checkpoint, whose stored settings suit coarse masks
            of another kind); explicit settings still override them.
        summary: one line for ``--help`` and the docs.
    """

    name: str
    model: type[RefinerModel]
    config: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()
    extra_channels: int = 0
    sam_stage: type[SamStage] | None = None
    runs_checkpoints_of: tuple[str, ...] = ()
    default_sam_checkpoint: str | None = None
    default_sam_type: str = "vit_t"
    default_checkpoint: str | None = None
    inference: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def uses_sam(self) -> bool:
        """Whether the variant needs SAM (at inference, and its cache in training)."""
        return self.sam_stage is not None

    def model_config(self, config: Mapping[str, Any] | None = None):
        """The model config dataclass: ``defaults`` then ``config``.

        Raises:
            SamSrError: unknown keys, or a ``fixed`` key given another value.
        """
        given = dict(config or {})
        for key in self.fixed:
            if key in given and given[key] != self.defaults[key]:
                raise SamSrError(f"variant {self.name} needs {key}={self.defaults[key]!r}, got {given[key]!r}")
        return self.config.from_dict({**self.defaults, **given})

    def build(self, config: Mapping[str, Any] | None = None) -> RefinerModel:
        """The refiner with ``config`` (a model-config dict) over the defaults; its ``variant`` is
        this variant's name (a model class serves several variants: v1, v2.x and sam-prompt are CRMs)."""
        model = self.model(self.model_config(config))
        model.variant = self.name
        return model

    def stage(self, settings: Mapping[str, Any] | None = None) -> SamStage:
        """A SAM input stage of this variant, with ``settings`` (a config's ``sam`` section: the keys
        the stage reads, besides the SAM model's own, :data:`sam_sr.sam.stage.SAM_KEYS`).

        Raises:
            SamSrError: the variant does not use SAM; a setting the stage does not read.
        """
        if self.sam_stage is None:
            raise SamSrError(f"variant {self.name} does not use SAM")
        return self.sam_stage(settings)

    def accepts_checkpoint_of(self, variant: str) -> bool:
        """Whether a checkpoint of ``variant`` can run as this variant."""
        return variant == self.name or variant in self.runs_checkpoints_of

    def checkpoint(self) -> Path | None:
        """The variant's own default checkpoint (see ``default_checkpoint``), or None."""
        if self.default_checkpoint is None:
            return None
        p = Path(self.default_checkpoint)
        return p if p.is_absolute() else PACKAGE_DIR / p

    def sam_checkpoint(self, given: str | Path | None = None) -> Path | None:
        """The SAM checkpoint to load: ``given``, else the default (None if there is none)."""
        if given is not None:
            return Path(given)
        if self.default_sam_checkpoint is None:
            return None
        p = Path(self.default_sam_checkpoint)
        return p if p.is_absolute() else PACKAGE_DIR / p
