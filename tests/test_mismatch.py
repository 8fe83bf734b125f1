"""utils.mismatch: the per-token gap and its histogram count what they say, padding left out."""

import math

import pytest
import torch

from utils import mismatch, rl


def _batch():
    trainer = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -0.2, 0.0]])
    sampler = torch.tensor([[-1.1, -2.0, 0.0], [-0.1, -0.25, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return trainer, sampler, mask


def test_token_gaps_are_trainer_minus_sampler_on_real_tokens_only():
    gaps = mismatch.token_gaps(*_batch())
    torch.testing.assert_close(gaps, torch.tensor([0.1, 0.0, 0.0, 0.05, 0.0],
                                                  dtype=torch.float64), atol=1e-7, rtol=0)
    assert gaps.dtype == torch.float64  # a 1e-7 gap is not rounded away


def test_gaps_agree_with_the_correction_they_describe():
    trainer, sampler, mask = _batch()
    gaps = mismatch.token_gaps(trainer, sampler, mask)
    ratios, metrics = rl.rollout_is_weights(trainer, sampler, mask, mode="token_mask",
                                            clip_max=None)
    torch.testing.assert_close(ratios[mask.bool()].double().log(), gaps, atol=1e-6, rtol=0)
    assert metrics["sampling/sampling_logp_difference/max"] == pytest.approx(
        gaps.abs().max().item(), abs=1e-6)


def test_histogram_counts_every_gap_once_and_zeros_apart():
    gaps = torch.tensor([0.0, 0.0, 3e-7, -4e-7, 0.02, -0.5, 1e-12, 50.0])
    hist = mismatch.gap_histogram(gaps, low=-9, high=1)
    assert hist["n"] == 8 and hist["zeros"] == 2
    assert sum(hist["counts"]) + hist["zeros"] == 8
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == 11
    decade = {math.floor(math.log10(e)): c for e, c in zip(hist["edges"], hist["counts"])}
    assert decade[-7] == 2  # 3e-7 and 4e-7: the sign does not matter
    assert decade[-2] == 1 and decade[-1] == 1
    assert decade[-9] == 1 and decade[0] == 1  # out of range: the end bins


def test_describe_and_bad_input():
    assert mismatch.describe(torch.tensor([])) == "no tokens"
    line = mismatch.describe(torch.tensor([0.0, 0.02, -0.001, -0.5]))
    assert line.startswith("4 tokens") and "max 5.00e-01" in line
    assert "50.0% of the tokens have a ratio more than 1% from 1" in line
    with pytest.raises(ValueError, match="shape"):
        mismatch.token_gaps(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="below"):
        mismatch.gap_histogram(torch.zeros(3), low=1, high=1)


def test_plot_draws_both_panels_with_the_cap():
    gaps = {"fp32": torch.tensor([1e-7, 0.0, 2e-6]), "bf16": torch.tensor([0.01, -0.2])}
    ratios = {"fp32": torch.tensor([1.0, 1.0]), "bf16": torch.tensor([0.8, 1.3])}
    fig = mismatch.plot_mismatch(gaps, ratios, cap=3.0)
    left, right = fig.axes
    assert left.get_xscale() == right.get_xscale() == "log"
    assert any(line.get_xdata()[0] == 3.0 for line in right.get_lines())  # the cap
    filled = [(p.get_x(), p.get_x() + p.get_width(), p.get_height())
              for p in right.patches if p.get_height() > 0]
    assert sum(h for _, _, h in filled) == 4  # every completion once...
    for value in (0.8, 1.0, 1.3):  # ...at its ratio, as given
        assert any(low <= value < high for low, high, _ in filled)
    assert all(high < 1.5 for _, high, _ in filled)
    assert "1 of 3 exactly 0" in left.get_legend().get_texts()[0].get_text()
