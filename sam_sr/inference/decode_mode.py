"""The decode mode (query selection) as one typed value: :class:`DecodeMode`, parsed once from its
text (``--decode``, configs, checkpoints) and passed as it is to the cascade, the validity check and
the decoder (:mod:`sam_sr.inference.query`). Pure Python: the command line parses it without torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SamSrError


@dataclass(frozen=True, eq=False)
class DecodeMode:
    """A parsed query-selection mode: ``name`` in {full, bbox, contour, strided, hierarchical}
    and its integer parameter (padding, band width or stride, in output pixels)."""

    name: str = "full"
    param: int = 0

    #: ``hierarchical``'s stride 4: crm-full on the aeroplane, against ``full``, 16 -> 98.84%, 8 -> 99.25%,
    #: 4 -> 99.65% agreement at about the same time (the coarse levels' features are dense anyway)
    DEFAULTS = {"full": 0, "bbox": 32, "contour": 16, "strided": 4, "hierarchical": 4}
    #: the largest parameter (padding, band width or stride) in output pixels: beyond any image
    MAX_PARAM = 1 << 16

    @classmethod
    def parse(cls, text: "str | DecodeMode") -> "DecodeMode":
        """``"full"``, ``"bbox:32"``, ``"contour:16"``, ``"strided:4"``, ``"hierarchical:4"``.

        Raises:
            SamSrError: unknown mode or a bad parameter.
        """
        if isinstance(text, DecodeMode):
            return text
        name, _, arg = str(text).strip().partition(":")
        if name not in cls.DEFAULTS:
            raise SamSrError(f"unknown decode mode {text!r}; choose from {sorted(cls.DEFAULTS)}")
        try:
            param = int(arg) if arg else cls.DEFAULTS[name]
        except ValueError:
            raise SamSrError(f"decode mode {text!r}: the parameter must be an integer") from None
        if param > cls.MAX_PARAM:
            raise SamSrError(f"decode mode {text!r}: the parameter must be at most {cls.MAX_PARAM} px")
        if name in ("strided", "hierarchical") and param < 1:
            raise SamSrError(f"decode mode {text!r}: the stride must be >= 1")
        if name == "hierarchical" and param & (param - 1):
            raise SamSrError(f"decode mode {text!r}: the top stride must be a power of two")
        if param < 0:
            raise SamSrError(f"decode mode {text!r}: the parameter must be >= 0")
        return cls(name, param)

    def __eq__(self, other: object) -> bool:
        """Equal to another mode with the same name and parameter, or to a text that parses to it
        (``DecodeMode.parse("contour") == "contour:16"``)."""
        if isinstance(other, str):
            try:
                other = DecodeMode.parse(other)
            except SamSrError:
                return False
        if not isinstance(other, DecodeMode):
            return NotImplemented
        return (self.name, self.param) == (other.name, other.param)

    def __hash__(self) -> int:
        return hash(str(self))   # = hash of its canonical text, which compares equal

    def __str__(self) -> str:
        return self.name if self.name == "full" else f"{self.name}:{self.param}"
