"""GRPO training with TRL's ``GRPOTrainer``: hardware presets, data, run, resume, save.

GSM8K on a GPU; on a CPU, the one-step word problems of :mod:`utils.tasks`, which a 135M model
gets right often enough for an accuracy reward to have spread.

One code path for the three workshop modes; notebook 04 and ``python -m utils.train`` call the
same functions:

- :func:`get_preset` picks the knobs for the hardware (T4, L4, A100/H100, cpu, smoke) and
  :func:`grpo_config` turns a preset into TRL's ``GRPOConfig``.
- :func:`preset_prompts` gives the preset's train prompts (:func:`train_prompts` for GSM8K)
  that fit its prompt budget (TRL 1.x does not truncate prompts, so an over-long one would
  overflow the context).
- :func:`train` builds the trainer with the rewards of :mod:`utils.rewards`, runs it with
  checkpoints, writes ``log_history.json`` after every logging step, and resumes after a
  disconnect with ``resume=True``.
- :func:`save_adapter`, :func:`save_merged`, :func:`save_gguf` and :func:`answer` save the result
  and compare the answer to one question before and after training.
- :func:`reward_hack_preset` turns a preset into notebook 04's reward-hacking demonstration.

TRL is imported inside functions, never at module import: on the GPU path Unsloth must be imported
before TRL so that it can patch ``GRPOTrainer``, and :func:`utils.models.load_policy` does that.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from utils.models import LoraSettings
from utils.prompts import THINK_OPEN
from utils.runtime import get_mode

LOG_HISTORY = "log_history.json"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class Preset:
    """Every knob of a GRPO run on one kind of hardware.

    Batch arithmetic (TRL counts completions, not prompts): one optimizer step sees
    ``per_device_train_batch_size * gradient_accumulation_steps * processes`` completions, that is
    that number divided by ``num_generations`` prompts. It must divide by ``num_generations`` so
    that every prompt's group is complete.
    """

    name: str
    description: str
    num_generations: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_prompt_length: int
    max_completion_length: int
    learning_rate: float
    loss_type: str = "dapo"
    beta: float = 0.0
    temperature: float = 1.0
    precision: str = "fp32"  # "fp16" (T4), "bf16" (Ampere+), "fp32" (CPU)
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "constant"
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    logging_steps: int = 1
    save_steps: int = 25
    max_steps: int = 250
    num_prompts: int | None = None  # GSM8K train prompts to sample from; None = all
    completions_to_print: int = 2  # sampled completions printed (and saved) per logging step
    use_vllm: bool = False
    gpu_memory_utilization: float = 0.6
    lora: LoraSettings = field(default_factory=LoraSettings)
    reward_weights: dict[str, float] | None = None  # None = utils.rewards.DEFAULT_WEIGHTS
    think_prefill: bool = False  # start the answer with "<think>\n" in the prompt (a prefill)
    task: str = "gsm8k"  # what the run trains on: GSM8K, or a rung of utils.tasks ("one_step")
    vllm_server_url: str | None = None  # e.g. "http://10.0.0.1:8000": generate on `trl vllm-serve`
    step_seconds: tuple[float, float] | None = None  # estimated (low, high) s a step; None: cpu
    lean_sampler: bool = False  # CPU: TRL samples with utils.sampling.LeanSampler (lean_rollout)

    @property
    def prompts_per_step(self) -> int:
        """Distinct GSM8K questions per optimizer step on one process."""
        completions = self.per_device_train_batch_size * self.gradient_accumulation_steps
        return completions // self.num_generations

    @property
    def max_seq_length(self) -> int:
        return self.max_prompt_length + self.max_completion_length


T4_PRESET = Preset(
    name="t4",
    description="Colab T4 (15 GiB, fp16 only): Qwen2.5-3B-Instruct 4-bit, LoRA r16, "
                "HF generate (no vLLM runs on a T4 with this stack)",
    num_generations=8, per_device_train_batch_size=8, gradient_accumulation_steps=1,
    max_prompt_length=256, max_completion_length=512, learning_rate=5e-6,
    loss_type="dr_grpo", beta=0.0, precision="fp16", optim="paged_adamw_8bit",
    gradient_checkpointing=True, scale_rewards="none", mask_truncated_completions=True,
    warmup_ratio=0.1, lr_scheduler_type="cosine", max_grad_norm=0.1, weight_decay=0.1,
    save_steps=10, max_steps=250, use_vllm=False, gpu_memory_utilization=0.5,
    lora=LoraSettings(rank=16, alpha=16), step_seconds=(40, 90),
)
"""The GPU presets differ from the T4 one only where the hardware allows more (memory,
bf16, vLLM); everything else (loss, masking, optimizer schedule) is shared on purpose.

Generation: the T4 preset uses Unsloth's HF generate, because no vLLM runs there with this stack
(vLLM after 0.11.2 has no Turing attention backend, 0.11.2 needs transformers < 5; see
:mod:`utils.install_sets`). The L4 and A100 presets use vLLM (0.31 + ``vllm-bnb-plugin``), which
the setup cell installs on Ampere+ GPUs with an NVIDIA driver >= 580; elsewhere
:func:`utils.models.load_policy` warns and falls back to HF generate."""

PRESETS: dict[str, Preset] = {
    "t4": T4_PRESET,
    "l4": replace(
        T4_PRESET, name="l4",
        description="L4 (24 GiB, bf16): same model, two questions per step, longer answers, vLLM",
        per_device_train_batch_size=16, max_completion_length=768, precision="bf16",
        use_vllm=True,
        max_steps=300, lora=LoraSettings(rank=32, alpha=32), step_seconds=(15, 40),
    ),
    "a100": replace(
        T4_PRESET, name="a100",
        description="A100/H100 (40-80 GiB, bf16): 16 samples per question, LoRA r64, vLLM",
        use_vllm=True, num_generations=16, per_device_train_batch_size=32,
        gradient_accumulation_steps=2,
        max_completion_length=1024, learning_rate=1e-5, precision="bf16",
        optim="adamw_torch_fused", warmup_ratio=0.05, max_grad_norm=0.2, save_steps=50,
        max_steps=500, gpu_memory_utilization=0.6, lora=LoraSettings(rank=64, alpha=64),
        step_seconds=(15, 40),
    ),
    # The task inside SmolLM2's reach, continued from utils.cpu_demo's cold start (notebook 04,
    # section 7); 4 questions x 8 samples a step, scored 8 at a time, sampled by lean_rollout;
    # lr, temperature and length are the cpu-demo's, searched on its dev split
    # (docs/experiments.md), not TRL's own.
    "cpu": Preset(
        name="cpu",
        description="Laptop CPU: SmolLM2-135M-Instruct, fp32, LoRA r32, one-step word "
                    "problems from the cold start (GSM8K is out of its reach)",
        num_generations=8, per_device_train_batch_size=8, gradient_accumulation_steps=4,
        max_prompt_length=192, max_completion_length=40, learning_rate=5e-5,
        loss_type="dapo", beta=0.0, temperature=1.0, precision="fp32",
        scale_rewards="group", save_steps=6, max_steps=18, num_prompts=600,
        lora=LoraSettings(rank=32, alpha=64),
        reward_weights={"accuracy": 1.0, "strict_format": 0.5},
        task="one_step", lean_sampler=True,
    ),
    "smoke": Preset(
        name="smoke",
        description="Tests and CI: tiny random Qwen2, a few steps in seconds (output is gibberish)",
        num_generations=2, per_device_train_batch_size=4, gradient_accumulation_steps=1,
        max_prompt_length=1024, max_completion_length=8, learning_rate=1e-4,
        loss_type="dapo", beta=0.04, precision="fp32", save_steps=2, max_steps=4,
        num_prompts=32, completions_to_print=1, lora=LoraSettings(rank=4, alpha=8),
        task="one_step",
    ),
}
"""Presets by name. The GPU numbers follow the Unsloth GRPO notebooks for Qwen2.5-3B on a T4
(4-bit, paged 8-bit AdamW, max_grad_norm 0.1, lr ~5e-6, cosine with warm-up); the loss is Dr.GRPO
(no length bias, no std scaling) with truncated completions masked, as in DAPO."""

def run_span(preset: Preset, steps: int | None = None) -> str | None:
    """``steps`` (``preset.max_steps`` by default) times the preset's estimated step time, as
    ``"2.8-6.2 h"`` or ``"20-45 min"``; None for a preset without an estimate."""
    if preset.step_seconds is None:
        return None
    low, high = ((preset.max_steps if steps is None else steps) * s for s in preset.step_seconds)
    return (f"{low / 3600:.1f}-{high / 3600:.1f} h" if high >= 5400
            else f"{low / 60:.0f}-{high / 60:.0f} min")


def run_time(preset: Preset, steps: int | None = None) -> str:
    """A GPU preset's run time, ``steps x estimated seconds a step`` (:func:`run_span`), and what
    a disconnect costs: the one place the course's GPU times come from. The step times are
    estimates from published Unsloth T4 runs, never measured here."""
    steps = preset.max_steps if steps is None else steps
    span = run_span(preset, steps)
    if span is None:
        return f"{steps} steps (no estimate: time them with benchmarks/grpo_step.py)"
    every = [preset.save_steps * s / 60 for s in preset.step_seconds]
    return (f"{steps} steps x {preset.step_seconds[0]:g}-{preset.step_seconds[1]:g} s a step = "
            f"{span} (an estimate); a checkpoint every {preset.save_steps} steps, so a "
            f"disconnect costs at most {every[0]:.0f}-{every[1]:.0f} min")


PRESET_FOR_MODE = {"gpu": "t4", "cpu": "cpu", "smoke": "smoke"}

FORMAT_HEAVY_WEIGHTS = {"accuracy": 1.0, "strict_format": 0.25, "soft_format": 0.25,
                        "tag_count": 1.0}
"""The cpu preset's weights before it followed notebook 03's rule: format rewards 1.5 in all
against accuracy 1.0. On GSM8K they taught SmolLM2 the template, nothing else (notebook 04,
section 8b, repeats it on purpose)."""


def reward_hack_preset(preset: Preset) -> Preset:
    """``preset`` turned into notebook 04's reward-hacking demonstration: GSM8K (out of the
    small model's reach), :data:`FORMAT_HEAVY_WEIGHTS`, the ``<think>`` prefill, and a few
    short, fast steps at a high learning rate, so that ``tag_count`` saturates in minutes."""
    return replace(preset, name=f"{preset.name}-reward-hack", task="gsm8k", think_prefill=True,
                   reward_weights=dict(FORMAT_HEAVY_WEIGHTS), num_generations=4,
                   per_device_train_batch_size=8, gradient_accumulation_steps=1,
                   max_completion_length=min(preset.max_completion_length, 48),
                   learning_rate=5e-4, num_prompts=64, save_steps=100,
                   max_steps=2 if preset.name == "smoke" else 8)


def default_preset_name(mode: str | None = None) -> str:
    """The preset that fits this machine: by GPU memory in gpu mode, else the mode's own."""
    mode = get_mode(mode)
    if mode != "gpu":
        return PRESET_FOR_MODE[mode]
    import torch

    memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return "a100" if memory_gib >= 39 else "l4" if memory_gib >= 20 else "t4"


def get_preset(name: str | None = None, mode: str | None = None, **overrides: Any) -> Preset:
    """A preset by name (default: the one for this machine), with fields replaced by overrides.

    ``get_preset("cpu", max_completion_length=128)`` is the cpu preset with longer answers.
    An unknown name or field is an error that lists the valid ones.
    """
    name = name or default_preset_name(mode)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - set(Preset.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown preset field(s) {unknown}")
    preset = replace(PRESETS[name], **overrides)
    if preset.per_device_train_batch_size * preset.gradient_accumulation_steps \
            % preset.num_generations:
        raise ValueError(
            f"per_device_train_batch_size x gradient_accumulation_steps "
            f"({preset.per_device_train_batch_size} x {preset.gradient_accumulation_steps}) must be "
            f"a multiple of num_generations ({preset.num_generations}): every prompt needs its "
            "whole group of completions in the same batch"
        )
    return preset


KNOB_NOTES = {
    "num_generations": "completions per question (the group); more = better baseline, slower",
    "per_device_train_batch_size": "completions per forward/backward on one device",
    "gradient_accumulation_steps": "batches summed before one optimizer step",
    "prompts_per_step": "distinct questions per optimizer step (per process)",
    "max_prompt_length": "longer prompts are dropped from the data set (TRL does not truncate)",
    "max_completion_length": "tokens sampled per answer; longer ones are cut (clipped_ratio)",
    "learning_rate": "LoRA's best rate is ~10x full fine-tuning's (GRPO full FT: ~1e-6)",
    "loss_type": "how token losses are averaged: dr_grpo/dapo avoid GRPO's length bias",
    "beta": "KL penalty to the starting model; 0 skips the reference pass (saves compute)",
    "temperature": "sampling temperature; groups need diverse answers to learn",
    "precision": "fp16 on T4 (no bf16), bf16 on Ampere+, fp32 on CPU",
    "optim": "paged 8-bit AdamW keeps optimizer state small on a 15 GiB GPU",
    "gradient_checkpointing": "recompute activations in backward: less memory, ~30% slower",
    "scale_rewards": "divide advantages by the group std ('group') or not ('none', Dr.GRPO)",
    "mask_truncated_completions": "cut-off answers do not count in the loss (DAPO)",
    "save_steps": "checkpoint interval, for resume after a disconnect",
    "max_steps": "optimizer steps in the run",
    "lora": "LoRA rank / alpha on all attention and MLP projections",
    "reward_weights": "weights of the rewards (None = utils.rewards.DEFAULT_WEIGHTS)",
    "use_vllm": "vLLM generation: L4/A100 (Ampere+, driver >= 580); the T4 has none",
    "think_prefill": "answer prefilled with '<think>' (not in R1-Zero's template)",
    "task": "what the run trains on: GSM8K, or a rung of utils.tasks (cpu: one_step)",
}


def preset_table(preset: Preset) -> list[tuple[str, str, str]]:
    """Rows ``(knob, value, what it does)`` for printing a preset as a table."""
    values = asdict(preset)
    values["prompts_per_step"] = preset.prompts_per_step
    values["lora"] = f"r={preset.lora.rank}, alpha={preset.lora.alpha}"
    return [(knob, str(values[knob]), note) for knob, note in KNOB_NOTES.items()]


def print_preset(preset: Preset) -> None:
    """Print the preset as an aligned three-column table."""
    print(f"preset {preset.name}: {preset.description}")
    for knob, value, note in preset_table(preset):
        print(f"  {knob:<28} {value:<34} {note}")


# ------------------------------------------------------------------------------------- data
THINK_PREFILL = THINK_OPEN + "\n"


def prompt_length(tokenizer, prompt: str | Sequence[Mapping[str, str]]) -> int:
    """Number of tokens of a prompt as the trainer will see it (chat prompts via the template)."""
    if isinstance(prompt, str):
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer.apply_chat_template(list(prompt), tokenize=True, add_generation_prompt=True)
    if isinstance(ids, Mapping):  # some tokenizers return a BatchEncoding
        ids = ids["input_ids"]
    return len(ids)


def prefill_think(tokenizer, messages: Sequence[Mapping[str, str]]) -> str:
    """The chat prompt as text, with the assistant's answer already opened by ``<think>\n``.

    R1-Zero's own template ends with "Assistant:"; this prefill is a trick of open R1-Zero
    reproductions (TinyZero-style prompts end with ``Let me solve this step by step.\n<think>``),
    here applied to a chat model: SmolLM2-135M almost never writes ``<think>`` itself, so every group scores the same and GRPO
    has nothing to learn from; with the tag given, it closes it and opens ``<answer>`` often
    enough (~1 sample in 8) for the format to be learned. The rewards see the tag again through
    :func:`with_prefix`.
    """
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return text + THINK_PREFILL


def train_prompts(tokenizer, max_prompt_length: int, n: int | None = None, seed: int = 42,
                  path: str | os.PathLike | None = None, think_prefill: bool = False):
    """GSM8K train rows whose prompt fits in ``max_prompt_length`` tokens.

    TRL 1.x does not truncate prompts, so a long question would push the completion past the
    model's context (and on vLLM fail the request). Dropping the few long ones is cleaner than
    cutting a question in half. With ``think_prefill`` the prompt is text ending in ``<think>``
    (see :func:`prefill_think`) instead of chat messages.
    """
    from utils.data import load_gsm8k

    return _fitting(load_gsm8k("train", n=n, seed=seed, path=path), tokenizer, max_prompt_length,
                    think_prefill, "GSM8K")


def preset_prompts(tokenizer, preset: Preset, seed: int = 42,
                   path: str | os.PathLike | None = None):
    """The train prompts of ``preset.task``: GSM8K (:func:`train_prompts`) or a rung of
    :mod:`utils.tasks` (train split, same columns), ``preset.num_prompts`` of them, filtered
    and prefilled the same way. The cpu preset trains on ``one_step``: on GSM8K SmolLM2-135M is
    almost never right, so an accuracy reward has no spread to learn from."""
    if preset.task == "gsm8k":
        return train_prompts(tokenizer, preset.max_prompt_length, n=preset.num_prompts,
                             seed=seed, path=path, think_prefill=preset.think_prefill)
    from utils.tasks import task_dataset

    return _fitting(task_dataset(preset.task, "train", n=preset.num_prompts, seed=seed),
                    tokenizer, preset.max_prompt_length, preset.think_prefill, preset.task)


def _fitting(dataset, tokenizer, max_prompt_length: int, think_prefill: bool, name: str):
    if think_prefill:
        dataset = dataset.map(lambda row: {"prompt": prefill_think(tokenizer, row["prompt"])})
    kept = dataset.filter(lambda row: prompt_length(tokenizer, row["prompt"]) <= max_prompt_length)
    if len(kept) == 0:
        raise ValueError(f"no {name} prompt fits in max_prompt_length={max_prompt_length} tokens")
    return kept


# ----------------------------------------------------------------------------------- config
def grpo_config(preset: Preset, output_dir: str | os.PathLike, mode: str | None = None,
                max_steps: int | None = None, seed: int = 42, use_vllm: bool = False):
    """TRL ``GRPOConfig`` for a preset.

    CPU and smoke runs set ``use_cpu`` and turn bf16/fp16 off explicitly (TRL defaults to bf16),
    and skip gradient checkpointing (memory is not the bottleneck there, time is).
    """
    from trl import GRPOConfig

    mode = get_mode(mode)
    on_gpu = mode == "gpu"
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=max_steps or preset.max_steps,
        learning_rate=preset.learning_rate,
        lr_scheduler_type=preset.lr_scheduler_type,
        warmup_steps=preset.warmup_ratio,  # a float < 1 is a ratio of max_steps
        weight_decay=preset.weight_decay,
        max_grad_norm=preset.max_grad_norm,
        optim=preset.optim if on_gpu else "adamw_torch",
        per_device_train_batch_size=preset.per_device_train_batch_size,
        gradient_accumulation_steps=preset.gradient_accumulation_steps,
        num_generations=preset.num_generations,
        max_completion_length=preset.max_completion_length,
        temperature=preset.temperature,
        loss_type=preset.loss_type,
        beta=preset.beta,
        scale_rewards=preset.scale_rewards,
        mask_truncated_completions=preset.mask_truncated_completions,
        bf16=on_gpu and preset.precision == "bf16",
        fp16=on_gpu and preset.precision == "fp16",
        use_cpu=not on_gpu,
        gradient_checkpointing=on_gpu and preset.gradient_checkpointing,
        use_vllm=use_vllm or preset.vllm_server_url is not None,
        vllm_mode="server" if preset.vllm_server_url else "colocate",
        vllm_server_base_url=preset.vllm_server_url,
        vllm_gpu_memory_utilization=preset.gpu_memory_utilization,
        logging_steps=preset.logging_steps,
        save_strategy="steps",
        save_steps=preset.save_steps,
        save_total_limit=2,
        log_completions=True,
        num_completions_to_print=preset.completions_to_print,
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # LoRA: every adapter weight gets a gradient
    )


# ------------------------------------------------------------------------------- callbacks
def _trainer_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def write_log_history(log_history: list[dict], output_dir: str | os.PathLike) -> Path:
    """Write the trainer's log history as JSON, atomically (a disconnect never leaves half a file)."""
    path = Path(output_dir) / LOG_HISTORY
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(log_history, indent=1))
    tmp.replace(path)
    return path


def read_log_history(output_dir: str | os.PathLike) -> list[dict]:
    """The log history written by :func:`write_log_history` (an empty list when there is none)."""
    path = Path(output_dir) / LOG_HISTORY
    return json.loads(path.read_text()) if path.is_file() else []


class LogHistoryWriter(_trainer_callback_base()):
    """Rewrite ``log_history.json`` after every logging step, so that the notebook can plot a run
    while it is going and a crashed or disconnected run keeps its curve."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            write_log_history(state.log_history, args.output_dir)


class StopAtStep(_trainer_callback_base()):
    """Stop training after ``step`` optimizer steps, as a disconnect would (used to test resume)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


# ------------------------------------------------------------------ TRL on a CPU without Triton
def _torch_chunked_logprobs(hidden, weight, bias, targets, temperature, chunk_size,
                            final_logit_softcapping=None, logit_scale=1.0, outputs=("entropy",)):
    """Per-token log-probs (and extras) of ``targets`` under ``hidden @ weight.T``, in plain torch.

    Same inputs and outputs as TRL 1.15's Triton ``ChunkedLogProbFunction`` (``chunk_size`` is
    unused: CPU batches are small enough for the whole logits matrix), differentiable by autograd.
    """
    import torch

    logits = torch.nn.functional.linear(hidden.float(), weight.float(),
                                        None if bias is None else bias.float())
    logits = logits * logit_scale
    if final_logit_softcapping is not None:
        logits = final_logit_softcapping * torch.tanh(logits / final_logit_softcapping)
    logits = logits / temperature
    log_z = torch.logsumexp(logits, dim=-1)
    target_logits = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    logprobs = target_logits - log_z
    entropy = log_sum_sq = mean_logits = is_top1 = None
    if "entropy" in outputs:
        entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    with torch.no_grad():
        if "log_sum_sq_probs" in outputs:
            log_sum_sq = torch.logsumexp(2 * logits, dim=-1) - 2 * log_z
        if "mean_logits" in outputs:
            mean_logits = logits.mean(-1)
        if "is_top1" in outputs:
            is_top1 = logits.argmax(-1) == targets
    return logprobs, entropy, log_sum_sq, mean_logits, is_top1


class _TorchChunkedLogProb:
    """Stand-in with the ``.apply`` interface TRL calls."""

    apply = staticmethod(_torch_chunked_logprobs)


def ensure_logprob_kernel() -> bool:
    """Give TRL a plain-torch log-prob head where its Triton kernel cannot load.

    TRL 1.15's ``GRPOTrainer`` computes per-token log-probs with a Triton kernel; Triton ships
    with CUDA builds of torch on Linux only, so on a CPU build (laptops, CI, this course's cpu and
    smoke modes) the kernel is None and training fails with ``'NoneType' object has no attribute
    'apply'``. This installs :func:`_torch_chunked_logprobs` in that case and leaves TRL untouched
    otherwise. Returns True when the fallback is (now) in place.
    """
    import trl.trainer.utils as trl_utils

    if trl_utils._ChunkedLogProbFunction is None:
        trl_utils._ChunkedLogProbFunction = _TorchChunkedLogProb
    return trl_utils._ChunkedLogProbFunction is _TorchChunkedLogProb


class TimeLimit(_trainer_callback_base()):
    """Stop (with a checkpoint) once ``minutes`` of training have passed: a Colab session or a
    laptop demo has a fixed time budget, and a resumable stop beats a killed run."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.perf_counter() - self.start >= self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control


# -------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What a run leaves behind: the trainer (for its model and state), where it wrote, and
    the logged metrics."""

    trainer: Any
    output_dir: Path
    log_history: list[dict]
    resumed_from: str | None


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` folder in ``output_dir``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def with_prefix(reward_func, prefix: str):
    """The reward function, scoring ``prefix + completion``: with :func:`prefill_think` the
    opening ``<think>`` is in the prompt, and the format rewards must still see it."""

    @functools.wraps(reward_func)  # keeps __name__: TRL logs rewards/<name>/mean
    def scored_with_prefix(completions, **kwargs):
        return reward_func([prefix + completion for completion in completions], **kwargs)

    return scored_with_prefix


def lean_rollout(preset: Preset, precision: str = "auto", seed: int = 0):
    """A TRL ``rollout_func`` that samples with :class:`utils.sampling.LeanSampler` instead of
    HF ``generate``: on a CPU it plays the part vLLM plays on a GPU (a fast sampler beside the
    trainer, its weights copied from the policy before every rollout, bf16 where native).

    TRL hands it the step's prompts, each repeated ``num_generations`` times in a row, and takes
    back one completion per entry with the sampler's log-probs. TRL applies its off-policy
    correction only with vLLM, so with bf16 sampling the update is slightly off-policy here,
    uncorrected (notebook 06, section 11, measures that gap); ``precision="fp32"`` removes it.
    """
    import itertools

    import torch

    from utils.generation import eos_ids, render_prompt
    from utils.sampling import LeanSampler, sampling_dtype

    calls = itertools.count()  # a new sampling seed for every rollout

    def rollout_func(prompts, trainer):
        tokenizer, model = trainer.processing_class, trainer.model
        g = preset.num_generations
        if len(prompts) % g or any(prompts[i] != prompts[i - i % g] for i in range(len(prompts))):
            g = 1  # not laid out in groups (e.g. an evaluation batch): one sample per entry
        rows = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
                for p in prompts[::g]]
        sampler = LeanSampler(model, sampling_dtype(precision))
        generator = torch.Generator().manual_seed(seed + next(calls))
        completions, logps = sampler.sample(rows, g, preset.max_completion_length,
                                            eos_ids(model, tokenizer), preset.temperature, 1.0,
                                            generator)
        return {"prompt_ids": [row for row in rows for _ in range(g)],
                "completion_ids": completions, "logprobs": logps}

    return rollout_func


def build_trainer(model, tokenizer, preset: Preset, dataset, output_dir: str | os.PathLike,
                  mode: str | None = None, max_steps: int | None = None,
                  reward_weights: Mapping[str, float] | None = None, seed: int = 42,
                  callbacks: Sequence[Any] = ()):
    """A ``GRPOTrainer`` for the policy (already LoRA-wrapped by ``load_policy``).

    On the Unsloth GPU backend ``load_policy`` has imported Unsloth, which patches ``GRPOTrainer``
    on import; vLLM generation is used when the model carries Unsloth's vLLM engine. On a CPU,
    a preset with ``lean_sampler`` samples through :func:`lean_rollout`.
    """
    mode = get_mode(mode)
    from trl import GRPOTrainer  # Unsloth-patched when load_policy imported Unsloth first

    from utils.rewards import reward_funcs_and_weights

    ensure_logprob_kernel()

    weights = reward_weights if reward_weights is not None else preset.reward_weights
    funcs, weight_list = reward_funcs_and_weights(weights)
    if preset.think_prefill:
        funcs = [with_prefix(func, THINK_PREFILL) for func in funcs]
    use_vllm = mode == "gpu" and preset.use_vllm and hasattr(model, "vllm_engine")
    config = grpo_config(preset, output_dir, mode=mode, max_steps=max_steps, seed=seed,
                         use_vllm=use_vllm)
    config.reward_weights = weight_list
    from utils.sampling import LeanSampler

    lean = preset.lean_sampler and mode != "gpu" and LeanSampler.supports(model)
    if lean:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental
    extra = {"rollout_func": lean_rollout(preset, seed=seed)} if lean else {}
    return GRPOTrainer(model=model, reward_funcs=funcs, args=config, train_dataset=dataset,
                       processing_class=tokenizer, callbacks=[LogHistoryWriter(), *callbacks],
                       **extra)


def train(model, tokenizer, preset: Preset, dataset, output_dir: str | os.PathLike,
          mode: str | None = None, max_steps: int | None = None,
          reward_weights: Mapping[str, float] | None = None, resume: bool = False,
          seed: int = 42, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Run GRPO; with ``resume=True`` continue from the newest checkpoint in ``output_dir``.

    ``max_steps`` is the target step count of the whole run, not of this call: after a disconnect
    at step 40 of 100, ``train(..., max_steps=100, resume=True)`` runs steps 41-100 and the log
    history continues where the checkpoint left it. Without a checkpoint, resume starts afresh.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(model, tokenizer, preset, dataset, output_dir, mode=mode,
                            max_steps=max_steps, reward_weights=reward_weights, seed=seed,
                            callbacks=callbacks)
    checkpoint = last_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        print(f"resume: no checkpoint in {output_dir}, starting from step 0")
    elif checkpoint:
        print(f"resume: continuing from {checkpoint}")

    with compact_completion_log(every=10):  # two short lines instead of TRL's per-step table
        trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.is_world_process_zero():
        write_log_history(trainer.state.log_history, output_dir)
    return TrainResult(trainer, output_dir, list(trainer.state.log_history), checkpoint)


# ---------------------------------------------------------------------------------- saving
def save_adapter(model, tokenizer, output_dir: str | os.PathLike) -> Path:
    """Save only the LoRA weights (a few MB to ~100 MB) and the tokenizer to ``output_dir/adapter``."""
    path = Path(output_dir) / ADAPTER_DIR
    # With beta > 0 TRL adds a frozen "ref" copy of the adapter for the KL term: not worth saving.
    adapters = ["default"] if "default" in getattr(model, "peft_config", {}) else None
    model.save_pretrained(str(path), selected_adapters=adapters)
    tokenizer.save_pretrained(str(path))
    return path


def save_merged(model, tokenizer, output_dir: str | os.PathLike, mode: str | None = None,
                model_name: str | None = None) -> Path:
    """A standalone 16-bit model with the LoRA merged in, at ``output_dir/merged``.

    GPU: Unsloth de-quantizes the 4-bit base and merges (``merged_16bit``). CPU/smoke: the base is
    reloaded and the saved adapter merged into it (the training model keeps its LoRA).
    """
    mode = get_mode(mode)
    path = Path(output_dir) / "merged"
    if mode == "gpu":
        model.save_pretrained_merged(str(path), tokenizer, save_method="merged_16bit")
        return path
    import torch

    from utils.models import load_for_inference

    adapter = save_adapter(model, tokenizer, output_dir)
    merged, merged_tokenizer = load_for_inference(mode, model_name=model_name, adapter=adapter)
    merged.to(torch.bfloat16).save_pretrained(str(path))
    merged_tokenizer.save_pretrained(str(path))
    return path


def save_gguf(model, tokenizer, output_dir: str | os.PathLike, quantization: str = "q4_k_m",
              mode: str | None = None) -> Path:
    """GGUF export for llama.cpp / Ollama (GPU path only: Unsloth builds llama.cpp to quantize)."""
    if get_mode(mode) != "gpu":
        raise RuntimeError("GGUF export runs on the GPU path only (Unsloth + llama.cpp); on CPU "
                           "save_merged() and convert with llama.cpp's convert_hf_to_gguf.py")
    path = Path(output_dir) / "gguf"
    model.save_pretrained_gguf(str(path), tokenizer, quantization_method=quantization)
    return path


def answer(model, tokenizer, question: str, max_new_tokens: int = 256,
           think_prefill: bool = False) -> str:
    """The model's greedy answer to one GSM8K question with the course's system prompt.

    Greedy, so that before/after differ only because the weights changed, not by sampling luck.
    With ``think_prefill`` the prompt is the one training used and the returned text starts with
    the prefilled ``<think>``.
    """
    from utils.generation import generate
    from utils.prompts import build_messages

    messages = build_messages(question)
    prompt = prefill_think(tokenizer, messages) if think_prefill else messages
    was_training = model.training
    model.eval()
    try:
        completion = generate(model, tokenizer, [prompt], n=1, max_new_tokens=max_new_tokens,
                              temperature=0.0)[0][0]
    finally:
        model.train(was_training)
    return (THINK_PREFILL if think_prefill else "") + completion.text


def _completion_text(completion) -> str:
    from utils.rewards import completion_text

    return completion_text(list(completion) if not isinstance(completion, str) else completion)


@contextmanager
def compact_completion_log(every: int = 10, width: int = 150) -> Iterator[None]:
    """While training, replace TRL's per-step rich table of completions with two short lines.

    With ``log_completions=True`` TRL prints a full-width table (the whole prompt, every
    completion) at each logging step: ~900 px a step in a notebook, which buries everything else.
    The completions are still saved to ``output_dir/completions/*.parquet`` (see
    :func:`utils.health.sampled_completions`); this prints, at step 1 and every ``every`` steps, the best and
    the worst completion of the step by advantage, cut to ``width`` characters.
    """
    import sys

    import trl.trainer.grpo_trainer as grpo_module

    original = grpo_module.print_prompt_completions_sample
    # Unsloth compiles its own GRPOTrainer module, which imports the printer by name: patch every
    # module holding TRL's function (read from module dicts: lazy modules must not import here).
    holders = [module for module in list(sys.modules.values())
               if vars(module).get("print_prompt_completions_sample", None) is original]

    def compact(prompts, completions, rewards, advantages, step, num_samples=None, extra=None):
        if step != 1 and step % every:
            return
        advantages = list(advantages)
        if not advantages:
            return
        totals = [sum(values[i] for values in rewards.values() if values[i] is not None)
                  for i in range(len(advantages))]
        order = sorted(range(len(advantages)), key=advantages.__getitem__)
        for label, i in (("best", order[-1]), ("worst", order[0])):
            text = " ".join(_completion_text(completions[i]).split())
            print(f"step {step:>4} {label:<5} reward {totals[i]:5.2f}  advantage "
                  f"{advantages[i]:+.2f}  {text[:width]!r}")

    for module in holders:
        module.print_prompt_completions_sample = compact
    try:
        yield
    finally:
        for module in holders:
            module.print_prompt_completions_sample = original
