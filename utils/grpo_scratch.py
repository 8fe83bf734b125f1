"""GRPO on a real language model in plain PyTorch: sample, score, compare within groups, step.

What TRL's ``GRPOTrainer`` does for one step, written out so that every tensor can be printed:

1. **Sample** ``G`` completions per question (:func:`rollout`, through the fast decoder of
   :mod:`utils.generation`).
2. **Score** them with the course's rewards (:func:`utils.rewards.score_completions`).
3. **Compare within the group**: advantage = reward minus the group mean, over the group std
   (:func:`utils.rl.group_advantages`). A group whose rewards are all equal teaches nothing.
4. **Token log-probs** of the sampled completions under the current policy (:func:`token_logprobs`),
   the only place gradients flow.
5. **Clipped loss** (:func:`utils.rl.grpo_loss`) and an optimizer **step**.

``tests/test_grpo_scratch.py`` checks that one step's loss and gradients equal TRL's on the same
batch. Prompts are left-padded and completions right-padded, as TRL lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils import rl
from utils.generation import decode, eos_ids, render_prompt
from utils.rewards import score_completions
from utils.sampling import LeanSampler, common_prefix, sampling_dtype


@dataclass
class Rollout:
    """One batch of sampled completions, ``G`` per question, laid out as TRL lays them out."""

    prompt_ids: torch.Tensor       # (B, P) left-padded
    prompt_mask: torch.Tensor      # (B, P)
    completion_ids: torch.Tensor   # (B, T) right-padded; the end-of-sequence token is kept
    completion_mask: torch.Tensor  # (B, T) 1 on the completion's tokens
    texts: list[str]               # what the rewards saw (prefix + completion)
    rewards: torch.Tensor          # (B,) the weighted total
    scores: list[dict[str, float]]  # every reward part, per completion
    sampler_logp: torch.Tensor | None = None  # (B, T) the sampler's log-probs, 0 on padding
    precision: str = "fp32"        # what the sampler computed in
    metrics: dict[str, float] = field(default_factory=dict)  # filled by grpo_loss


def pad_rows(rows: Sequence[Sequence[int]], value: int,
             left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids as one ``(B, width)`` tensor padded with ``value`` (on the left for prompts,
    on the right for completions, as TRL lays them out), and its 0/1 mask."""
    width = max(len(row) for row in rows)
    ids = [[value] * (width - len(r)) + list(r) if left else list(r) + [value] * (width - len(r))
           for r in rows]
    mask = [[int(i >= width - len(r)) if left else int(i < len(r)) for i in range(width)]
            for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


@torch.no_grad()
def rollout(model, tokenizer, prompts: Sequence, answers: Sequence[str], group_size: int,
            max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
            weights: Mapping[str, float] | None = None, prefill: str = "",
            seed: int = 0, precision: str = "auto") -> Rollout:
    """Sample ``group_size`` completions per prompt and score them against ``answers``.

    ``model`` is the training model (fp32, maybe a LoRA). A sampling copy of its current weights
    is made for every call (:class:`utils.sampling.LeanSampler`), in ``precision``: ``"auto"`` is
    bf16 where the CPU multiplies bf16 natively, else fp32; ``"fp32"`` turns bf16 off. The
    sampler's own log-probs come back in ``sampler_logp`` for the off-policy correction.
    Models the lean sampler does not know fall back to :func:`utils.generation.decode` in fp32.
    ``prefill`` is text added after the chat template (e.g. ``"<think>\\n"``); the rewards see it
    in front of the completion, as :func:`utils.training.with_prefix` does for TRL.
    Taught in 04 §6b.
    """
    eos = eos_ids(model, tokenizer)
    dtype = sampling_dtype(precision)
    prompt_rows = [tokenizer(render_prompt(tokenizer, p) + prefill,
                             add_special_tokens=False)["input_ids"] for p in prompts]
    rows = [row for row in prompt_rows for _ in range(group_size)]
    generator = torch.Generator().manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    sampler_logp, used = None, "fp32"
    if LeanSampler.supports(model) and temperature > 0:
        sampler = LeanSampler(model, dtype)  # the copy follows the policy: taken every rollout
        completions, logps = sampler.sample(prompt_rows, group_size, max_new_tokens, eos,
                                            temperature, top_p, generator)
        sampler_logp = pad_rows(logps, 0.0, left=False)[0].float()
        used = "bf16" if dtype == torch.bfloat16 else "fp32"
    else:
        completions = decode(model, rows, max_new_tokens, eos, temperature, top_p, generator)
    prompt_ids, prompt_mask = pad_rows(rows, pad, left=True)
    completion_ids, completion_mask = pad_rows(completions, pad, left=False)
    texts = [prefill + tokenizer.decode([t for t in c if t not in eos], skip_special_tokens=True)
             for c in completions]
    golds = [a for a in answers for _ in range(group_size)]
    scores = score_completions(texts, golds, weights)
    rewards = torch.tensor([s["total"] for s in scores], dtype=torch.float32)
    return Rollout(prompt_ids, prompt_mask, completion_ids, completion_mask, texts, rewards, scores,
                   sampler_logp, used)


def token_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                   completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                   temperature: float = 1.0, share_prefix: bool = False,
                   group_size: int = 1) -> torch.Tensor:
    """``(B, T)`` log-probs of each completion token under a Hugging Face model, with gradients
    (the toy policy's are :func:`utils.toy_tasks.token_logprobs`). Taught in 04 §6b.

    The logits at position ``t`` predict token ``t + 1``, so the completion's tokens are read from
    the positions just before them; logits are divided by the sampling temperature, as TRL does.

    ``share_prefix=True`` gives the same numbers and gradients with fewer prompt tokens through
    the model: the prefix all rows share runs once, each question once for its group of
    ``group_size`` consecutive rows, and their keys and values are copied to the rows.
    """
    width = completion_ids.shape[1]
    if not share_prefix:
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       logits_to_keep=width + 1).logits[:, :-1]
    else:
        logits = _shared_prefix_logits(model, prompt_ids, prompt_mask, completion_ids,
                                       completion_mask, group_size)
    logits = logits.float()
    if temperature != 1:
        logits = logits / temperature
    # log p(token) = logit(token) - logsumexp(logits): never holds a (B, T, vocab) log-softmax
    picked = logits.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def _shared_prefix_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                          group_size: int) -> torch.Tensor:
    """Logits predicting each completion token: shared prefix once, each question once."""
    from transformers import DynamicCache

    rows = [ids[mask.bool()].tolist() for ids, mask in zip(prompt_ids, prompt_mask)]
    questions = rows[::group_size]
    if any(rows[i] != questions[i // group_size] for i in range(len(rows))):
        raise ValueError("share_prefix: rows of a group must have the same prompt")
    shared = common_prefix(questions)
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([questions[0][:shared]]), past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_repeat_interleave(len(questions))
    suffix_ids, suffix_mask = pad_rows([q[shared:] for q in questions], 0, left=True)
    mask = torch.cat([torch.ones(len(questions), shared, dtype=torch.long), suffix_mask], dim=1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    last = model(input_ids=suffix_ids, attention_mask=mask, position_ids=positions[:, shared:],
                 past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    cache.batch_repeat_interleave(group_size)
    mask = torch.cat([mask.repeat_interleave(group_size, 0), completion_mask], dim=1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, -completion_ids.shape[1]:]
    rest = model(input_ids=completion_ids, attention_mask=mask, position_ids=positions,
                 past_key_values=cache, use_cache=True,
                 logits_to_keep=completion_ids.shape[1]).logits
    return torch.cat([last.repeat_interleave(group_size, 0), rest[:, :-1]], dim=1)


def grpo_loss(model, batch: Rollout, group_size: int, temperature: float = 1.0,
              loss_type: str = "dapo", scale_rewards: str | None = "group",
              epsilon: float = 0.2, epsilon_high: float | None = None,
              max_completion_length: int | None = None,
              share_prefix: bool = False, correction: str | None = "sequence_mask",
              correction_cap: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """One on-policy GRPO step's loss and advantages: runs the model on a :class:`Rollout`
    (``beta = 0``, no reference model); the formula on tensors is :func:`utils.rl.grpo_loss`.

    Where the rollout recorded the sampler's log-probs, the policy term is reweighted by
    ``pi_trainer / pi_sampler`` (:func:`utils.rl.rollout_is_weights`, mode ``correction``, TRL's
    default ``"sequence_mask"`` with cap 3; None turns it off), and the mismatch figures go to
    ``batch.metrics`` under TRL's names. Taught in 04 §6b.
    """
    advantages = rl.group_advantages(batch.rewards, group_size, scale=scale_rewards)
    logp = token_logprobs(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                          batch.completion_mask, temperature, share_prefix, group_size)
    is_weights, metrics = _correction(logp, batch, correction, correction_cap)
    batch.metrics.update(metrics)
    loss = rl.grpo_loss(logp, None, None, advantages, batch.completion_mask, epsilon_low=epsilon,
                        epsilon_high=epsilon_high, loss_type=loss_type,
                        max_completion_length=max_completion_length, is_weights=is_weights)
    return loss, advantages


def _correction(logp: torch.Tensor, batch: Rollout, correction: str | None,
                cap: float) -> tuple[torch.Tensor | None, dict[str, float]]:
    """The IS weights for ``batch`` (None when it has no sampler log-probs or ``correction`` is
    None: then the mismatch is measured, not applied) and the mismatch figures."""
    if batch.sampler_logp is None:
        return None, {}
    weights, metrics = rl.rollout_is_weights(logp.detach(), batch.sampler_logp,
                                             batch.completion_mask,
                                             mode=correction or "sequence_mask", clip_max=cap)
    return (weights if correction is not None else None), metrics


def _rows(batch: Rollout, rows: torch.Tensor) -> Rollout:
    """Rows ``rows`` (indices) of a rollout, the completion columns none of them uses trimmed:
    padding costs a forward and backward pass and adds nothing."""
    width = int(batch.completion_mask[rows].sum(1).max().clamp(min=1))
    index = rows.tolist()
    logp = None if batch.sampler_logp is None else batch.sampler_logp[rows, :width]
    return Rollout(batch.prompt_ids[rows], batch.prompt_mask[rows],
                   batch.completion_ids[rows, :width], batch.completion_mask[rows, :width],
                   [batch.texts[i] for i in index], batch.rewards[rows],
                   [batch.scores[i] for i in index], logp, batch.precision)


def grpo_backward(model, batch: Rollout, group_size: int, rows_per_pass: int = 16,
                  temperature: float = 1.0, loss_type: str = "dapo",
                  scale_rewards: str | None = "group", epsilon: float = 0.2,
                  epsilon_high: float | None = None, max_completion_length: int | None = None,
                  correction: str | None = "sequence_mask",
                  correction_cap: float = 3.0) -> float:
    """:func:`grpo_loss` and its backward pass over whole groups of about ``rows_per_pass`` rows
    at a time: the gradients of one pass over the batch with a fraction of its activation memory.
    Returns the loss; the mismatch figures go to ``batch.metrics``, averaged over the passes by
    their token counts (of the groups trained on). Groups whose advantages are all zero are
    not run: with ``beta = 0`` their loss and gradient are exactly zero, and the normalisation
    still counts them, so the gradients equal one pass over the whole batch. What
    ``make cpu-demo`` (04 §6c) runs as its GRPO step."""
    advantages = rl.group_advantages(batch.rewards, group_size, scale=scale_rewards)
    step = max(group_size, rows_per_pass // group_size * group_size)
    rows_total, tokens_total = len(batch.rewards), batch.completion_mask.sum().clamp(min=1)
    if max_completion_length is None:  # dr_grpo's constant: the batch's width, not a chunk's
        max_completion_length = batch.completion_ids.shape[1]
    # a group whose advantages are all 0 adds exactly 0 to the loss and its gradient (beta = 0):
    # skipped, while the normalisation still counts its rows and tokens
    live = advantages.view(-1, group_size).ne(0).any(1).repeat_interleave(group_size)
    order = live.nonzero().squeeze(1)
    live_tokens = batch.completion_mask[order].sum().clamp(min=1)
    total, metrics = 0.0, {}
    for start in range(0, len(order), step):
        rows = order[start:start + step]
        chunk = _rows(batch, rows)
        logp = token_logprobs(model, chunk.prompt_ids, chunk.prompt_mask, chunk.completion_ids,
                              chunk.completion_mask, temperature, True, group_size)
        is_weights, part = _correction(logp, chunk, correction, correction_cap)
        share = float(chunk.completion_mask.sum() / live_tokens)
        for key, value in part.items():  # min and max over passes, means weighted
            metrics[key] = (min(metrics.get(key, value), value) if key.endswith("/min") else
                            max(metrics.get(key, value), value) if key.endswith("/max") else
                            metrics.get(key, 0.0) + share * value)
        loss = rl.grpo_loss(logp, None, None, advantages[rows], chunk.completion_mask,
                            epsilon_low=epsilon, epsilon_high=epsilon_high, loss_type=loss_type,
                            max_completion_length=max_completion_length, is_weights=is_weights)
        # each pass's share of the whole batch's normalisation
        if loss_type in ("dapo", "bnpo"):
            loss = loss * (chunk.completion_mask.sum() / tokens_total)
        else:
            loss = loss * (len(chunk.rewards) / rows_total)
        loss.backward()
        total += loss.item()
    batch.metrics.update(metrics)
    return total


def keep_groups(batch: Rollout, keep: torch.Tensor, group_size: int) -> Rollout:
    """The rollout restricted to the groups where ``keep`` (one bool per group) is True, with
    padding columns no kept row uses trimmed. DAPO's dynamic sampling drops groups whose rewards
    are all equal: their advantages are 0, so they only cost a forward and backward pass."""
    rows = keep.repeat_interleave(group_size).nonzero().squeeze(1)
    prompt_cols = batch.prompt_mask[rows].any(0).nonzero().squeeze(1)
    completion_cols = batch.completion_mask[rows].any(0).nonzero().squeeze(1)

    def pick(t: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return t[rows][:, cols]

    index = rows.tolist()
    return Rollout(pick(batch.prompt_ids, prompt_cols), pick(batch.prompt_mask, prompt_cols),
                   pick(batch.completion_ids, completion_cols),
                   pick(batch.completion_mask, completion_cols),
                   [batch.texts[i] for i in index], batch.rewards[rows],
                   [batch.scores[i] for i in index],
                   None if batch.sampler_logp is None else pick(batch.sampler_logp,
                                                                completion_cols),
                   batch.precision)


def spread_share(rewards: torch.Tensor, group_size: int) -> float:
    """Share of groups whose rewards are not all equal: the groups GRPO can learn from."""
    grouped = rewards.view(-1, group_size)
    return (grouped.amax(1) > grouped.amin(1)).float().mean().item()


def log_completions(path: str | Path, step: int, batch: Rollout, question_ids: Sequence[int],
                    group_size: int) -> None:
    """Append every sampled completion of a step to a JSONL file: step, question index, text,
    rewards. Notebook 06 reads response length and reflection phrases over steps from it."""
    lines = [json.dumps({"step": step, "question": int(question_ids[i // group_size]),
                         "text": text, "rewards": score}) + "\n"
             for i, (text, score) in enumerate(zip(batch.texts, batch.scores))]
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(lines)
