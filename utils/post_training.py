"""Beyond GRPO, run for real: rejection sampling fine-tuning, distillation, test-time compute.

Notebook 06 compares, on the same task and the same held-out problems, what the R1 paper and its
successors did besides online RL:

- **Rejection sampling fine-tuning** (RFT; also called expert iteration or STaR): sample ``k``
  completions per training question (:func:`sample_groups`), keep those the verifier accepts
  (:func:`correct_examples`), and fine-tune on them with plain SFT (:func:`train_sft`). Stage 3 of
  DeepSeek-R1 is this at scale (about 600k reasoning samples).
- **Distillation**: the same SFT, on the correct traces of a *stronger* model (R1's distilled
  Qwen and Llama models were trained this way, with no RL at all).
- **Test-time compute**: several samples per held-out question, scored as maj@k (majority vote)
  and pass@k (at least one right) for growing k (:func:`maj_at_k_curve`, :func:`pass_at_k_curve`).

Prompts are the course's chat prompt; with ``think_prefill`` (the cpu preset) the assistant turn
already starts with ``<think>\\n`` (see :func:`utils.training.prefill_think`) and every grader sees
that prefix in front of the completion, exactly as in GRPO training. Evaluation rows have the
layout of :mod:`utils.evaluation`, so its ``summarize`` and ``compare_runs`` apply unchanged.
"""

from __future__ import annotations

import os
import random
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from utils.evaluation import Question, group_by_question, sample_rows
from utils.generation import Completion, generate, render_prompt
from utils.prompts import build_messages
from utils.rewards import is_correct, parse_number
from utils.stats import majority_vote, pass_at_k
from utils.training import THINK_PREFILL, prefill_think


def build_prompt(tokenizer, question: str, think_prefill: bool = True) -> str:
    """The prompt text the model continues: chat template, and ``<think>\\n`` with the prefill."""
    messages = build_messages(question)
    return prefill_think(tokenizer, messages) if think_prefill else render_prompt(tokenizer,
                                                                                 messages)


def _prefix(think_prefill: bool) -> str:
    return THINK_PREFILL if think_prefill else ""


def _generate_in_eval_mode(model, tokenizer, prompts, n, max_new_tokens, temperature,
                           batch_size, seed):
    """:func:`utils.generation.generate` with dropout off, the model's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        return generate(model, tokenizer, prompts, n=n, max_new_tokens=max_new_tokens,
                        temperature=temperature, batch_size=batch_size, seed=seed)
    finally:
        model.train(was_training)


def sample_groups(model, tokenizer, rows: Sequence[Mapping[str, Any]], k: int,
                  max_new_tokens: int, temperature: float = 1.0, think_prefill: bool = True,
                  batch_size: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """``k`` sampled completions per task row, each checked by the verifier.

    Returns one dict per row: ``question``, ``answer``, ``prompt`` (the text the model saw),
    ``completions`` (texts without the prefill), ``correct`` (:func:`utils.rewards.is_correct`
    on prefill + completion) and ``num_tokens``. The same seed gives the same samples.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    prompts = [build_prompt(tokenizer, row["question"], think_prefill) for row in rows]
    outputs = _generate_in_eval_mode(model, tokenizer, prompts, k, max_new_tokens, temperature,
                                     batch_size, seed)
    prefix = _prefix(think_prefill)
    return [
        {"question": row["question"], "answer": str(row["answer"]), "prompt": prompt,
         "completions": [c.text for c in completions],
         "correct": [is_correct(prefix + c.text, row["answer"]) for c in completions],
         "num_tokens": [c.num_tokens for c in completions]}
        for row, prompt, completions in zip(rows, prompts, outputs, strict=True)
    ]


def sample_budget(groups: Sequence[Mapping[str, Any]]) -> int:
    """Completions sampled in total: the cost that RFT and GRPO are compared at."""
    return sum(len(group["completions"]) for group in groups)


def correct_examples(groups: Sequence[Mapping[str, Any]],
                     max_per_prompt: int | None = None) -> list[dict[str, str]]:
    """SFT examples (``prompt``, ``completion``) from the verified-correct samples.

    Duplicate completions of a prompt count once (a model that found one answer and repeats it
    should not weigh that prompt k times); ``max_per_prompt`` caps the rest. This is the
    *rejection* in rejection sampling: everything the verifier refuses is thrown away.
    """
    examples = []
    for group in groups:
        kept = list(dict.fromkeys(c for c, ok in zip(group["completions"], group["correct"])
                                  if ok))
        for completion in kept[:max_per_prompt]:
            examples.append({"prompt": group["prompt"], "completion": completion})
    return examples


def yield_table(groups: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How much a round of sampling yields: samples, correct ones, prompts with at least one
    correct sample (what RFT can learn from) and prompts with mixed verdicts (what GRPO and DPO
    can learn from)."""
    correct = [sum(group["correct"]) for group in groups]
    sizes = [len(group["correct"]) for group in groups]
    return {"prompts": len(groups), "samples": sum(sizes), "correct_samples": sum(correct),
            "prompts_with_a_correct_sample": sum(c > 0 for c in correct),
            "prompts_with_mixed_verdicts": sum(0 < c < n for c, n in zip(correct, sizes))}


# ----------------------------------------------------------------------------- SFT (TRL)
def train_sft(model, tokenizer, examples: Sequence[Mapping[str, str]],
              output_dir: str | os.PathLike, epochs: float = 2.0, learning_rate: float = 2e-4,
              batch_size: int = 8, max_length: int | None = 512, use_cpu: bool = True,
              seed: int = 42, **overrides: Any):
    """Fine-tune ``model`` (a PEFT LoRA policy) on prompt-completion pairs with TRL's SFTTrainer.

    The loss covers the completion tokens only (TRL's default for prompt-completion data), so the
    model learns to *answer*, not to reproduce the question. Returns the trainer.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from utils.training import ensure_logprob_kernel

    if not examples:
        raise ValueError("no SFT examples: the verifier accepted none of the samples; sample more "
                         "completions per question (k), or use an easier task")
    ensure_logprob_kernel()  # TRL's fused log-prob head needs Triton; CPU builds get plain torch
    settings: dict[str, Any] = {
        "output_dir": str(output_dir), "num_train_epochs": epochs,
        "learning_rate": learning_rate, "per_device_train_batch_size": batch_size,
        "max_length": max_length, "lr_scheduler_type": "constant", "logging_steps": 1,
        "save_strategy": "no", "report_to": "none", "use_cpu": use_cpu, "bf16": False,
        "fp16": False, "seed": seed, "data_seed": seed, "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    trainer = SFTTrainer(model=model, args=SFTConfig(**settings),
                         train_dataset=Dataset.from_list([dict(e) for e in examples]),
                         processing_class=tokenizer)
    trainer.train()
    return trainer


# ----------------------------------------------------------------------------- evaluation
def questions_from_rows(rows: Sequence[Mapping[str, Any]]) -> list[Question]:
    """Task rows as :class:`utils.evaluation.Question` (id = position, so runs pair up)."""
    return [Question(i, row["question"], str(row["answer"]), build_messages(row["question"]))
            for i, row in enumerate(rows)]


def evaluate(model, tokenizer, rows: Sequence[Mapping[str, Any]], samples: int = 1,
             max_new_tokens: int = 64, temperature: float | None = None,
             think_prefill: bool = True, batch_size: int = 16,
             seed: int = 0) -> list[dict[str, Any]]:
    """Graded evaluation rows (the :mod:`utils.evaluation` layout) for held-out task rows (not
    the demo recipe's :func:`utils.cpu_demo.evaluate`, nor :func:`utils.toy_tasks.evaluate`).

    One sample is greedy; several are sampled at temperature 0.8 unless told otherwise. The
    prefill is part of the graded text, as in training.
    """
    temperature = (0.0 if samples == 1 else 0.8) if temperature is None else temperature
    prompts = [build_prompt(tokenizer, row["question"], think_prefill) for row in rows]
    outputs = _generate_in_eval_mode(model, tokenizer, prompts, samples, max_new_tokens,
                                     temperature, batch_size, seed)
    prefix = _prefix(think_prefill)
    graded = []
    for question, completions in zip(questions_from_rows(rows), outputs, strict=True):
        graded.extend(sample_rows(question, [Completion(prefix + c.text, c.num_tokens, c.finished)
                                             for c in completions]))
    return graded


def pass_at_k_curve(rows: Sequence[Mapping[str, Any]], ks: Sequence[int],
                    metric: str = "correct_lenient") -> dict[int, float]:
    """Mean unbiased pass@k over questions (:func:`utils.stats.pass_at_k`) for each k."""
    groups = list(group_by_question(rows).values())
    n = len(groups[0])
    return {k: statistics.fmean(pass_at_k(len(g), sum(r[metric] for r in g), k) for g in groups)
            for k in ks if k <= n}


def maj_at_k_curve(rows: Sequence[Mapping[str, Any]], ks: Sequence[int], draws: int = 200,
                   seed: int = 0) -> dict[int, float]:
    """Mean maj@k over questions for each k, from n >= k samples per question.

    maj@k has no closed form like pass@k, so it is estimated by drawing ``draws`` random subsets
    of k samples per question (without replacement) and voting in each
    (:func:`utils.stats.majority_vote`, exact numeric values). With k = n there is one subset.
    """
    rng = random.Random(seed)
    groups = list(group_by_question(rows).values())
    n = len(groups[0])
    curve = {}
    for k in (k for k in ks if k <= n):
        wins = []
        for group in groups:
            gold = parse_number(group[0]["gold"])
            subsets = 1 if k == n else draws
            for _ in range(subsets):
                vote = majority_vote([r["extracted"] for r in rng.sample(group, k)])
                wins.append(vote is not None and parse_number(vote) == gold)
        curve[k] = statistics.fmean(wins)  # every question has the same number of subsets
    return curve


def plot_test_time_compute(curves: Mapping[str, Mapping[str, Mapping[int, float]]],
                           title: str = "Test-time compute on held-out problems"):
    """Accuracy against k (log scale): one colour per model, solid pass@k, dashed maj@k.

    ``curves`` maps a model name to ``{"pass@k": {k: value}, "maj@k": {k: value}}``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, curve in curves.items():
        line = None
        for metric, style in (("pass@k", "-"), ("maj@k", "--")):
            if metric not in curve:
                continue
            ks = sorted(curve[metric])
            drawn, = ax.plot(ks, [curve[metric][k] for k in ks], style, marker="o", markersize=4,
                             color=None if line is None else line.get_color(),
                             label=f"{name} {metric}")
            line = line or drawn
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("fraction of questions")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comparison_table(runs: Mapping[str, Sequence[Mapping[str, Any]]], reference: str,
                     metric: str = "correct_lenient"):
    """One row per run (greedy, same questions): accuracy with its Wilson 95% interval, strict
    accuracy, mean length, and the paired difference to ``reference`` (bootstrap 95% interval
    and McNemar's exact p-value, :func:`utils.evaluation.compare_runs`)."""
    import pandas as pd

    from utils.evaluation import compare_runs
    from utils.stats import wilson_interval

    if reference not in runs:
        raise ValueError(f"reference run {reference!r} is not among {list(runs)}")
    table = []
    for name, rows in runs.items():
        n = len(group_by_question(rows))
        correct = sum(r[metric] for r in rows)
        low, high = wilson_interval(correct, n)
        row = {"run": name, "n": n, "accuracy": correct / n, "ci95": f"{low:.0%}-{high:.0%}",
               "strict": statistics.fmean(r["correct_strict"] for r in rows),
               "tokens": statistics.fmean(r["num_tokens"] for r in rows)}
        if name != reference:
            paired = compare_runs(runs[reference], rows, metric=metric)
            a, b = paired["difference_ci95"]
            row.update({f"vs {reference}": f"{paired['difference']:+.1%} ({a:+.1%} to {b:+.1%})",
                        "McNemar p": paired["mcnemar"]["p_value"] if paired["mcnemar"] else None})
        table.append(row)
    return pd.DataFrame(table).set_index("run")
