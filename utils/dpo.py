"""DPO from scratch, preference pairs from verifiable rewards, and DPO training with TRL.

Direct Preference Optimization (Rafailov et al., 2023) on pairs (chosen y_w, rejected y_l):
``-log sigmoid(beta [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))])``, checked
against TRL's ``DPOTrainer`` in ``tests/test_dpo.py``. The verifier labels the pairs (a correct
and a wrong sample of one prompt). DPO is *offline* (pairs sampled once), GRPO *online*.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


def sequence_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   completion_mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each row's completion tokens under ``model``: shape ``(batch,)``.

    ``completion_mask`` is 1 on completion tokens (TRL's ``DataCollatorForPreference`` layout);
    the logit at position t predicts token t + 1, hence the shift by one.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion_mask[:, 1:].to(token_logps.dtype)).sum(dim=1)


@dataclass
class DPOLoss:
    """The mean loss over pairs, and the implicit rewards ``beta * log(pi / ref)`` of each side
    (their difference, the margin, is what DPO pushes up)."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def reward_accuracy(self) -> float:
        """Fraction of pairs whose chosen completion already has the higher implicit reward."""
        return (self.chosen_rewards > self.rejected_rewards).float().mean().item()


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float = 0.1) -> DPOLoss:
    """The DPO (sigmoid) loss from summed sequence log-probs, averaged over pairs; ``log 2``
    while the policy is the reference, whatever the data. Taught in 02 §6 and 06 §6."""
    if beta <= 0:
        raise ValueError(f"beta must be positive; got {beta}")
    chosen_logratios = policy_chosen - ref_chosen
    rejected_logratios = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return DPOLoss(losses.mean(), beta * chosen_logratios.detach(),
                   beta * rejected_logratios.detach())


def dpo_loss_on_batch(model, ref_model, batch: Mapping[str, torch.Tensor],
                      beta: float = 0.1) -> DPOLoss:
    """:func:`dpo_loss` on a TRL preference batch (rows ``[chosen..., rejected...]``).

    ``ref_model`` may be a context-manager factory: ``model.disable_adapter`` makes a PEFT model
    its own reference. Taught in 06 §6.
    """
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    policy_chosen, policy_rejected = sequence_logps(model, *args).chunk(2)
    with torch.no_grad():
        if callable(ref_model) and not isinstance(ref_model, torch.nn.Module):
            with ref_model():
                ref = sequence_logps(model, *args)
        else:
            ref = sequence_logps(ref_model, *args)
    ref_chosen, ref_rejected = ref.chunk(2)
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)


# ----------------------------------------------------------------------------- preference pairs
def preference_pairs(groups: Sequence[Mapping[str, Any]], max_pairs_per_prompt: int = 2,
                     seed: int = 0) -> list[dict[str, str]]:
    """DPO pairs from verified samples: a correct completion (chosen) against an incorrect one
    (rejected) of the same prompt.

    ``groups``: one mapping per prompt with ``prompt``, ``completions`` and ``correct`` (booleans).
    All-right or all-wrong prompts give no pair (and GRPO zero advantage). Distinct texts, drawn
    without reuse, at most ``max_pairs_per_prompt`` per prompt, seeded. Taught in 06 §6.
    """
    if max_pairs_per_prompt < 1:
        raise ValueError(f"max_pairs_per_prompt must be at least 1; got {max_pairs_per_prompt}")
    rng = random.Random(seed)
    pairs = []
    for group in groups:
        completions, correct = list(group["completions"]), list(group["correct"])
        if len(completions) != len(correct):
            raise ValueError("each group needs one `correct` flag per completion")
        good = list(dict.fromkeys(c for c, ok in zip(completions, correct) if ok))
        bad = list(dict.fromkeys(c for c, ok in zip(completions, correct) if not ok))
        rng.shuffle(good)
        rng.shuffle(bad)
        for chosen, rejected in list(zip(good, bad))[:max_pairs_per_prompt]:
            pairs.append({"prompt": group["prompt"], "chosen": chosen, "rejected": rejected})
    return pairs


def is_full_pairing(group: Mapping[str, Any], pairs: Sequence[Sequence[str]]) -> bool:
    """Whether ``pairs`` (``(chosen, rejected)`` texts) is a full pairing of one verified group:
    chosen texts correct, rejected ones wrong, none used twice on a side, and as many pairs as the
    fewer distinct texts allow (what :func:`preference_pairs` gives uncapped); notebook 06's
    exercise checks a learner's pairing with it."""
    flags = list(zip(group["completions"], group["correct"]))
    good = {text for text, ok in flags if ok}
    bad = {text for text, ok in flags if not ok}
    chosen = [pair[0] for pair in pairs]
    rejected = [pair[1] for pair in pairs]
    return (set(chosen) <= good and set(rejected) <= bad
            and len(set(chosen)) == len(chosen) and len(set(rejected)) == len(rejected)
            and len(pairs) == min(len(good), len(bad)))


# ----------------------------------------------------------------------------- training (TRL)
def dpo_config(output_dir: str | os.PathLike, beta: float = 0.1, learning_rate: float = 5e-5,
               epochs: float = 1.0, batch_size: int = 4, max_length: int | None = 512,
               use_cpu: bool = True, seed: int = 42, **overrides: Any):
    """TRL ``DPOConfig`` for the course: sigmoid loss, no logging service, no checkpoints."""
    from trl import DPOConfig

    settings: dict[str, Any] = {
        "output_dir": str(output_dir), "beta": beta, "learning_rate": learning_rate,
        "num_train_epochs": epochs, "per_device_train_batch_size": batch_size,
        "max_length": max_length, "loss_type": ["sigmoid"], "lr_scheduler_type": "constant",
        "logging_steps": 1, "save_strategy": "no", "report_to": "none", "use_cpu": use_cpu,
        "bf16": False, "fp16": False, "seed": seed, "data_seed": seed,
        "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return DPOConfig(**settings)


def train_dpo(model, tokenizer, pairs: Sequence[Mapping[str, str]],
              output_dir: str | os.PathLike, **config: Any):
    """Train ``model`` (a PEFT LoRA policy) with TRL's ``DPOTrainer`` on ``pairs``; returns the
    trainer (``state.log_history``: loss, margins, reward accuracy). The reference is the policy's
    starting point, so no second model is loaded; ``config`` goes to :func:`dpo_config`.
    """
    from datasets import Dataset
    from trl import DPOTrainer

    from utils.training import ensure_logprob_kernel

    if not pairs:
        raise ValueError("no preference pairs: every prompt's samples were all right or all "
                         "wrong; sample more completions per prompt (k) or more prompts")
    ensure_logprob_kernel()  # TRL's fused log-prob head needs Triton; CPU builds get plain torch
    dataset = Dataset.from_list([dict(p) for p in pairs])
    trainer = DPOTrainer(model=model, args=dpo_config(output_dir, **config),
                         train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    return trainer
