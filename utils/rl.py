"""The RL algorithms of the course, small and exact: returns, GAE, PPO, KL estimators, GRPO.

A few lines of torch on plain tensors each, to read next to the paper; ``tests/test_rl_vs_trl.py``
checks them against TRL's own ``GRPOTrainer``. Conventions: time runs along the **last** axis
(``(T,)`` or ``(B, T)``); ``mask`` is 1.0 on real tokens and 0.0 on padding; ``logp`` are the
log-probs of the sampled tokens; losses are scalars to *minimise* (the papers' objectives negated).
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
KL_ESTIMATORS = ("k1", "k2", "k3")
IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


# --------------------------------------------------------------------------------------------
# Masked reductions
# --------------------------------------------------------------------------------------------


def masked_mean(x: Tensor, mask: Tensor | None = None, dim: int | None = None) -> Tensor:
    """Mean of ``x`` where ``mask`` is 1 (all of ``x`` without a mask); all-padding gives 0."""
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Standardise ``x`` over the masked entries (PPO whitens its advantages over the batch)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


# --------------------------------------------------------------------------------------------
# Returns and advantages (single-agent RL: REINFORCE, actor-critic, PPO)
# --------------------------------------------------------------------------------------------


def discounted_returns(rewards: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}`` for one episode ``(T,)`` or a batch ``(B, T)``.

    The episode ends after its last step (``G_T = 0``); masked padding steps get return 0.
    Taught in 01 §1.
    """
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if mask is not None:
        rewards = rewards * mask.to(rewards.dtype)
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        returns[..., t] = running
    if mask is not None:
        returns = returns * mask.to(returns.dtype)
    return returns


def gae(
    rewards: Tensor, values: Tensor, gamma: float, lam: float, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Generalised Advantage Estimation (Schulman et al., 2016). Returns ``(advantages, returns)``.

    ``values`` holds ``V(s_0..s_T)``, one more entry than ``rewards``: the last is the bootstrap
    value (0 for a terminal state; with a ``mask``, the entry after the last real step).
    ``A_t = sum_l (gamma lam)^l delta_{t+l}`` with ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``;
    ``returns = A + V`` is the critic's target. ``lam = 1``: Monte-Carlo; ``lam = 0``: TD error.
    Taught in 01 §3 and 02 §2.
    """
    rewards = torch.as_tensor(rewards)
    values = torch.as_tensor(values, dtype=rewards.dtype if rewards.is_floating_point() else None)
    if not rewards.is_floating_point():
        rewards = rewards.to(values.dtype)
    if values.shape[-1] != rewards.shape[-1] + 1:
        raise ValueError(
            "gae: values must hold V(s_0..s_T), one more entry than rewards along time (the last one "
            f"is the bootstrap value, 0 for a terminal state); got rewards {tuple(rewards.shape)} "
            f"and values {tuple(values.shape)}"
        )
    steps = rewards.shape[-1]
    m = torch.ones_like(rewards) if mask is None else mask.to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(steps - 1, -1, -1):
        delta = rewards[..., t] + gamma * values[..., t + 1] - values[..., t]
        running = m[..., t] * (delta + gamma * lam * running)
        advantages[..., t] = running
    returns = (advantages + values[..., :steps]) * m
    return advantages, returns


# --------------------------------------------------------------------------------------------
# PPO (Schulman et al., 2017) and its RLHF form (Ziegler et al., 2019; Ouyang et al., 2022)
# --------------------------------------------------------------------------------------------


def _per_token(advantages: Tensor, like: Tensor) -> Tensor:
    """Broadcast per-sequence advantages ``(B,)`` to per-token ``(B, T)``."""
    advantages = torch.as_tensor(advantages, dtype=like.dtype, device=like.device)
    if advantages.dim() == like.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    return advantages


def ppo_policy_loss(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    clip_eps: float = 0.2,
) -> Tensor:
    """PPO's clipped surrogate, as a loss: ``-mean_t min(rho_t A_t, clip(rho_t, 1-eps, 1+eps) A_t)``.

    ``rho_t = exp(logp_new - logp_old)``, the mean over all real tokens; ``advantages`` is
    ``(B, T)`` or ``(B,)``. Taught in 02 §2.
    """
    ratio = torch.exp(logp_new - logp_old)
    adv = _per_token(advantages, logp_new)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    return masked_mean(-torch.min(unclipped, clipped), mask)


def clip_fraction(
    logp_new: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor | None = None,
    epsilon_low: float = 0.2, epsilon_high: float | None = None,
) -> Tensor:
    """Share of tokens whose gradient the clip switched off (ratio outside the trust region on the
    side that the advantage pushes it). A health metric: a few percent is normal."""
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    ratio = torch.exp(logp_new - logp_old)
    adv = _per_token(advantages, logp_new)
    clipped = ((ratio < 1 - epsilon_low) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
    return masked_mean(clipped.to(logp_new.dtype), mask)


def value_loss(
    values: Tensor,
    returns: Tensor,
    mask: Tensor | None = None,
    old_values: Tensor | None = None,
    clip_eps: float | None = None,
) -> Tensor:
    """The critic's regression loss ``0.5 * mean (V - R)^2``.

    With ``old_values`` and ``clip_eps``, PPO's clipped value loss: the prediction moves at most
    ``clip_eps`` from its rollout-time value and the larger of the two errors counts.
    Taught in 02 §2.
    """
    unclipped = (values - returns) ** 2
    if clip_eps is None:
        return 0.5 * masked_mean(unclipped, mask)
    if old_values is None:
        raise ValueError("value_loss: clip_eps needs old_values (the critic's values at rollout time)")
    v_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
    return 0.5 * masked_mean(torch.max(unclipped, (v_clipped - returns) ** 2), mask)


def kl_penalized_rewards(
    scores: Tensor,
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    beta: float,
    estimator: str = "k1",
) -> Tensor:
    """RLHF-style PPO rewards: a KL penalty on every token, the score on the last real token.

    ``r_t = -beta * KL_t + [t is last] * score`` (``k1`` by default, as InstructGPT). The KL is in
    the *reward*, credited by GAE like any reward; GRPO puts it in the *loss* (:func:`grpo_loss`).
    Taught in 02 §2.
    """
    mask = mask.to(logp.dtype)
    rewards = -beta * kl_estimate(logp, ref_logp, estimator) * mask
    lengths = mask.sum(-1).long()
    if (lengths == 0).any():
        raise ValueError("kl_penalized_rewards: a completion has no tokens (mask row of zeros)")
    last = (lengths - 1).unsqueeze(-1)
    scores = torch.as_tensor(scores, dtype=rewards.dtype, device=rewards.device)
    return rewards.scatter_add(-1, last, scores.reshape(-1, 1))


# --------------------------------------------------------------------------------------------
# KL estimators (Schulman, "Approximating KL divergence", 2020)
# --------------------------------------------------------------------------------------------


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k1 = log(q/p) = -log r``: unbiased for KL(q||p), high variance, can be negative.
    Taught in 02 §3."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k2 = (log r)^2 / 2``: biased, low variance, always >= 0. Taught in 02 §3."""
    return 0.5 * (ref_logp - logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k3 = (r - 1) - log r``: unbiased, low variance, always >= 0. DeepSeekMath's GRPO uses it.
    Taught in 02 §3 and 02 §4.4."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-sample estimate of KL(q || p) from ``x ~ q``: ``logp = log q(x)`` (the sampling
    policy), ``ref_logp = log p(x)``, ``r = p(x) / q(x)``; ``estimator`` is k1, k2 or k3.
    Taught in 02 §3.
    """
    functions = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
    if estimator not in functions:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}; got {estimator!r}")
    return functions[estimator](logp, ref_logp)


# --------------------------------------------------------------------------------------------
# GRPO (Shao et al., 2024, DeepSeekMath) and its loss variants (Dr. GRPO, DAPO), TRL's layout
# --------------------------------------------------------------------------------------------


def _normalize_scale(scale) -> str:
    if scale is None or scale is False or scale == "none":
        return "none"
    if scale is True or scale == "group":
        return "group"
    if scale == "batch":
        return "batch"
    raise ValueError(f"scale must be 'group', 'batch' or None; got {scale!r}")


def group_advantages(
    rewards: Tensor, num_generations: int, scale: str | None = "group", eps: float = 1e-4
) -> Tensor:
    """GRPO's group-relative advantages, one per completion.

    ``rewards`` is ``(N,)`` in TRL's layout, blocks of ``num_generations`` completions per prompt.
    Advantage = reward minus its group's mean, divided by the (Bessel) std of its group
    (``scale="group"``, DeepSeekMath, TRL's default), of the batch (``"batch"``) or by nothing
    (``None``, Dr. GRPO), plus ``eps`` as TRL. A group of equal rewards gets exact zeros, never NaN.
    Taught in 02 §4.2.
    """
    rewards = torch.as_tensor(rewards)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    if rewards.dim() != 1:
        raise ValueError(f"group_advantages: rewards must be 1-D (N,); got shape {tuple(rewards.shape)}")
    if num_generations < 1 or rewards.numel() % num_generations:
        raise ValueError(
            f"group_advantages: {rewards.numel()} rewards do not split into groups of "
            f"num_generations={num_generations}"
        )
    mode = _normalize_scale(scale)
    grouped = rewards.view(-1, num_generations)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    # A group whose rewards are all equal has no signal. Rounding can leave (r - mean) at 1e-8
    # rather than 0 (0.7 * 8 / 8 != 0.7 in float32), which dividing by a std of ~1e-8 (+ eps) would
    # blow up; so compare the rewards themselves and write exact zeros.
    constant = (grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True))
    centered = torch.where(constant, torch.zeros_like(centered), centered).reshape(-1)
    if mode == "none":
        return centered
    if mode == "group":
        std = grouped.std(dim=1, keepdim=True) if num_generations > 1 else torch.zeros_like(grouped)
        std = std.expand_as(grouped).reshape(-1)
    else:
        std = rewards.std() if rewards.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
        std = std.expand_as(rewards)
    denominator = std + eps
    # only zero advantages can meet a zero denominator (eps=0 and a constant group/batch)
    denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return centered / denominator


def grpo_per_token_terms(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    advantages: Tensor,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    kl_bias_correction: bool = True,
    *,
    is_weights: Tensor | None = None,
) -> dict[str, Tensor]:
    """The GRPO objective token by token, before any averaging: a dict of ``(B, T)`` tensors.

    ``ratio`` (``pi_theta / pi_old``: 1 in value on-policy, but it carries the gradient),
    ``surrogate`` (``min(ratio A, clip(ratio, 1-eps_low, 1+eps_high) A)``), ``kl`` (k3, times the
    ratio when ``kl_bias_correction``, TRL's ``use_bias_correction_kl``) and ``loss``
    (``-surrogate * w + beta * kl``; the ``is_weights`` ``w`` weigh the policy term only, as TRL).
    Taught in 02 §4.3.
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    if old_logp is None:  # one gradient step per generation: old policy == current policy
        old_logp = logp.detach()
    ratio = torch.exp(logp - old_logp)
    adv = _per_token(advantages, logp)
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    surrogate = torch.min(ratio * adv, clipped_ratio * adv)
    terms = {"ratio": ratio, "clipped_ratio": clipped_ratio, "surrogate": surrogate}
    loss = -surrogate
    if is_weights is not None:  # the sampler/trainer correction, constants (no gradient)
        if is_weights.dim() != 2 or is_weights.shape[0] != logp.shape[0] or \
                is_weights.shape[1] not in (1, logp.shape[1]):
            raise ValueError(
                f"grpo_loss: is_weights must be (B, T) or (B, 1) for logp {tuple(logp.shape)}; "
                f"got {tuple(is_weights.shape)}"
            )
        loss = loss * is_weights.detach().to(loss.dtype)
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("grpo_loss: beta != 0 needs ref_logp (the reference model's log-probs)")
        kl = kl_k3(logp, ref_logp)
        if kl_bias_correction:
            kl = kl * ratio
        terms["kl"] = kl
        loss = loss + beta * kl
    terms["loss"] = loss
    return terms


def aggregate_loss(
    per_token_loss: Tensor,
    mask: Tensor,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items_in_batch: float | Tensor | None = None,
) -> Tensor:
    """Turn a ``(B, T)`` per-token loss into a scalar, the four ways TRL knows:

    - ``grpo``: mean per sequence, then over sequences (DeepSeekMath; long answers' tokens weigh
      less, a length bias);
    - ``bnpo``: sum over the batch's tokens / their number;
    - ``dr_grpo``: sum / (``B * max_completion_length``, default the padded width), a constant;
    - ``dapo``: sum / the tokens of the whole generation batch (``num_items_in_batch``, default this
      batch's: then it equals ``bnpo``).
    Taught in 02 §4.5.
    """
    mask = mask.to(per_token_loss.dtype)
    total = (per_token_loss * mask).sum()
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return total / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        length = per_token_loss.shape[-1] if max_completion_length is None else max_completion_length
        return total / (per_token_loss.shape[0] * length)
    if loss_type == "dapo":
        count = mask.sum() if num_items_in_batch is None else num_items_in_batch
        count = torch.as_tensor(count, dtype=per_token_loss.dtype, device=per_token_loss.device)
        return total / count.clamp(min=1.0)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}; got {loss_type!r}")


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    beta: float = 0.0,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
    *,
    max_completion_length: int | None = None,
    num_items_in_batch: float | Tensor | None = None,
    kl_bias_correction: bool = True,
    is_weights: Tensor | None = None,
) -> Tensor:
    """The GRPO loss on tensors (log-probs in, scalar out); the step that runs the model is
    :func:`utils.grpo_scratch.grpo_loss`.

    ``J = 1/G sum_i 1/|o_i| sum_t [ min(rho A_i, clip(rho, 1-eps_low, 1+eps_high) A_i)
    - beta * KL_k3(pi_theta || pi_ref) ]`` for ``loss_type="grpo"`` (DeepSeekMath, eq. 3); the
    other loss types only average differently (:func:`aggregate_loss`). ``logp``: ``(B, T)``, with
    grad; ``old_logp``: at sampling time, ``None`` for on-policy; ``ref_logp``: needed only when
    ``beta != 0``; ``advantages``: ``(B,)`` or ``(B, T)``; ``epsilon_high`` defaults to
    ``epsilon_low``; ``is_weights``: :func:`rollout_is_weights`' weights for the policy term.
    Taught in 02 §4.5.
    """
    terms = grpo_per_token_terms(
        logp, old_logp, ref_logp, advantages, beta, epsilon_low, epsilon_high, kl_bias_correction,
        is_weights=is_weights,
    )
    return aggregate_loss(terms["loss"], mask, loss_type, max_completion_length, num_items_in_batch)


# --------------------------------------------------------------------------------------------
# The sampler/trainer mismatch: truncated and masked importance sampling (TIS/MIS)
# --------------------------------------------------------------------------------------------


def rollout_is_weights(
    trainer_logp: Tensor,
    sampler_logp: Tensor,
    mask: Tensor,
    mode: str = "sequence_mask",
    clip_max: float | None = 3.0,
    clip_min: float | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Importance weights ``pi_trainer / pi_sampler`` for samples from a sampler whose numerics
    differ from the trainer's (bf16, other kernels), and TRL's ``sampling/...`` mismatch metrics.

    As TRL's ``vllm_importance_sampling_correction``: ``token_*`` uses each token's ratio,
    ``sequence_*`` the product over the sequence; ``*_truncate`` clamps to ``[clip_min,
    clip_max]``, ``*_mask`` zeroes ratios outside it. NaN in ``sampler_logp`` means ratio 1.
    Returns ``(weights, metrics)``, the weights ``(B, T)`` constants for :func:`grpo_loss`.
    Taught in 06 §11.
    """
    if mode not in IS_MODES:
        raise ValueError(f"rollout_is_weights: mode must be one of {IS_MODES}; got {mode!r}")
    if clip_min is not None and clip_max is not None and clip_min >= clip_max:
        raise ValueError(
            f"rollout_is_weights: clip_min ({clip_min}) must be below clip_max ({clip_max})"
        )
    if mode.endswith("_truncate") and clip_min is None and clip_max is None:
        raise ValueError(f"rollout_is_weights: mode {mode!r} needs clip_max or clip_min")
    if trainer_logp.dim() != 2 or not trainer_logp.shape == sampler_logp.shape == mask.shape:
        raise ValueError(
            "rollout_is_weights: trainer_logp, sampler_logp and mask must share one (B, T) shape; "
            f"got {tuple(trainer_logp.shape)}, {tuple(sampler_logp.shape)}, {tuple(mask.shape)}"
        )
    # at least fp32, like TRL's float32 sampler log-probs: a bf16 difference would round the ratio
    dtype = torch.promote_types(torch.promote_types(trainer_logp.dtype, sampler_logp.dtype),
                                torch.float32)
    trainer_logp = trainer_logp.detach().to(dtype)
    sampler_logp = sampler_logp.detach().to(dtype)
    real = mask.bool()
    # where(), not a product with the mask: padding may hold anything, inf included
    diff = torch.where(real, trainer_logp - sampler_logp, torch.zeros_like(trainer_logp))
    diff = torch.nan_to_num(diff, nan=0.0)  # no sampler log-prob: no correction
    sequence_level = mode.startswith("sequence")
    ratio = torch.exp(diff.sum(-1, keepdim=True) if sequence_level else diff)
    if mode.endswith("_truncate"):
        ratio = torch.clamp(ratio, min=clip_min, max=clip_max)
    else:
        low = -math.inf if clip_min is None else clip_min
        high = math.inf if clip_max is None else clip_max
        ratio = ratio.masked_fill((ratio < low) | (ratio > high), 0.0)

    delta = (trainer_logp - sampler_logp).abs()
    delta = delta[real & ~torch.isnan(delta)]  # a missing log-prob is no evidence of agreement
    flat = ratio.flatten() if sequence_level else ratio[real]

    def stat(x: Tensor, fn) -> float:
        return fn(x).item() if x.numel() else 0.0

    metrics = {
        "sampling/sampling_logp_difference/mean": stat(delta, torch.mean),
        "sampling/sampling_logp_difference/max": stat(delta, torch.max),
        "sampling/importance_sampling_ratio/min": stat(flat, torch.min),
        "sampling/importance_sampling_ratio/mean": stat(flat, torch.mean),
        "sampling/importance_sampling_ratio/max": stat(flat, torch.max),
    }
    return ratio.expand(trainer_logp.shape).contiguous(), metrics


def expected_kl_gradients(logits: Tensor, ref_logits: Tensor) -> dict[str, Tensor]:
    """Which KL does a per-sample KL term in the loss follow? Exact answers on one categorical.

    A term ``k(x)`` on sampled ``x ~ pi`` is differentiated with ``x`` fixed, so the optimiser
    follows ``E_pi[grad k]``, not ``grad E[k]``. For 1-D ``logits`` and ``ref_logits``, returns the
    exact ``"E[grad k3]"`` (the gradient of KL(ref || pi), the other direction from k3's value),
    ``"E[grad ratio*k3]"`` (TRL's default: KL(pi || ref)), ``"E[grad k1]"`` (0 on average) and,
    by autograd, ``"grad KL(ref||pi)"`` and ``"grad KL(pi||ref)"``.
    Taught in 02 §4.4.
    """
    theta = logits.detach().clone().requires_grad_(True)
    log_pi = torch.log_softmax(theta, -1)
    log_ref = torch.log_softmax(ref_logits.detach(), -1)
    weights = log_pi.exp().detach()  # the sampling distribution: no gradient through it
    ratio = torch.exp(log_pi - log_pi.detach())
    objectives = {
        "E[grad k3]": (weights * kl_k3(log_pi, log_ref)).sum(),
        "E[grad ratio*k3]": (weights * ratio * kl_k3(log_pi, log_ref)).sum(),
        "E[grad k1]": (weights * kl_k1(log_pi, log_ref)).sum(),
        "grad KL(ref||pi)": (log_ref.exp() * (log_ref - log_pi)).sum(),
        "grad KL(pi||ref)": (log_pi.exp() * (log_pi - log_ref)).sum(),
    }
    return {name: torch.autograd.grad(value, theta, retain_graph=True)[0]
            for name, value in objectives.items()}
