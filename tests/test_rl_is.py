"""``rl.rollout_is_weights`` (the sampler/trainer mismatch correction) against TRL's own code.

TRL computes its ``vllm_importance_sampling_correction`` inside
``GRPOTrainer._generate_and_score_completions``; ``utils.trl_check.trl_rollout_is`` runs that
method on a tiny real trainer with our completions, sampler log-probs (NaN for missing ones) and
trainer log-probs. Weights and the five ``sampling/*`` metrics must agree for all four modes, and
the weighted loss must agree with TRL's ``_compute_loss`` in value and gradient. Then the
properties: constant weights, exact 1 on-policy, a masked sequence leaves the policy term, errors.
"""

from __future__ import annotations

import math

import pytest
import torch

from utils import rl, trl_check

TOL = 1e-6
LENGTHS = [6, 3, 1, 5, 6, 2, 4, 6]
WIDTH = 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return trl_check.tiny_model_dir(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="module")
def trainer(model_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("grpo-is"))
    return trl_check.tiny_grpo_trainer(model_dir, out, per_device_train_batch_size=len(LENGTHS))


def rollout_tensors(seed=0, noise=0.4, lengths=LENGTHS):
    """Trainer and sampler log-probs (float32, as TRL's sampler tensor is), a right-padded mask."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    mask = (torch.arange(WIDTH) < torch.tensor(lengths)[:, None]).float()
    trainer_logp = -torch.rand(batch, WIDTH, generator=gen) * 3 - 0.05
    sampler_logp = trainer_logp + noise * torch.randn(batch, WIDTH, generator=gen)
    return trainer_logp, sampler_logp, mask


def with_gaps(trainer_logp, sampler_logp, mask):
    """NaN where the sampler gave no log-prob, and garbage (inf, NaN, huge) on the padding."""
    sampler_logp, trainer_logp = sampler_logp.clone(), trainer_logp.clone()
    sampler_logp[1, 0] = sampler_logp[4, 5] = math.nan
    pad = ~mask.bool()
    sampler_logp[pad] = torch.tensor([math.inf, -math.inf, math.nan, 1e9]).repeat(8)[: pad.sum()]
    trainer_logp[pad] = -1e9
    return trainer_logp, sampler_logp


CLIPS = [(3.0, None), (1.5, 0.5), (None, 0.8), (None, None)]
CASES = [(mode, clip_max, clip_min) for mode in rl.IS_MODES for clip_max, clip_min in CLIPS
         if not (mode.endswith("_truncate") and clip_max is None and clip_min is None)]


@pytest.mark.parametrize("mode,clip_max,clip_min", CASES)
def test_weights_and_metrics_equal_trl(trainer, mode, clip_max, clip_min):
    trainer_logp, sampler_logp, mask = rollout_tensors(seed=1, noise=0.8)  # so the bounds bite
    trainer_logp, sampler_logp = with_gaps(trainer_logp, sampler_logp, mask)
    theirs, their_metrics = trl_check.trl_rollout_is(trainer, trainer_logp, sampler_logp, mask,
                                                     mode, clip_max, clip_min)
    ours, metrics = rl.rollout_is_weights(trainer_logp, sampler_logp, mask, mode, clip_max,
                                          clip_min)
    assert ours.shape == mask.shape
    assert theirs.shape == ((len(LENGTHS), 1) if mode.startswith("sequence") else mask.shape)
    assert torch.allclose(ours, theirs.expand_as(ours).to(ours.dtype), atol=TOL, rtol=TOL)
    assert metrics.keys() == their_metrics.keys()
    for name, value in their_metrics.items():
        assert metrics[name] == pytest.approx(value, rel=TOL, abs=TOL), name
    assert all(math.isfinite(v) for v in metrics.values())
    # Not vacuous: each bound given is crossed by some real ratio here.
    level = mode.split("_")[0]
    unbounded, _ = rl.rollout_is_weights(trainer_logp, sampler_logp, mask, f"{level}_mask", None,
                                         None)
    real = mask.bool() if level == "token" else torch.ones_like(mask, dtype=torch.bool)
    assert clip_max is None or (unbounded[real] > clip_max).any()
    assert clip_min is None or (unbounded[real] < clip_min).any()


def test_a_missing_sampler_logprob_means_no_correction_and_no_evidence():
    trainer_logp, sampler_logp, mask = rollout_tensors(seed=2)
    trainer_logp, sampler_logp = with_gaps(trainer_logp, sampler_logp, mask)
    weights, metrics = rl.rollout_is_weights(trainer_logp, sampler_logp, mask, "token_truncate")
    assert weights[1, 0] == 1.0 and weights[4, 5] == 1.0
    real = mask.bool() & ~torch.isnan(sampler_logp)
    delta = (trainer_logp - sampler_logp).abs()[real]
    assert metrics["sampling/sampling_logp_difference/mean"] == pytest.approx(delta.mean().item())
    assert metrics["sampling/sampling_logp_difference/max"] == pytest.approx(delta.max().item())


def test_an_empty_completion_equals_trl(trainer):
    lengths = [6, 0, 1, 5, 6, 2, 4, 6]
    trainer_logp, sampler_logp, mask = rollout_tensors(seed=3, lengths=lengths)
    for mode in rl.IS_MODES:
        theirs, their_metrics = trl_check.trl_rollout_is(trainer, trainer_logp, sampler_logp,
                                                         mask, mode, 3.0, 0.5)
        ours, metrics = rl.rollout_is_weights(trainer_logp, sampler_logp, mask, mode, 3.0, 0.5)
        assert torch.allclose(ours, theirs.expand_as(ours), atol=TOL, rtol=TOL), mode
        assert metrics == pytest.approx(their_metrics, rel=TOL, abs=TOL), mode


# --------------------------------------------------------------------------------------------
# The weighted loss: TRL's _compute_loss multiplies the policy term, then adds the KL
# --------------------------------------------------------------------------------------------


def loss_inputs(seed=4):
    trainer_logp, sampler_logp, mask = rollout_tensors(seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    logp = trainer_logp + 0.1 * torch.randn(trainer_logp.shape, generator=gen)  # a later step
    ref_logp = trainer_logp + 0.5 * torch.randn(trainer_logp.shape, generator=gen)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.25, 0.0, 1.0])
    advantages = rl.group_advantages(rewards, num_generations=4)
    return logp, trainer_logp, sampler_logp, ref_logp, advantages, mask


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
@pytest.mark.parametrize("mode", rl.IS_MODES)
def test_weighted_loss_and_gradient_equal_trl(model_dir, tmp_path, trainer, loss_type, mode):
    beta = 0.04
    loss_trainer = trl_check.tiny_grpo_trainer(model_dir, str(tmp_path / "grpo"),
                                               loss_type=loss_type, beta=beta)
    logp, trainer_logp, sampler_logp, ref_logp, advantages, mask = loss_inputs()
    theirs_ratio, _ = trl_check.trl_rollout_is(trainer, trainer_logp, sampler_logp, mask, mode,
                                               2.0, 0.5)
    theirs_logp = logp.clone().requires_grad_(True)
    theirs = trl_check.trl_grpo_loss(loss_trainer, theirs_logp, trainer_logp, ref_logp,
                                     advantages, mask, importance_sampling_ratio=theirs_ratio)
    theirs.backward()

    weights, _ = rl.rollout_is_weights(trainer_logp, sampler_logp, mask, mode, 2.0, 0.5)
    ours_logp = logp.clone().requires_grad_(True)
    ours = rl.grpo_loss(ours_logp, trainer_logp, ref_logp, advantages, mask, beta=beta,
                        loss_type=loss_type, is_weights=weights)
    ours.backward()
    assert abs(ours.item() - theirs.item()) < TOL
    assert torch.allclose(ours_logp.grad, theirs_logp.grad, atol=TOL, rtol=0)

    # Where the weight goes matters: weighting the KL as well no longer matches TRL.
    terms = rl.grpo_per_token_terms(logp, trainer_logp, ref_logp, advantages, beta)
    both = rl.aggregate_loss(terms["loss"] * weights, mask, loss_type)
    assert abs(both.item() - theirs.item()) > 1e-4
    # Not vacuous: the correction changes TRL's loss here.
    plain = trl_check.trl_grpo_loss(loss_trainer, logp, trainer_logp, ref_logp, advantages, mask)
    assert abs(plain.item() - theirs.item()) > 1e-4


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


def test_weights_are_constants():
    logp, trainer_logp, sampler_logp, _, advantages, mask = loss_inputs(seed=5)
    live = trainer_logp.clone().requires_grad_(True)
    weights, _ = rl.rollout_is_weights(live, sampler_logp.requires_grad_(True), mask,
                                       "token_truncate", 2.0, 0.5)
    assert not weights.requires_grad
    # Even weights that require grad are used as constants: no gradient reaches them, and the
    # policy gradient is the unweighted one scaled token by token.
    leaf = weights.clone().requires_grad_(True)
    logp_w = logp.clone().requires_grad_(True)
    rl.grpo_loss(logp_w, trainer_logp, None, advantages, mask, loss_type="bnpo",
                 is_weights=leaf).backward()
    assert leaf.grad is None
    logp_1 = logp.clone().requires_grad_(True)
    rl.grpo_loss(logp_1, trainer_logp, None, advantages, mask, loss_type="bnpo").backward()
    assert torch.allclose(logp_w.grad, logp_1.grad * weights, atol=TOL, rtol=0)
    assert not torch.allclose(logp_w.grad, logp_1.grad)


@pytest.mark.parametrize("mode", rl.IS_MODES)
def test_on_policy_weights_are_one_and_change_nothing(mode):
    logp, _, _, ref_logp, advantages, mask = loss_inputs(seed=6)
    for clip_max, clip_min in [(3.0, None), (1.5, 0.5)]:
        weights, metrics = rl.rollout_is_weights(logp, logp.clone(), mask, mode, clip_max, clip_min)
        assert torch.equal(weights, torch.ones_like(weights))
        assert metrics["sampling/sampling_logp_difference/max"] == 0.0
        for stat in ("min", "mean", "max"):
            assert metrics[f"sampling/importance_sampling_ratio/{stat}"] == 1.0
    for loss_type in rl.LOSS_TYPES:
        plain_logp = logp.clone().requires_grad_(True)
        plain = rl.grpo_loss(plain_logp, None, ref_logp, advantages, mask, beta=0.04,
                             loss_type=loss_type)
        plain.backward()
        weighted_logp = logp.clone().requires_grad_(True)
        weighted = rl.grpo_loss(weighted_logp, None, ref_logp, advantages, mask, beta=0.04,
                                loss_type=loss_type, is_weights=weights)
        weighted.backward()
        assert weighted.item() == plain.item()
        assert torch.equal(weighted_logp.grad, plain_logp.grad)


def test_sequence_mask_drops_a_sequence_from_the_policy_term():
    logp, _, _, ref_logp, advantages, mask = loss_inputs(seed=7)
    sampler_logp = logp.clone()
    sampler_logp[2, 0] -= 2.0  # the trainer finds row 2 e^2 = 7.4x likelier than the sampler did
    weights, metrics = rl.rollout_is_weights(logp, sampler_logp, mask)  # sequence_mask, 3.0
    assert torch.all(weights[2] == 0) and torch.all(weights[[0, 1, 3, 4, 5, 6, 7]] == 1)
    assert metrics["sampling/importance_sampling_ratio/min"] == 0.0
    assert metrics["sampling/sampling_logp_difference/max"] == pytest.approx(2.0)
    assert advantages[2] != 0

    masked_logp = logp.clone().requires_grad_(True)
    masked = rl.grpo_loss(masked_logp, None, None, advantages, mask, is_weights=weights)
    masked.backward()
    assert torch.all(masked_logp.grad[2] == 0)
    # As in TRL, the row still counts in the normalisation: zero advantage, same loss.
    no_adv = advantages.clone()
    no_adv[2] = 0.0
    assert masked.item() == pytest.approx(rl.grpo_loss(logp, None, None, no_adv, mask).item())
    # The KL is not weighted: the dropped row is still pulled towards the reference.
    kl_logp = logp.clone().requires_grad_(True)
    rl.grpo_loss(kl_logp, None, ref_logp, advantages, mask, beta=0.04,
                 is_weights=weights).backward()
    assert kl_logp.grad[2, 0] != 0
    # token_mask drops only the one token.
    token_weights, _ = rl.rollout_is_weights(logp, sampler_logp, mask, "token_mask")
    assert token_weights[2, 0] == 0 and token_weights.sum() == token_weights.numel() - 1


def test_low_precision_trainer_logprobs_are_compared_in_fp32():
    trainer_logp, sampler_logp, mask = rollout_tensors(seed=8, noise=0.01)
    weights, _ = rl.rollout_is_weights(trainer_logp.bfloat16(), sampler_logp, mask, "token_mask")
    assert weights.dtype == torch.float32
    exact = torch.exp(trainer_logp.bfloat16().float() - sampler_logp) * mask + (1 - mask)
    assert torch.allclose(weights, exact, atol=1e-6, rtol=0)


def test_bad_arguments_raise_clear_errors(tmp_path):
    from trl import GRPOConfig

    trainer_logp, sampler_logp, mask = rollout_tensors()
    with pytest.raises(ValueError, match="mode must be one of"):
        rl.rollout_is_weights(trainer_logp, sampler_logp, mask, "sequence")
    with pytest.raises(ValueError, match="clip_min .* must be below clip_max"):
        rl.rollout_is_weights(trainer_logp, sampler_logp, mask, "token_mask", 1.0, 2.0)
    with pytest.raises(ValueError, match="needs clip_max or clip_min"):
        rl.rollout_is_weights(trainer_logp, sampler_logp, mask, "token_truncate", None, None)
    with pytest.raises(ValueError, match="one \\(B, T\\) shape"):
        rl.rollout_is_weights(trainer_logp, sampler_logp[:, :4], mask)
    with pytest.raises(ValueError, match="one \\(B, T\\) shape"):
        rl.rollout_is_weights(trainer_logp[0], sampler_logp[0], mask[0])
    advantages = torch.zeros(len(LENGTHS))
    for bad in (torch.ones(len(LENGTHS)), torch.ones(len(LENGTHS), 3), torch.ones(3, WIDTH)):
        with pytest.raises(ValueError, match="is_weights must be"):
            rl.grpo_loss(trainer_logp, None, None, advantages, mask, is_weights=bad)
    # TRL refuses the same two bound settings when it builds its config.
    with pytest.raises(ValueError, match="must be less than"):
        GRPOConfig(output_dir=str(tmp_path), use_cpu=True,
                   vllm_importance_sampling_clip_min=2.0, vllm_importance_sampling_clip_max=1.0)
    with pytest.raises(ValueError, match="At least one of"):
        GRPOConfig(output_dir=str(tmp_path), use_cpu=True,
                   vllm_importance_sampling_mode="token_truncate",
                   vllm_importance_sampling_clip_max=None)


def test_defaults_are_trls(tmp_path):
    import inspect

    from trl import GRPOConfig

    config = GRPOConfig(output_dir=str(tmp_path), use_cpu=True)
    params = inspect.signature(rl.rollout_is_weights).parameters
    assert params["mode"].default == config.vllm_importance_sampling_mode
    assert params["clip_max"].default == config.vllm_importance_sampling_clip_max
    assert params["clip_min"].default == config.vllm_importance_sampling_clip_min
