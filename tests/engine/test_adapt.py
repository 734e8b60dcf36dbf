"""Fitting the volume model to one scan: which axes teach which, samples that show the thick axis's
degradation along a sharp axis turned into its place, and a fit that lowers the error on real MRI without
touching the shipped model."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from ginr_cli.engine import normalize
from ginr_cli.engine.adapt import _sample, adapt, plan_axes, to_sharp_spacing
from ginr_cli.engine.evaluate import thick_slices
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_config, untrained

COLIN = Path(__file__).resolve().parents[2] / "examples" / "volumes" / "colin27_2mm.nii.gz"


def test_sharp_axes_teach_the_thick_one():
    assert plan_axes((90, 108, 45), (1, 1, 2), 32) == [(2, 0, 2.0), (2, 1, 2.0)]
    assert plan_axes((90, 40, 45), (1, 1, 2), 32) == [(2, 0, 2.0)]  # 40 < 64: too short to crop from
    assert plan_axes((90, 90, 90), (2, 2, 2), 32) == [(0, 0, 2.0), (1, 1, 2.0), (2, 2, 2.0)]  # ZSSR
    assert plan_axes((90, 90, 90), (1, 1, 1), 32) == []  # nothing upscaled
    assert plan_axes((90, 90, 20), (2, 1, 1), 32) == [(0, 1, 2.0)]  # axis 2 is padded


def test_a_sample_is_the_donor_axis_thick_sliced_and_turned_into_place():
    volume = torch.arange(64, dtype=torch.float32)[:, None, None].expand(64, 20, 20).contiguous()  # x ramp
    low, coords, cell, target = _sample(volume, (2, 0, 2.0), 8, 100, np.random.default_rng(0))
    assert low.shape == (1, 8, 8, 8) and coords.shape == (100, 3) and target.shape == (100, 1)
    np.testing.assert_allclose(cell.numpy(), [2 / 8, 2 / 8, 2 / 16])  # 16 sharp voxels become 8 along z
    steps = low[0, 0, 0].diff()  # the ramp now runs along the thick axis, averaged over pairs: steps of 2
    assert torch.all(steps.abs() == 2) and torch.all(low[0].std(dim=(0, 1)) == 0)
    # targets follow the ramp along z at the sharp resolution: one grey level per sharp voxel
    z = ((coords[:, 2] + 1) * 16 - 1) / 2
    offset = target[:, 0] - torch.where(steps[0] > 0, z, -z)
    assert torch.allclose(offset, offset[0].expand_as(offset))


def test_the_thick_axis_takes_the_sharp_spacing_where_it_is_turned_to():
    # a ramp along the thick axis z (4 mm slices), resampled to 1 mm by a cubic spline: 4 voxels a slice,
    # so turned to x it rises by a quarter of a slice per voxel (a whole slice without resampling)
    volume = torch.arange(20, dtype=torch.float32)[None, None, :].expand(64, 20, 20).contiguous()
    sharp = to_sharp_spacing(volume, 2, 4.0)
    assert sharp.shape == (64, 20, 80)
    np.testing.assert_allclose(sharp[0, 0, 20:-20].diff().numpy(), 0.25, atol=1e-3)  # a spline keeps a ramp
    low, _, _, _ = _sample(sharp, (2, 0, 4.0), 8, 100, np.random.default_rng(0))
    steps = low[0, :, 0, 0].diff()
    assert torch.allclose(steps.abs(), torch.full_like(steps, 0.25), atol=0.05)  # the edges bend it a little
    assert torch.all(low[0].std(dim=(1, 2)) == 0)


def test_fitting_lowers_the_error_on_a_real_scan_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = untrained(MambaGINR(tiny_config(3)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    truth = np.asarray(nib.load(COLIN).dataobj, np.float64)[20:68, 24:72, 20:52]  # real MRI, 48x48x32
    thick = thick_slices(truth, 2, 2)
    norm = normalize.for_volume(thick)
    source = norm.apply(thick.astype(np.float32))[None]
    fitted = adapt(model, source, (1, 1, 2), 40, torch.device("cpu"))
    assert fitted is not model and not fitted.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    def error(net) -> float:  # the thick axis restored, against the truth, in model units
        from ginr_cli.engine.infer import resample
        from ginr_cli.engine.tiling import OutputGrid

        out = resample(net, source, OutputGrid.full(thick.shape, truth.shape), torch.device("cpu"))
        return float(np.abs(out[..., 0] - norm.apply(truth.astype(np.float32))).mean())

    assert error(fitted) < 0.9 * error(model)
    assert adapt(model, source, (1, 1, 1), 40, torch.device("cpu")) is model  # nothing to learn


@pytest.mark.parametrize(("factor", "share"), [(2, 0.25), (4, 0.5)])
def test_a_share_of_the_samples_see_the_thick_axis_resampled_the_rest_as_it_is(monkeypatch, factor, share):
    from ginr_cli.engine import adapt as adapt_module

    seen = []

    def recording(volume, *args):
        seen.append(tuple(volume.shape))
        return _sample(volume, *args)

    monkeypatch.setattr(adapt_module, "_sample", recording)
    source = np.random.default_rng(0).standard_normal((1, 64, 64, 64 // factor)).astype(np.float32)
    adapt(untrained(MambaGINR(tiny_config(3))), source, (1, 1, factor), 25, torch.device("cpu"))
    resampled = sum(shape == (64, 64, 64) for shape in seen)
    assert len(seen) == 100 and set(seen) == {(64, 64, 64), (64, 64, 64 // factor)}
    assert abs(resampled - 100 * share) <= 15  # binomial: 3 standard deviations at most
