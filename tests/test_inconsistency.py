"""The inconsistency mask within SPL's budget: known answers on hand-made heads."""

import numpy as np
import pytest
import torch

from labor_cli.artifacts import unpack_mask
from labor_cli.extraction.scores import extract_image
from labor_cli.inconsistency import budget_pixels, budget_share, head_discrepancy, within_budget


def test_budget_pixels_rounds_down_and_zero_means_no_budget():
    assert budget_pixels(0.022, 100, 100) == 220
    assert budget_pixels(0.1, 12, 16) == 19  # 19.2: never above the share
    assert budget_pixels(0.0, 1024, 2048) is None


def test_head_discrepancy_is_the_l1_distance_of_the_softmax_outputs():
    logits1 = torch.tensor([[[0.0, 2.0]], [[0.0, 0.0]]])  # (C=2, H=1, W=2)
    logits2 = torch.tensor([[[0.0, 0.0]], [[0.0, 2.0]]])
    p = torch.sigmoid(torch.tensor(2.0)).item()  # softmax of (2, 0)
    np.testing.assert_allclose(head_discrepancy(logits1, logits2).numpy(), [[0.0, 2 * (2 * p - 1)]], rtol=1e-6)


def test_within_budget_keeps_the_most_discrepant_candidates():
    candidates = torch.tensor([[True, True, True, False, True]])
    discrepancy = torch.tensor([[0.1, 0.5, 0.3, 0.9, 0.5]])
    kept = within_budget(candidates, discrepancy, 2)
    assert kept.tolist() == [[False, True, False, False, True]]  # 0.9 is no candidate; 0.5 twice
    assert within_budget(candidates, discrepancy, 3).tolist() == [[False, True, True, False, True]]
    assert within_budget(candidates, discrepancy, 4) is candidates  # within the budget already
    assert within_budget(candidates, discrepancy, None) is candidates
    ties = within_budget(torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 4), 2)
    assert ties.tolist() == [[True, True, False, False]]  # equal scores: the first in raster order


def test_budget_share_caps_each_image_then_averages():
    differ = torch.zeros(2, 10, 10, dtype=torch.bool)
    differ[0, :5] = True  # 50% of image 0, none of image 1
    assert budget_share(differ, 0.1).item() == pytest.approx(0.05)
    assert budget_share(differ, 0.0).item() == pytest.approx(0.25)  # no budget: the plain share
    assert budget_share(differ, 0.9).item() == pytest.approx(0.25)


def test_extract_keeps_the_budget_s_most_discrepant_pixels_of_the_mask():
    """Heads that differ on 30 pixels of a 12x16 image, more strongly on some: a 10% budget
    keeps the 19 where their probabilities differ most; no budget keeps all 30."""
    head1 = torch.zeros(3, 12, 16)
    head1[0] = 5.0
    head2 = head1.clone()
    strength = torch.zeros(12, 16)
    strength[2, :16] = torch.arange(16, dtype=torch.float32) + 6.0  # 16 pixels, stronger to the right
    strength[5, 2:16] = 5.5  # 14 weaker ones
    head2[2] = strength
    differ = strength > 0
    assert int(differ.sum()) == 30
    logits = torch.randn(3, 12, 16)
    rows = extract_image(logits, head1, head2, (12, 16), None, per_class=100, uncertain=10, mask_share=0.1)
    mask = unpack_mask(rows.mask_packed, (12, 16))
    expected = np.zeros((12, 16), dtype=bool)
    expected[2, :16] = True
    expected[5, 2:5] = True  # the weaker row ties: its first three in raster order
    np.testing.assert_array_equal(mask, expected)
    assert rows.differ_pixels == 30 and rows.mask_by_class.sum() == 19
    unbudgeted = extract_image(logits, head1, head2, (12, 16), None, per_class=100, uncertain=10)
    np.testing.assert_array_equal(unpack_mask(unbudgeted.mask_packed, (12, 16)), differ.numpy())
    assert unbudgeted.differ_pixels == 30
