"""How sharp a scan is along each of its axes: the share of each axis's power spectrum above half and above
a quarter of the Nyquist frequency (every line along the axis, the volume scaled by its own 0.5-99.5
percentile range, as the models see it). An axis with much less of it than the others was acquired or
resampled coarser: thick slicing removes less along it, and interpolation leaves an upscaler less to
gain there (the `volume` card).

    python scripts/axis_sharpness.py data/volumes/eval/*.nii.gz data/volumes/subject/*.nii.gz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ginr_cli.io.volumes import read_volume


def high_band_share(volume: np.ndarray, axis: int, above: float) -> float:
    """Share of the power along `axis` (mean removed per line) above `above` times the Nyquist frequency."""
    power = np.abs(np.fft.rfft(volume - volume.mean(axis=axis, keepdims=True), axis=axis)) ** 2
    per_frequency = np.moveaxis(power, axis, 0).reshape(power.shape[axis], -1).sum(axis=1)
    first = int(np.ceil(above * (len(per_frequency) - 1)))
    return float(per_frequency[first:].sum() / per_frequency.sum())


def main() -> None:
    print("| volume | shape | axis | power above 1/2 Nyquist | above 1/4 Nyquist |")
    print("|---|---|---|---|---|")
    for path in map(Path, sys.argv[1:]):
        volume = read_volume(path).data[0].astype(np.float64)
        low, high = np.percentile(volume, [0.5, 99.5])
        volume = (volume - low) / max(high - low, 1e-12)
        for axis in range(volume.ndim):
            half, quarter = (high_band_share(volume, axis, f) for f in (0.5, 0.25))
            shape = "x".join(map(str, volume.shape))
            print(f"| {path.name} | {shape} | {axis} | {100 * half:.2f}% | {100 * quarter:.2f}% |")


if __name__ == "__main__":
    main()
