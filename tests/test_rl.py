"""Unit tests of ``utils.rl``: each formula against a hand computation or a property it must have."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from utils import rl

floats = st.floats(-5, 5, allow_nan=False, width=32)


# ---- returns and GAE -------------------------------------------------------------------------


def test_discounted_returns_by_hand():
    r = torch.tensor([1.0, 0.0, 2.0])
    assert torch.allclose(rl.discounted_returns(r, 0.5), torch.tensor([1.5, 1.0, 2.0]))
    assert torch.allclose(rl.discounted_returns(r, 1.0), torch.tensor([3.0, 2.0, 2.0]))


def test_discounted_returns_batch_equals_rows_and_mask_stops_padding():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    out = rl.discounted_returns(rewards, 0.9, mask)
    assert torch.allclose(out[0], rl.discounted_returns(rewards[0], 0.9))
    assert torch.allclose(out[1], torch.tensor([1.0, 0.0, 0.0]))  # padding rewards ignored


@settings(max_examples=40, deadline=None)
@given(st.lists(floats, min_size=1, max_size=8), st.floats(0.0, 1.0), st.data())
def test_gae_with_lambda_one_is_returns_minus_values(rewards, gamma, data):
    r = torch.tensor(rewards, dtype=torch.float64)
    v = torch.tensor(data.draw(st.lists(floats, min_size=len(rewards), max_size=len(rewards))),
                     dtype=torch.float64)
    values = torch.cat([v, torch.zeros(1, dtype=torch.float64)])  # terminal bootstrap 0
    adv, ret = rl.gae(r, values, gamma, 1.0)
    assert torch.allclose(ret, rl.discounted_returns(r, gamma), atol=1e-9)
    assert torch.allclose(adv, rl.discounted_returns(r, gamma) - v, atol=1e-9)


def test_gae_with_lambda_zero_is_the_td_error_and_uses_the_bootstrap():
    r = torch.tensor([0.0, 1.0])
    values = torch.tensor([0.5, 0.2, 3.0])  # V(s_2) = 3: the episode was cut off, not ended
    adv, ret = rl.gae(r, values, gamma=0.9, lam=0.0)
    assert torch.allclose(adv, torch.tensor([0.0 + 0.9 * 0.2 - 0.5, 1.0 + 0.9 * 3.0 - 0.2]))
    assert torch.allclose(ret, adv + values[:2])


def test_gae_padded_batch_equals_each_episode_alone():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 9.0]])  # 9: padding, unused
    adv, ret = rl.gae(rewards, values, 0.99, 0.95, mask)
    adv1, _ = rl.gae(rewards[1, :2], values[1, :3], 0.99, 0.95)
    adv0, _ = rl.gae(rewards[0], values[0], 0.99, 0.95)
    assert torch.allclose(adv[0], adv0)
    assert torch.allclose(adv[1, :2], adv1)
    assert adv[1, 2] == 0 and ret[1, 2] == 0


def test_gae_rejects_values_without_the_bootstrap():
    with pytest.raises(ValueError, match="one more entry"):
        rl.gae(torch.zeros(3), torch.zeros(3), 1.0, 0.95)


# ---- PPO -------------------------------------------------------------------------------------


def test_ppo_policy_loss_on_policy_is_minus_mean_advantage_and_its_gradient():
    logp = torch.log(torch.tensor([[0.5, 0.25], [0.1, 0.9]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    loss = rl.ppo_policy_loss(logp, logp.detach(), adv, torch.ones(2, 2))
    assert math.isclose(loss.item(), -adv.mean().item(), rel_tol=1e-6)
    loss.backward()
    assert torch.allclose(logp.grad, -adv / 4)  # the policy gradient: -A * grad log pi / N


def test_ppo_clip_switches_the_gradient_off_outside_the_trust_region():
    old = torch.zeros(1, 4)
    new = torch.tensor([[0.5, 0.5, -0.5, -0.5]]).requires_grad_(True)  # ratio 1.65 or 0.61
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    rl.ppo_policy_loss(new, old, adv, torch.ones(1, 4), clip_eps=0.2).backward()
    grad = new.grad[0]
    assert grad[0] == 0 and grad[3] == 0          # pushed further out in the good direction: clipped
    assert grad[1] != 0 and grad[2] != 0          # moving back toward the region: kept
    assert rl.clip_fraction(new, old, adv, None, 0.2) == 0.5


def test_value_loss_clipped_and_unclipped():
    values = torch.tensor([[2.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0]])
    old = torch.tensor([[0.0, 0.0]])
    assert math.isclose(rl.value_loss(values, returns).item(), 0.5 * (1 + 1) / 2)
    # clipped prediction of the first value is 0.2: error 0.8^2 < 1^2, so max keeps 1.0
    clipped = rl.value_loss(values, returns, None, old, clip_eps=0.2)
    assert math.isclose(clipped.item(), 0.5 * (1.0 + 1.0) / 2, rel_tol=1e-6)
    values = torch.tensor([[0.5, 0.0]])          # now the clip binds: pred 0.2 is worse (0.64)
    clipped = rl.value_loss(values, returns, None, old, clip_eps=0.2)
    assert math.isclose(clipped.item(), 0.5 * (0.64 + 1.0) / 2, rel_tol=1e-6)
    with pytest.raises(ValueError):
        rl.value_loss(values, returns, clip_eps=0.2)


def test_kl_penalized_rewards_put_the_score_on_the_last_real_token():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = rl.kl_penalized_rewards(torch.tensor([1.0, 2.0]), logp, ref, mask, beta=0.1)
    expected = torch.tensor([[-0.05, 0.0, 0.05 + 1.0], [-0.1, 0.0 + 2.0, 0.0]])
    assert torch.allclose(rewards, expected)


# ---- KL estimators ---------------------------------------------------------------------------


def test_kl_estimators_bias_and_sign():
    q = torch.distributions.Normal(0.0, 1.0)
    p = torch.distributions.Normal(0.3, 1.0)
    torch.manual_seed(0)
    x = q.sample(torch.Size([400_000]))
    logq, logp = q.log_prob(x), p.log_prob(x)
    true_kl = torch.distributions.kl_divergence(q, p).item()  # 0.045
    k1, k2, k3 = (rl.kl_estimate(logq, logp, k) for k in rl.KL_ESTIMATORS)
    assert abs(k1.mean().item() - true_kl) < 3e-3            # unbiased
    assert abs(k3.mean().item() - true_kl) < 1e-3            # unbiased
    # k3 = r - 1 - log r >= 0 exactly; in float32 it can round to a hair below 0
    assert (k2 >= 0).all() and (k3 >= -1e-6).all() and (k1 < 0).any()
    assert k3.std() < k1.std()                                # lower variance
    with pytest.raises(ValueError):
        rl.kl_estimate(logq, logp, "k4")


# ---- GRPO advantages -------------------------------------------------------------------------


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 5.0, 5.0, 5.0, 5.0])
    adv = rl.group_advantages(rewards, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std()  # unbiased, like TRL
    assert torch.allclose(adv[:4], (rewards[:4] - 0.5) / (std + 1e-4))
    assert torch.equal(adv[4:], torch.zeros(4))   # constant group: zero, not NaN
    assert torch.allclose(rl.group_advantages(rewards, 4, scale=None)[:4],
                          torch.tensor([0.5, -0.5, -0.5, 0.5]))


@pytest.mark.parametrize("value", [0.1, 0.7, 1 / 3, 1e6 + 0.1])
def test_constant_group_gives_exact_zeros_despite_rounding(value):
    adv = rl.group_advantages(torch.full((8,), value), 8)
    assert torch.equal(adv, torch.zeros(8)) and not torch.isnan(adv).any()


def test_single_generation_and_single_completion_are_safe():
    assert torch.equal(rl.group_advantages(torch.tensor([1.0, 2.0]), 1), torch.zeros(2))
    assert torch.equal(rl.group_advantages(torch.tensor([1.0]), 1, "batch"), torch.zeros(1))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=12, max_size=12), st.floats(0.5, 3.0),
       st.floats(-3, 3), st.sampled_from(["group", "batch", None]))
def test_group_advantages_properties(ints, scale_by, shift, scale):
    rewards = torch.tensor(ints, dtype=torch.float64) / 4
    adv = rl.group_advantages(rewards, 4, scale)
    assert adv.shape == rewards.shape and not torch.isnan(adv).any()
    assert torch.allclose(adv.view(3, 4).sum(1), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    shifted = rl.group_advantages(rewards + shift, 4, scale)
    assert torch.allclose(shifted, adv, atol=1e-6)                  # shift-invariant
    if scale is not None:                                           # scale-invariant (up to eps)
        scaled = rl.group_advantages(rewards * scale_by, 4, scale, eps=0.0)
        assert torch.allclose(scaled, rl.group_advantages(rewards, 4, scale, eps=0.0), atol=1e-6)
    # order within the group is kept: a higher reward never gets a lower advantage
    for g in range(3):
        r, a = rewards[4 * g:4 * g + 4], adv[4 * g:4 * g + 4]
        order = torch.argsort(r)
        assert torch.all(a[order][1:] >= a[order][:-1] - 1e-12)


def test_group_advantages_errors():
    with pytest.raises(ValueError, match="groups"):
        rl.group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="scale"):
        rl.group_advantages(torch.zeros(4), 4, scale="rank")


# ---- GRPO loss -------------------------------------------------------------------------------


def _tensors():
    torch.manual_seed(0)
    logp = -torch.rand(4, 5, dtype=torch.float64) - 0.1
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
                        dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=torch.float64)
    return logp, mask, adv


def test_grpo_loss_on_policy_no_kl_by_hand():
    logp, mask, adv = _tensors()
    lengths = mask.sum(1)
    expected = {
        "grpo": (-adv).mean(),                                    # ratio 1: mean_i -A_i
        "bnpo": (-adv * lengths).sum() / lengths.sum(),
        "dr_grpo": (-adv * lengths).sum() / (4 * 5),
        "dapo": (-adv * lengths).sum() / lengths.sum(),
    }
    for loss_type, value in expected.items():
        loss = rl.grpo_loss(logp, None, None, adv, mask, loss_type=loss_type)
        assert math.isclose(loss.item(), value.item(), rel_tol=1e-9), loss_type
    dr = rl.grpo_loss(logp, None, None, adv, mask, loss_type="dr_grpo", max_completion_length=10)
    assert math.isclose(dr.item(), expected["dr_grpo"].item() / 2, rel_tol=1e-9)


def test_grpo_length_bias_the_normalisations_remove():
    """Under 'grpo' a token of a short completion weighs more than a token of a long one."""
    logp, mask, _adv = _tensors()
    weights = {}
    for loss_type in rl.LOSS_TYPES:
        lp = logp.clone().requires_grad_(True)
        rl.grpo_loss(lp, None, None, torch.ones(4, dtype=torch.float64), mask,
                     loss_type=loss_type).backward()
        weights[loss_type] = -lp.grad[:, 0]  # gradient weight of the first token of each row
    assert weights["grpo"][3] > weights["grpo"][0]                 # 1-token row vs 5-token row
    for loss_type in ("bnpo", "dr_grpo", "dapo"):
        assert torch.allclose(weights[loss_type], weights[loss_type][0].expand(4))


def test_grpo_kl_term_is_k3_and_zero_at_the_reference():
    logp, mask, adv = _tensors()
    base = rl.grpo_loss(logp, None, None, adv, mask, beta=0.0)
    same = rl.grpo_loss(logp, None, logp.clone(), adv, mask, beta=0.5)
    assert math.isclose(base.item(), same.item(), rel_tol=1e-12)
    ref = logp - 0.3
    with_kl = rl.grpo_loss(logp, None, ref, adv, mask, beta=0.5, kl_bias_correction=False)
    k3 = rl.masked_mean(rl.kl_k3(logp, ref), mask, dim=-1).mean()
    assert math.isclose(with_kl.item(), base.item() + 0.5 * k3.item(), rel_tol=1e-9)
    with pytest.raises(ValueError, match="ref_logp"):
        rl.grpo_loss(logp, None, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="loss_type"):
        rl.grpo_loss(logp, None, None, adv, mask, loss_type="gspo")


def test_grpo_clip_higher_lets_good_tokens_grow_further():
    old = torch.zeros(1, 1, dtype=torch.float64)
    new = torch.full((1, 1), math.log(1.25), dtype=torch.float64, requires_grad=True)
    adv = torch.ones(1, dtype=torch.float64)
    rl.grpo_loss(new, old, None, adv, torch.ones(1, 1), epsilon_low=0.2).backward()
    assert new.grad.item() == 0                    # ratio 1.25 > 1.2: clipped
    new.grad = None
    rl.grpo_loss(new, old, None, adv, torch.ones(1, 1), epsilon_low=0.2,
                 epsilon_high=0.28).backward()
    assert new.grad.item() < 0                     # 1.25 < 1.28: still pushed up


def test_masked_helpers():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert math.isclose(rl.masked_mean(x, m).item(), 2.0)
    assert torch.allclose(rl.masked_mean(x, m, dim=-1), torch.tensor([1.5, 3.0]))
    assert rl.masked_mean(x, torch.zeros_like(m)).item() == 0.0
    w = rl.masked_whiten(x, m)
    assert abs(rl.masked_mean(w, m).item()) < 1e-6 and w[0, 2] == 0


def test_k3_in_the_loss_follows_the_gradient_of_kl_ref_pi_and_ratio_k3_that_of_kl_pi_ref():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, generator=gen, dtype=torch.float64)
    ref = logits + torch.randn(7, generator=gen, dtype=torch.float64)
    g = rl.expected_kl_gradients(logits, ref)
    assert torch.allclose(g["E[grad k3]"], g["grad KL(ref||pi)"], atol=1e-10)
    assert torch.allclose(g["E[grad ratio*k3]"], g["grad KL(pi||ref)"], atol=1e-10)
    assert torch.allclose(g["E[grad k1]"], torch.zeros(7, dtype=torch.float64), atol=1e-12)
    # the two directions really differ here, so the first two checks can tell them apart
    assert (g["grad KL(ref||pi)"] - g["grad KL(pi||ref)"]).abs().max() > 0.05
    # a Monte Carlo run of the actual per-sample loss term agrees with the exact expectation
    theta = logits.clone().requires_grad_(True)
    log_pi, log_ref = torch.log_softmax(theta, -1), torch.log_softmax(ref, -1)
    x = torch.multinomial(log_pi.exp().detach(), 400_000, replacement=True, generator=gen)
    rl.kl_k3(log_pi[x], log_ref[x]).mean().backward()
    assert torch.allclose(theta.grad, g["E[grad k3]"], atol=0.02)
