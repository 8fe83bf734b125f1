"""Run TRL's own GRPO code on tensors of our choosing, to check :mod:`utils.rl` against it.

TRL computes GRPO's advantages inside ``GRPOTrainer._generate_and_score_completions`` and the loss
inside ``GRPOTrainer._compute_loss``: methods of a trainer, not free functions. So we build a real,
tiny trainer (a random one-layer Qwen2 and a word-level tokenizer made in memory; nothing is
downloaded, a few hundred milliseconds once TRL is imported) and call those methods:

- :func:`trl_grpo_loss` fixes the per-token log-probs by replacing the one method that runs the
  model (``_get_per_token_logps_and_entropies``); everything after it is TRL's code.
- :func:`trl_group_advantages` gives TRL a reward function that returns our rewards in order and
  reads the advantages TRL computes from them.
- :func:`trl_rollout_is` runs TRL's sampler/trainer correction (``vllm_importance_sampling_*``),
  which sits in ``_generate_and_score_completions`` behind ``use_vllm``: generation is replaced by
  our completions and sampler log-probs, the model forward by our trainer log-probs.

Used by ``tests/test_rl_vs_trl.py``, ``tests/test_rl_is.py`` and by notebook 02.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import warnings
from pathlib import Path

import torch

_VOCAB = {"<pad>": 0, "<eos>": 1, **{f"t{i}": i + 2 for i in range(14)}}


def tiny_model_dir(path: str | Path | None = None) -> str:
    """Save a random one-layer Qwen2 and its word-level tokenizer to ``path`` (a temp dir if None).

    TRL is given the path, as it would be given a Hub id, so it loads the policy and (with
    ``beta != 0``) the reference model itself.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="tiny-qwen2-"))
    backend = Tokenizer(models.WordLevel(_VOCAB, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>",
                                        eos_token="<eos>")
    config = Qwen2Config(
        vocab_size=len(_VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
        pad_token_id=0, eos_token_id=1, bos_token_id=None,
    )
    with torch.random.fork_rng(), _quiet():
        torch.manual_seed(0)
        Qwen2ForCausalLM(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
    return str(path)


@contextlib.contextmanager
def _quiet():
    """No progress bars or warnings from transformers while we build and load tiny models."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class RewardQueue:
    """A reward function that hands out queued rewards in order, whatever the completions say."""

    __name__ = "fixed_rewards"

    def __init__(self):
        self.pending: list[float] = []

    def __call__(self, completions, **kwargs):
        if len(self.pending) < len(completions):
            raise RuntimeError("RewardQueue: fewer rewards queued than completions to score")
        out, self.pending = self.pending[: len(completions)], self.pending[len(completions):]
        return out


def tiny_grpo_trainer(model_dir: str | None = None, output_dir: str | None = None,
                      reward_func=None, **config):
    """A real ``trl.GRPOTrainer`` on the tiny model; ``config`` goes to ``GRPOConfig``.

    Defaults: 8 completions per batch in groups of 4, ``max_completion_length=8``, CPU, no logging.
    """
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    model_dir = model_dir or tiny_model_dir()
    # loaded by class: AutoTokenizer would rebuild a Qwen2 BPE tokenizer from the model type
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    output_dir = output_dir or tempfile.mkdtemp(prefix="grpo-check-")
    args = {
        "output_dir": output_dir, "per_device_train_batch_size": 8, "num_generations": 4,
        "max_completion_length": 8, "report_to": "none", "use_cpu": True, "save_strategy": "no",
        "max_steps": 1, "logging_steps": 1,
    }
    args.update(config)
    dataset = Dataset.from_dict({"prompt": ["t1 t2", "t3 t4"]})
    with _quiet():
        trainer = GRPOTrainer(model=model_dir, reward_funcs=reward_func or RewardQueue(),
                              args=GRPOConfig(**args), train_dataset=dataset,
                              processing_class=tokenizer)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer sets inside its training loop
    return trainer


def trl_grpo_loss(trainer, logp, old_logp, ref_logp, advantages, mask, num_items_in_batch=None,
                  importance_sampling_ratio=None):
    """TRL's ``GRPOTrainer._compute_loss`` on our tensors (only the model forward is replaced).

    ``logp`` plays the current policy's per-token log-probs and may require grad; ``old_logp=None``
    means on-policy (TRL then uses ``logp.detach()``); ``ref_logp`` is read only when
    ``trainer.beta != 0``; ``num_items_in_batch`` (for ``dapo``) defaults to ``mask.sum()``.
    ``importance_sampling_ratio`` (from :func:`trl_rollout_is`) turns on TRL's vLLM correction.
    """
    batch, width = logp.shape
    entropies = torch.ones_like(logp)
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (logp, entropies, None)
    inputs = {
        "prompt_ids": torch.ones(batch, 2, dtype=torch.long),
        "prompt_mask": torch.ones(batch, 2, dtype=torch.long),
        "completion_ids": torch.ones(batch, width, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "num_items_in_batch": mask.sum() if num_items_in_batch is None else num_items_in_batch,
    }
    if old_logp is not None:
        inputs["old_per_token_logps"] = old_logp
    if ref_logp is not None:
        inputs["ref_per_token_logps"] = ref_logp
    if importance_sampling_ratio is None:
        return trainer._compute_loss(trainer.model, inputs)
    inputs["importance_sampling_ratio"] = importance_sampling_ratio
    with _attributes(trainer, use_vllm=True, vllm_importance_sampling_correction=True):
        return trainer._compute_loss(trainer.model, inputs)


@contextlib.contextmanager
def _attributes(obj, **values):
    """Set attributes of ``obj`` for a while (here: a trainer's vLLM flags without vLLM)."""
    saved = {name: getattr(obj, name) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


IS_METRICS = (
    "sampling/sampling_logp_difference/mean", "sampling/sampling_logp_difference/max",
    "sampling/importance_sampling_ratio/min", "sampling/importance_sampling_ratio/mean",
    "sampling/importance_sampling_ratio/max",
)


def trl_rollout_is(trainer, trainer_logp, sampler_logp, mask, mode="sequence_mask",
                   clip_max=3.0, clip_min=None):
    """TRL's ``vllm_importance_sampling_correction`` on our tensors: ``(ratio, metrics)``.

    ``trainer`` must have been built with a :class:`RewardQueue` and ``per_device_train_batch_size``
    equal to ``B``. ``mask`` is right-padded with at least one full row (TRL pads to the longest
    completion); TRL is handed each row's real tokens only, with ``None`` where ``sampler_logp`` is
    NaN, as vLLM reports a missing log-prob. ``ratio`` is ``(B, T)`` (token modes) or ``(B, 1)``.
    """
    lengths = [int(n) for n in mask.sum(-1).tolist()]
    if max(lengths) != mask.shape[1] or not torch.equal(
            mask.bool(), torch.arange(mask.shape[1]) < torch.tensor(lengths)[:, None]):
        raise ValueError("trl_rollout_is: mask must be right-padded with at least one full row")
    batch = len(lengths)
    completion_ids = [[2] * n for n in lengths]
    sampler_lists = [[None if math.isnan(x) else x for x in row[:n]]
                     for row, n in zip(sampler_logp.tolist(), lengths)]
    generated = ([[3, 4]] * batch, completion_ids, None, ["t0 " * n for n in lengths],
                 sampler_lists, {}, None, None)
    trainer.reward_funcs[0].pending = [0.0] * batch
    trainer._metrics["train"].clear()
    with _attributes(trainer, use_vllm=True, vllm_importance_sampling_correction=True,
                     vllm_importance_sampling_mode=mode,
                     vllm_importance_sampling_clip_max=clip_max,
                     vllm_importance_sampling_clip_min=clip_min,
                     _generate=lambda prompts: generated,
                     _get_per_token_logps_and_entropies=lambda *a, **k: (trainer_logp, None, None)
                     ), _quiet():
        out = trainer._generate_and_score_completions([{"prompt": "t1 t2"}] * batch)
    metrics = {name: trainer._metrics["train"][name][-1] for name in IS_METRICS}
    return out["importance_sampling_ratio"], metrics


def trl_group_advantages(rewards, num_generations: int, scale_rewards: str = "group",
                         model_dir: str | None = None) -> torch.Tensor:
    """The advantages TRL computes for ``rewards`` (consecutive groups of ``num_generations``)."""
    rewards = [float(r) for r in rewards]
    queue = RewardQueue()
    trainer = tiny_grpo_trainer(model_dir, reward_func=queue, scale_rewards=scale_rewards,
                                per_device_train_batch_size=len(rewards),
                                num_generations=num_generations, max_completion_length=3)
    queue.pending = list(rewards)
    groups = len(rewards) // num_generations
    prompts = [{"prompt": f"t{2 * (k % 7)} t{2 * (k % 7) + 1}"}
               for k in range(groups) for _ in range(num_generations)]
    with _quiet():
        return trainer._generate_and_score_completions(prompts)["advantages"]
