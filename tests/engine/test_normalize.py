import numpy as np
import pytest
import torch

from ginr_cli.engine.normalize import IMAGE, Normalization, for_volume


def test_volume_range_is_robust_and_round_trips_exactly_enough():
    rng = np.random.default_rng(0)
    data = rng.normal(100, 20, size=(20, 20, 20)).astype(np.float32)
    data[0, 0, 0] = 1e6  # one outlier does not decide the range
    norm = for_volume(data)
    assert norm.hi < 1000
    np.testing.assert_allclose(norm.invert(norm.apply(data)), data, rtol=1e-5)
    assert -1.5 < float(np.median(norm.apply(data))) < 1.5


def test_constant_volume_gets_a_usable_range():
    norm = for_volume(np.full((4, 4, 4), 7.0))
    assert norm.apply(np.array(7.0)) == pytest.approx(0.0)


def test_image_range_maps_to_minus_one_one_for_arrays_and_tensors():
    assert IMAGE.apply(np.array([0.0, 1.0])).tolist() == [-1.0, 1.0]
    torch.testing.assert_close(IMAGE.invert(torch.tensor([-1.0, 1.0])), torch.tensor([0.0, 1.0]))


def test_from_dict_round_trips_and_rejects_an_empty_range():
    norm = Normalization(lo=-1024.0, hi=3071.0)
    assert Normalization.from_dict(norm.to_dict()) == norm
    with pytest.raises(ValueError, match="empty"):
        Normalization.from_dict({"lo": 1, "hi": 1})
