"""Intensity normalisation, recorded per input so decoding returns the original units.

The model sees values in about [-1, 1]: `lo` maps to -1 and `hi` to 1, linearly, without clipping, so
nothing outside the range is lost. Images use their bit depth's range ([0, 1] after reading); volumes use
robust percentiles of their own values. Training and inference both go through `Normalization`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

VOLUME_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Normalization:
    lo: float
    hi: float

    def apply(self, values):
        """Source units -> model units (numpy array or torch tensor)."""
        return (values - self.lo) * (2.0 / (self.hi - self.lo)) - 1.0

    def invert(self, values):
        """Model units -> source units."""
        return (values + 1.0) * ((self.hi - self.lo) / 2.0) + self.lo

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Normalization:
        norm = cls(lo=float(data["lo"]), hi=float(data["hi"]))
        if not norm.hi > norm.lo:
            raise ValueError(f"normalisation range is empty: lo={norm.lo}, hi={norm.hi}")
        return norm


IMAGE = Normalization(lo=0.0, hi=1.0)


def for_volume(data: np.ndarray) -> Normalization:
    """Robust range of a volume's values; a constant volume gets a unit range around its value."""
    lo, hi = (float(v) for v in np.percentile(data, VOLUME_PERCENTILES))
    if not hi > lo:
        lo, hi = float(data.min()), float(data.max())
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return Normalization(lo=lo, hi=hi)
