"""``utils.rl`` against TRL itself: the same tensors through our formulas and through TRL's code.

No copy of TRL's formulas lives here. Each test builds a real, tiny ``trl.GRPOTrainer`` (a random
one-layer Qwen2 and a word-level tokenizer made in memory: nothing is downloaded; see
``utils/trl_check.py``) and calls its own methods:

- the loss: ``GRPOTrainer._compute_loss`` with the per-token log-probs fixed to our tensors (the
  model forward, ``_get_per_token_logps_and_entropies``, is the one method replaced), for every
  ``loss_type`` we implement, with and without the KL term, with TRL's KL bias correction on and
  off, symmetric and clip-higher epsilons. Values and gradients must agree to 1e-6.
- the advantages: ``GRPOTrainer._generate_and_score_completions`` on a batch whose rewards we fix,
  for ``scale_rewards`` group, batch and none.

A last test checks that the comparison has teeth: small changes to our formulas make it fail.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from utils import rl, trl_check

MAX_COMPLETION_LENGTH = 8  # TRL's config value: dr_grpo divides by it, not by the padded width T
TOL = 1e-6


# --------------------------------------------------------------------------------------------
# A real GRPOTrainer, tiny and offline (utils.trl_check builds it and calls its methods)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return trl_check.tiny_model_dir(tmp_path_factory.mktemp("tiny-qwen2"))


def make_trainer(model_dir, tmp_path, **config):
    return trl_check.tiny_grpo_trainer(model_dir, str(tmp_path / "grpo"),
                                       max_completion_length=MAX_COMPLETION_LENGTH, **config)


trl_loss = trl_check.trl_grpo_loss


# --------------------------------------------------------------------------------------------
# Shared tensors: variable lengths, off-policy ratios (so the clip is active), mixed advantages
# --------------------------------------------------------------------------------------------


def batch_tensors(seed=0, batch=8, width=6):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6])[:batch]
    mask = (torch.arange(width) < lengths.unsqueeze(1)).float().double()
    logp = (-torch.rand(batch, width, generator=gen, dtype=torch.float64) * 3 - 0.05)
    old_logp = logp + 0.35 * torch.randn(batch, width, generator=gen, dtype=torch.float64)
    ref_logp = logp + 0.5 * torch.randn(batch, width, generator=gen, dtype=torch.float64)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)[:batch]
    advantages = rl.group_advantages(rewards, num_generations=4)
    return logp, old_logp, ref_logp, advantages, mask


LOSS_CASES = [
    case for case in itertools.product(
        rl.LOSS_TYPES,               # loss_type
        [0.0, 0.04],                 # beta
        [(0.2, None), (0.2, 0.28)],  # (epsilon, epsilon_high): symmetric, DAPO clip-higher
        [True, False],               # use_bias_correction_kl (changes nothing when beta == 0)
    )
    if case[1] != 0.0 or case[3]
]


@pytest.mark.parametrize("loss_type,beta,eps,bias_corr", LOSS_CASES)
def test_loss_and_gradient_equal_trl(model_dir, tmp_path, loss_type, beta, eps, bias_corr):
    epsilon, epsilon_high = eps
    trainer = make_trainer(
        model_dir, tmp_path, loss_type=loss_type, beta=beta, epsilon=epsilon,
        epsilon_high=epsilon_high, use_bias_correction_kl=bias_corr,
    )
    logp, old_logp, ref_logp, advantages, mask = batch_tensors()

    theirs_logp = logp.clone().requires_grad_(True)
    theirs = trl_loss(trainer, theirs_logp, old_logp, ref_logp if beta else None, advantages, mask)
    theirs.backward()

    ours_logp = logp.clone().requires_grad_(True)
    ours = rl.grpo_loss(
        ours_logp, old_logp, ref_logp, advantages, mask, beta=beta, epsilon_low=epsilon,
        epsilon_high=epsilon_high, loss_type=loss_type, max_completion_length=MAX_COMPLETION_LENGTH,
        kl_bias_correction=bias_corr,
    )
    ours.backward()

    assert abs(ours.item() - theirs.item()) < TOL, (loss_type, ours.item(), theirs.item())
    assert torch.allclose(ours_logp.grad, theirs_logp.grad, atol=TOL, rtol=0)
    # The comparison is not vacuous: the clip and the mask both matter on these tensors.
    assert rl.clip_fraction(logp, old_logp, advantages, mask, epsilon, epsilon_high) > 0


def test_on_policy_loss_equals_trl(model_dir, tmp_path):
    """First iteration (old_logp is None in our API, absent in TRL's inputs): ratio == 1."""
    trainer = make_trainer(model_dir, tmp_path, loss_type="grpo", beta=0.04)
    logp, _, ref_logp, advantages, mask = batch_tensors(seed=3)
    theirs_logp = logp.clone().requires_grad_(True)
    theirs = trl_loss(trainer, theirs_logp, None, ref_logp, advantages, mask)
    theirs.backward()
    ours_logp = logp.clone().requires_grad_(True)
    ours = rl.grpo_loss(ours_logp, None, ref_logp, advantages, mask, beta=0.04, loss_type="grpo")
    ours.backward()
    assert abs(ours.item() - theirs.item()) < TOL
    assert torch.allclose(ours_logp.grad, theirs_logp.grad, atol=TOL, rtol=0)


def test_dapo_normalises_by_the_whole_generation_batch(model_dir, tmp_path):
    """With gradient accumulation, DAPO divides by the tokens of all micro-batches together."""
    trainer = make_trainer(model_dir, tmp_path, loss_type="dapo")
    logp, old_logp, _, advantages, mask = batch_tensors(seed=5)
    everything = mask.sum() * 2.5  # this micro-batch is 40% of the generation batch's tokens
    theirs = trl_loss(trainer, logp, old_logp, None, advantages, mask, num_items_in_batch=everything)
    ours = rl.grpo_loss(logp, old_logp, None, advantages, mask, loss_type="dapo",
                        num_items_in_batch=everything)
    assert abs(ours.item() - theirs.item()) < TOL


# --------------------------------------------------------------------------------------------
# Advantages: TRL's _generate_and_score_completions with fixed rewards
# --------------------------------------------------------------------------------------------

REWARDS = [0.0, 1.0, 0.5, 0.5,   # a mixed group
           1.0, 1.0, 1.0, 1.0,   # a constant group: zero advantages, never NaN
           0.0, 0.0, 0.0, 2.0,   # one success in four
           0.25, 0.75, 0.0, 1.0]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_equal_trl(model_dir, scale):
    theirs = trl_check.trl_group_advantages(REWARDS, 4, scale, model_dir=model_dir)
    ours = rl.group_advantages(torch.tensor(REWARDS), num_generations=4,
                               scale=None if scale == "none" else scale)
    assert not torch.isnan(ours).any()
    assert torch.allclose(ours, theirs.to(ours.dtype), atol=TOL, rtol=0), (ours, theirs)
    assert torch.all(ours[4:8] == 0)


# --------------------------------------------------------------------------------------------
# The comparison has teeth: a changed formula no longer matches TRL
# --------------------------------------------------------------------------------------------

MUTANTS = {
    # dr_grpo dividing by the padded width instead of max_completion_length
    "dr_grpo": lambda lp, old, ref, adv, m: rl.grpo_loss(
        lp, old, None, adv, m, loss_type="dr_grpo"),
    # grpo averaging over all tokens (that is bnpo) instead of per sequence
    "grpo": lambda lp, old, ref, adv, m: rl.grpo_loss(lp, old, None, adv, m, loss_type="bnpo"),
    # the ratio not clipped
    "bnpo": lambda lp, old, ref, adv, m: rl.grpo_loss(
        lp, old, None, adv, m, epsilon_low=100.0, loss_type="bnpo"),
    # the k1 estimator in place of k3
    "dapo": lambda lp, old, ref, adv, m: rl.aggregate_loss(
        -torch.min(torch.exp(lp - old) * adv[:, None],
                   torch.exp(lp - old).clamp(0.8, 1.2) * adv[:, None]) + 0.04 * (lp - ref),
        m, "dapo"),
}


@pytest.mark.parametrize("loss_type", sorted(MUTANTS))
def test_a_changed_formula_fails_the_comparison(model_dir, tmp_path, loss_type):
    beta = 0.04 if loss_type == "dapo" else 0.0
    trainer = make_trainer(model_dir, tmp_path, loss_type=loss_type, beta=beta,
                           use_bias_correction_kl=False)
    logp, old_logp, ref_logp, advantages, mask = batch_tensors()
    theirs = trl_loss(trainer, logp, old_logp, ref_logp if beta else None, advantages, mask)
    mutant = MUTANTS[loss_type](logp, old_logp, ref_logp, advantages, mask)
    assert abs(mutant.item() - theirs.item()) > 1e-3
