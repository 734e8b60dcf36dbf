import pytest
import torch

from ginr_cli.nn.config import PositionConfig
from ginr_cli.nn.position_tokens import LearnablePositions, lp_indices

STRATEGIES = [("equidistant", 2), ("middle", 2), ("n-group", 2), ("n-group", 4)]


def test_seed_worked_example():
    # 64 patch tokens and 16 LPs, equidistant: LPs at 0, 5, ..., 75 in a sequence of 80.
    assert lp_indices(64, 16, "equidistant") == list(range(0, 80, 5))


def test_middle_and_groups_place_lps_as_described():
    assert lp_indices(20, 5, "middle") == [10, 11, 12, 13, 14]
    groups = lp_indices(20, 6, "n-group", group_size=2)
    assert groups == [0, 1, 8, 9, 17, 18]  # three pairs, spread over the sequence


@pytest.mark.parametrize("placement,group", STRATEGIES)
@pytest.mark.parametrize("n", [1, 7, 64, 100])
def test_interleave_then_extract_returns_the_lps_and_keeps_tokens_in_order(placement, group, n):
    positions = LearnablePositions(PositionConfig(num_lp=8, placement=placement, group_size=group), d_model=5)
    tokens = torch.randn(3, n, 5)
    seq = positions.interleave(tokens)
    assert seq.shape == (3, n + 8, 5)
    lp_index, _, _ = positions.indices(n)
    assert lp_index.tolist() == sorted(set(lp_index.tolist())) and len(lp_index) == 8
    assert lp_index.max() < n + 8
    torch.testing.assert_close(positions.extract(seq), positions.lps.expand(3, -1, -1))
    keep = torch.ones(n + 8, dtype=torch.bool)
    keep[lp_index] = False
    torch.testing.assert_close(seq[:, keep], tokens)
    torch.testing.assert_close(positions.extract_tokens(seq), tokens)


def test_extract_reads_where_interleave_wrote():
    positions = LearnablePositions(PositionConfig(num_lp=4, placement="n-group", group_size=2), d_model=3)
    seq = positions.interleave(torch.zeros(1, 10, 3))
    lp_index, _, _ = positions.indices(10)
    is_lp = seq.abs().sum(-1)[0] > 0
    assert torch.nonzero(is_lp).flatten().tolist() == lp_index.tolist()


def test_group_size_must_divide_num_lp():
    with pytest.raises(ValueError, match="groups of 3"):
        lp_indices(10, 8, "n-group", group_size=3)
