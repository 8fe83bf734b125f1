"""The RL algorithms of the course, small and exact: returns, GAE, PPO, KL estimators, GRPO.

Everything here is a few lines of torch on plain tensors, so that each formula can be read next to
its paper and checked against TRL (``tests/test_rl_vs_trl.py`` calls TRL's own ``GRPOTrainer`` on
the same tensors and asserts equal losses and advantages).

Shapes and conventions used throughout:

- Time runs along the **last** axis. ``rewards`` is ``(T,)`` for one episode or ``(B, T)`` for a
  batch; per-token tensors (``logp``, ``mask``...) are ``(B, T)`` with ``B`` completions of at most
  ``T`` tokens.
- ``mask`` is 1.0 on real tokens / steps and 0.0 on padding after the end of an episode.
- ``logp`` are log-probabilities of the tokens that were actually sampled, one per position.
- Losses are returned as scalars to *minimise* (the objectives of the papers with a minus sign).
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
    """Mean of ``x`` over the entries where ``mask`` is 1 (all entries when ``mask`` is None).

    The count is clamped at 1, so an all-padding row gives 0 rather than NaN.
    """
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

    The episode is assumed to end after its last step (``G_T = 0``, no bootstrap). With a ``mask``,
    padding steps get return 0 and do not leak into the real steps before them.
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

    Convention: ``values`` has **one more** entry than ``rewards`` along time. ``values[..., t]`` is
    ``V(s_t)`` for ``t = 0..T-1`` and ``values[..., T]`` is the bootstrap value of the state after
    the last step: 0 when the episode terminated there, ``V(s_T)`` when it was cut off by a time
    limit. With a ``mask`` (padded batch), the value right after an episode's last real step is its
    bootstrap value (put 0 there for a terminal state), and padding steps get advantage 0.

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)``, ``A_t = sum_l (gamma * lam)^l delta_{t+l}`` and
    ``returns = A + V(s_t)``, the regression target of the critic. ``lam = 1`` gives Monte-Carlo
    returns minus the baseline; ``lam = 0`` the one-step TD error.
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

    ``rho_t = exp(logp_new - logp_old)``. The mean runs over all real tokens of the batch.
    ``advantages`` is per token ``(B, T)`` or per sequence ``(B,)``.
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

    With ``old_values`` and ``clip_eps`` it is PPO's clipped value loss: the new prediction may move
    at most ``clip_eps`` from the one made at rollout time, and the larger (pessimistic) of the
    clipped and unclipped errors is taken, ``0.5 * mean max((V - R)^2, (V_clip - R)^2)``.
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

    ``r_t = -beta * KL_t + [t is the last token] * score``, with ``KL_t`` the per-token estimate of
    KL(policy || reference) (``k1 = logp - ref_logp`` as in InstructGPT and TRL's PPOTrainer).
    ``scores`` is one scalar per completion ``(B,)`` (a reward model or a verifier). The KL lives in
    the *reward*, so it is discounted and credited by GAE like any reward; GRPO instead puts it in
    the *loss* (see :func:`grpo_loss`).
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
    """``k1 = log(q/p) = -log r``: unbiased for KL(q||p), high variance, can be negative."""
    return logp - ref_logp


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k2 = (log r)^2 / 2``: biased, low variance, always >= 0."""
    return 0.5 * (ref_logp - logp) ** 2


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """``k3 = (r - 1) - log r``: unbiased, low variance, always >= 0. DeepSeekMath's GRPO uses it."""
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str = "k3") -> Tensor:
    """Per-sample estimate of KL(q || p) from samples ``x ~ q``.

    ``logp = log q(x)`` (the policy that sampled ``x``), ``ref_logp = log p(x)`` (the reference),
    ``r = p(x) / q(x)``. ``estimator`` is ``"k1"``, ``"k2"`` or ``"k3"``.
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

    ``rewards`` is ``(N,)`` laid out as TRL lays it out: consecutive blocks of ``num_generations``
    completions of the same prompt (``[p0 g0, p0 g1, ..., p1 g0, ...]``). Each completion's
    advantage is its reward minus the mean of its group, divided by

    - ``scale="group"``: the standard deviation of its group (DeepSeekMath; TRL's default),
    - ``scale="batch"``: the standard deviation of the whole batch (TRL's ``scale_rewards="batch"``),
    - ``scale=None``: nothing (Dr. GRPO: scaling by the std over-weights too-easy/too-hard prompts).

    Standard deviations are unbiased (Bessel), and ``eps = 1e-4`` is added as TRL does. A group whose
    rewards are all equal carries no signal: its advantages are exactly zero, never NaN (TRL gives
    the same zeros, except that float rounding can leave it with values of order 1e-4 there).
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
    """The GRPO objective token by token, before any averaging. Returns a dict of ``(B, T)`` tensors:

    - ``ratio``: ``pi_theta / pi_old`` per token (1 in value on the first iteration, but it carries
      the gradient ``grad log pi_theta``),
    - ``surrogate``: ``min(ratio * A, clip(ratio, 1-eps_low, 1+eps_high) * A)``, the PPO term,
    - ``kl``: the k3 estimate of KL(pi_theta || pi_ref), times ``ratio`` when ``kl_bias_correction``
      (TRL >= 1.x's default ``use_bias_correction_kl=True``; DeepSeekMath's formula has no factor),
    - ``loss``: ``-surrogate + beta * kl``, the per-token loss that the normalisations average.
      With ``is_weights`` (:func:`rollout_is_weights`) it is ``-surrogate * w + beta * kl``: TRL
      weights the policy term only, never the KL.
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

    - ``grpo``: mean over each sequence's tokens, then over sequences (DeepSeekMath). A long
      completion's tokens each weigh less: a length bias.
    - ``bnpo``: sum over all tokens of the (local) batch / their number.
    - ``dr_grpo``: sum over all tokens / (``B * max_completion_length``), a constant (Dr. GRPO).
      ``max_completion_length`` defaults to ``T``, the padded width; TRL uses its config value.
    - ``dapo``: sum over all tokens / the number of tokens in the whole generation batch, across
      gradient-accumulation micro-batches (DAPO). ``num_items_in_batch`` defaults to the tokens of
      this batch, where ``dapo`` equals ``bnpo``.
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
    """The GRPO loss (negated objective) with TRL's four normalisations.

    ``J = 1/G sum_i 1/|o_i| sum_t [ min(rho A_i, clip(rho, 1-eps_low, 1+eps_high) A_i)
    - beta * KL_k3(pi_theta || pi_ref) ]`` for ``loss_type="grpo"`` (DeepSeekMath, eq. 3);
    the other loss types only change how the per-token terms are averaged (:func:`aggregate_loss`).

    - ``logp``: ``(B, T)`` log-probs of the sampled tokens under the policy being trained (with grad).
    - ``old_logp``: the same under the policy that sampled them; ``None`` means on-policy
      (``logp.detach()``), as in TRL with ``num_iterations=1``.
    - ``ref_logp``: under the frozen reference model; needed only when ``beta != 0``.
    - ``advantages``: ``(B,)`` from :func:`group_advantages` (or ``(B, T)``).
    - ``mask``: ``(B, T)``, 1 on completion tokens, 0 on padding.
    - ``epsilon_high`` defaults to ``epsilon_low`` (symmetric clip; DAPO's clip-higher uses 0.28).

    The KL is a term of the *loss*, not a penalty folded into the reward as in RLHF-PPO
    (:func:`kl_penalized_rewards`). ``kl_bias_correction`` multiplies it by the ratio, as TRL 1.15
    does by default (``use_bias_correction_kl=True``). ``is_weights`` (from
    :func:`rollout_is_weights`, ``(B, T)`` or ``(B, 1)``) multiplies the per-token policy term
    before the masked aggregation, as TRL does when it samples with vLLM; None leaves it unweighted.
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
    """Importance weights ``pi_trainer / pi_sampler`` for samples drawn by a sampler whose numerics
    differ from the trainer's (bf16 sampling, other kernels), and the mismatch metrics. As TRL's
    ``vllm_importance_sampling_correction`` (defaults: ``sequence_mask``, clip 3.0), veRL's rollout
    correction.

    ``token_*`` weighs each token by its own ratio, ``sequence_*`` each sequence by the product of
    its tokens' ratios; ``*_truncate`` clamps to ``[clip_min, clip_max]``, ``*_mask`` zeroes the
    ratios outside it (that token or sequence leaves the policy term, not the denominator).
    ``trainer_logp`` is the trainer's log-probs at rollout time (``logp.detach()`` on-policy);
    ``sampler_logp`` may hold NaN where the sampler gave none (ratio 1 there); padding is ignored.

    Returns ``(weights, metrics)``: ``(B, T)`` constants for :func:`grpo_loss`'s ``is_weights``,
    and TRL's ``sampling/sampling_logp_difference/{mean,max}`` and
    ``sampling/importance_sampling_ratio/{min,mean,max}`` (over real tokens, or over sequences).
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

    A loss term ``k(x)`` evaluated on sampled tokens ``x ~ pi_theta`` is differentiated with ``x``
    held fixed (nothing flows through the sampling), so what the optimiser follows on average is
    ``E_{x ~ pi}[grad k(x)]``, not ``grad E[k]``. This returns, for ``pi = softmax(logits)`` and
    ``pi_ref = softmax(ref_logits)`` (1-D), the exact expectations (a sum over the vocabulary
    weighted by the detached ``pi``) next to the gradients of both KL directions:

    - ``"E[grad k3]"``: DeepSeekMath's loss term. ``grad k3 = (1 - r) grad log pi`` with
      ``r = pi_ref / pi``, whose mean is ``-sum_x pi_ref(x) grad log pi(x)``: the gradient of
      ``KL(pi_ref || pi)``, not of ``KL(pi || pi_ref)`` that k3's *value* estimates.
    - ``"E[grad ratio*k3]"``: TRL's default (``use_bias_correction_kl``), ``k3`` times the ratio
      ``pi / pi_old`` (1 in value): ``grad = -log r * grad log pi``, the gradient of
      ``KL(pi || pi_ref)``.
    - ``"E[grad k1]"``: ``grad k1 = grad log pi``, mean 0: k1 in the loss does nothing on average
      (which is why PPO-RLHF puts k1 in the *reward*).
    - ``"grad KL(ref||pi)"`` and ``"grad KL(pi||ref)"``: by autograd on the exact divergences.
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
