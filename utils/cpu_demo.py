"""``make cpu-demo``: SmolLM2-135M gets measurably better at word problems in minutes on a CPU.

The recipe (chosen by experiment, see docs/experiments.md):

1. **Evaluate** the model as it is on held-out problems of the task ladder (:mod:`utils.tasks`),
   greedy, with the course's grader (:func:`utils.rewards.is_correct`, strict format).
2. **Cold start**: a short supervised pass on a few dozen worked examples in the
   ``<think>``/``<answer>`` format, as DeepSeek-R1 did before its RL stage. Without it the small
   model almost never closes its tags, and GRPO has too few groups with reward spread.
3. **GRPO** written out in plain PyTorch (:mod:`utils.grpo_scratch`): groups of samples per
   question, rewards from :mod:`utils.rewards`, group-relative advantages, clipped loss.
4. **Evaluate again** on the same questions; McNemar's exact test pairs them (:mod:`utils.stats`).

Run ``python -m utils.cpu_demo`` (cpu mode) or ``--mode smoke`` (a tiny random model, seconds:
checks the plumbing, learns nothing). The last line printed is the summary::

    cpu-demo: accuracy A% -> B% (n=N, paired p=P), strict format F% -> G%, M.M min
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from utils import grpo_scratch
from utils.generation import generate
from utils.prompts import build_messages
from utils.rewards import is_correct, strict_format_reward
from utils.stats import mcnemar_exact
from utils.tasks import DEFAULT_RUNG, load_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class Recipe:
    """Every knob of the demo. ``lora_rank=None`` trains all weights instead of a LoRA (slower
    per step on a CPU: every weight gets a gradient and an AdamW update)."""

    rung: str = DEFAULT_RUNG
    eval_n: int = 200
    eval_max_new_tokens: int = 64
    eval_batch: int = 100
    sft_examples: int = 48
    sft_epochs: int = 2
    sft_batch: int = 8
    sft_lr: float = 2e-4
    grpo_steps: int = 10
    questions_per_step: int = 8
    group_size: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 48
    learning_rate: float = 1e-4
    loss_type: str = "dapo"
    epsilon_high: float = 0.28
    lora_rank: int | None = 32
    reward_weights: tuple[tuple[str, float], ...] = (("accuracy", 1.0), ("strict_format", 0.5))
    seed: int = 0


RECIPES = {
    "cpu": Recipe(),
    "smoke": Recipe(eval_n=4, eval_max_new_tokens=4, eval_batch=4, sft_examples=4, sft_epochs=1,
                    sft_batch=2, grpo_steps=2, questions_per_step=2, group_size=2,
                    max_new_tokens=4, lora_rank=4, learning_rate=1e-4),
}


def worked_solution(row: dict) -> str:
    """A formatted answer for the cold start: the arithmetic inside ``<think>``, the number in
    ``<answer>``. Built from the row's exact expression, never from a model."""
    steps = row["expression"] if row.get("expression") else row["answer"]
    return (f"<think>\n{steps} = {row['answer']}\n</think>\n<answer>\n{row['answer']}\n"
            "</answer>")


def evaluate(model, tokenizer, rows: list[dict], recipe: Recipe) -> dict:
    """Greedy answers to ``rows``: per-question correctness and strict format, and the texts."""
    model.eval()
    outputs = generate(model, tokenizer, [build_messages(r["question"]) for r in rows],
                       max_new_tokens=recipe.eval_max_new_tokens, batch_size=recipe.eval_batch)
    texts = [o[0].text for o in outputs]
    return {"correct": [is_correct(t, r["answer"]) for t, r in zip(texts, rows)],
            "strict_format": [strict_format_reward([t])[0] == 1.0 for t in texts],
            "texts": texts}


def cold_start(model, tokenizer, rows: list[dict], recipe: Recipe) -> list[float]:
    """Supervised fine-tuning on worked solutions; the loss counts the answer tokens only."""
    from utils.generation import render_prompt

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.sft_lr, weight_decay=0.0)
    eos = tokenizer.eos_token
    examples = []
    for row in rows:
        prompt = tokenizer(render_prompt(tokenizer, build_messages(row["question"])),
                           add_special_tokens=False)["input_ids"]
        answer = tokenizer(worked_solution(row) + eos, add_special_tokens=False)["input_ids"]
        examples.append((prompt, answer))
    rng = random.Random(recipe.seed)
    losses = []
    model.train()
    for _ in range(recipe.sft_epochs):
        rng.shuffle(examples)
        for start in range(0, len(examples), recipe.sft_batch):
            chunk = examples[start:start + recipe.sft_batch]
            prompt_ids, prompt_mask = grpo_scratch._pad([p for p, _ in chunk], tokenizer.pad_token_id,
                                                        left=True)
            answer_ids, answer_mask = grpo_scratch._pad([a for _, a in chunk],
                                                        tokenizer.pad_token_id, left=False)
            logp = grpo_scratch.token_logprobs(model, prompt_ids, prompt_mask, answer_ids,
                                               answer_mask, share_prefix=True)
            answer_mask = answer_mask.float()
            loss = -(logp * answer_mask).sum() / answer_mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def grpo_train(model, tokenizer, rows: list[dict], recipe: Recipe, output_dir: Path) -> list[dict]:
    """GRPO steps with :mod:`utils.grpo_scratch`; every completion goes to completions.jsonl."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    log_path = output_dir / "completions.jsonl"
    log_path.unlink(missing_ok=True)
    weights = dict(recipe.reward_weights)
    order = list(range(len(rows)))
    random.Random(recipe.seed).shuffle(order)
    curve = []
    for step in range(recipe.grpo_steps):
        start = time.perf_counter()
        ids = order[step * recipe.questions_per_step:(step + 1) * recipe.questions_per_step]
        model.eval()
        batch = grpo_scratch.rollout(
            model, tokenizer, [build_messages(rows[i]["question"]) for i in ids],
            [rows[i]["answer"] for i in ids], recipe.group_size, recipe.max_new_tokens,
            temperature=recipe.temperature, weights=weights, seed=recipe.seed + step)
        grpo_scratch.log_completions(log_path, step, batch, ids, recipe.group_size)
        sampled = time.perf_counter()
        model.train()
        loss, _ = grpo_scratch.grpo_loss(model, batch, recipe.group_size, recipe.temperature,
                                         loss_type=recipe.loss_type,
                                         epsilon_high=recipe.epsilon_high,
                                         max_completion_length=recipe.max_new_tokens,
                                         share_prefix=True)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        row = {"step": step, "loss": loss.item(), "reward": batch.rewards.mean().item(),
               "accuracy": sum(s["accuracy"] for s in batch.scores) / len(batch.scores),
               "strict_format": sum(s["strict_format"] for s in batch.scores) / len(batch.scores),
               "spread_share": grpo_scratch.spread_share(batch.rewards, recipe.group_size),
               "completion_tokens": batch.completion_mask.sum(1).float().mean().item(),
               "sample_seconds": sampled - start, "seconds": time.perf_counter() - start}
        curve.append(row)
        print(f"  step {step + 1:3d}/{recipe.grpo_steps}  reward {row['reward']:.2f}  "
              f"accuracy {row['accuracy']:.2f}  format {row['strict_format']:.2f}  "
              f"spread {row['spread_share']:.2f}  {row['seconds']:.0f} s "
              f"(sampling {row['sample_seconds']:.0f} s)", flush=True)
    return curve


def load_model(mode: str, recipe: Recipe):
    """The mode's model in fp32 for training: all weights trainable, or a LoRA on top."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.models import resolve_model

    path = resolve_model(mode)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if recipe.lora_rank:
        from peft import LoraConfig, get_peft_model

        from utils.models import LORA_TARGETS

        model = get_peft_model(model, LoraConfig(r=recipe.lora_rank, lora_alpha=2 * recipe.lora_rank,
                                                 target_modules=LORA_TARGETS, lora_dropout=0.0,
                                                 task_type="CAUSAL_LM"))
    return model, tokenizer


def plot_curve(curve: list[dict], path: Path) -> Path:
    """Accuracy and strict format of the sampled completions, and the share of groups with
    reward spread (the ones GRPO learns from), over GRPO steps.

    Drawn on a bare ``Figure`` (no pyplot, no backend switch): called from a notebook, it must
    leave the notebook's inline plotting as it was."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    steps = [r["step"] + 1 for r in curve]
    labels = {"accuracy": "right answers", "strict_format": "strict format",
              "spread_share": "groups with reward spread"}
    for key, label in labels.items():
        ax.plot(steps, [r[key] for r in curve], marker="o", label=label)
    ax.set(xlabel="GRPO step", ylabel="share of the step's samples / groups", ylim=(-0.02, 1.02),
           title="cpu-demo: SmolLM2-135M, GRPO after a short cold start")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _minutes(started: float) -> float:
    return (time.perf_counter() - started) / 60


def summary_line(before: dict, after: dict, minutes: float) -> str:
    """The demo's last line (its format is part of the course's interface)."""
    n = len(before["correct"])
    test = mcnemar_exact(before["correct"], after["correct"])

    def pct(values):
        return 100 * sum(values) / len(values)

    return (f"cpu-demo: accuracy {pct(before['correct']):.1f}% -> {pct(after['correct']):.1f}% "
            f"(n={n}, paired p={test.p_value:.2g}), strict format "
            f"{pct(before['strict_format']):.1f}% -> {pct(after['strict_format']):.1f}%, "
            f"{minutes:.1f} min")


def run(mode: str = "cpu", output_dir: str | os.PathLike = "runs/cpu-demo",
        image: str | os.PathLike | None = "images/cpu_demo_training.png",
        recipe: Recipe | None = None, skip_grpo: bool = False,
        eval_after_sft: bool = False) -> dict:
    """The whole demo; returns before/after evaluations, the curve and the summary line."""
    started = time.perf_counter()
    recipe = recipe or RECIPES[mode]
    torch.manual_seed(recipe.seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(mode, recipe)
    held_out = load_task(recipe.rung, "test", n=recipe.eval_n, seed=recipe.seed)
    train_rows = load_task(recipe.rung, "train",
                           n=recipe.sft_examples + recipe.grpo_steps * recipe.questions_per_step,
                           seed=recipe.seed)
    print(f"cpu-demo ({mode}): {recipe.rung}, {len(held_out)} held-out problems", flush=True)
    before = evaluate(model, tokenizer, held_out, recipe)
    print(f"  before: accuracy {sum(before['correct'])}/{len(held_out)}, strict format "
          f"{sum(before['strict_format'])}/{len(held_out)} ({_minutes(started):.1f} min)",
          flush=True)
    sft_losses = cold_start(model, tokenizer, train_rows[:recipe.sft_examples], recipe)
    print(f"  cold start: {len(sft_losses)} steps, loss {sft_losses[0]:.2f} -> "
          f"{sft_losses[-1]:.2f} ({_minutes(started):.1f} min)", flush=True)
    after_sft = None
    if eval_after_sft:  # an ablation: how much of the gain is the cold start alone
        after_sft = evaluate(model, tokenizer, held_out, recipe)
        print(f"  after cold start: accuracy {sum(after_sft['correct'])}/{len(held_out)}, strict "
              f"format {sum(after_sft['strict_format'])}/{len(held_out)} "
              f"({_minutes(started):.1f} min)", flush=True)
    curve = [] if skip_grpo else grpo_train(model, tokenizer, train_rows[recipe.sft_examples:],
                                            recipe, output_dir)
    after = evaluate(model, tokenizer, held_out, recipe)
    adapter = output_dir / "adapter"
    model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    minutes = _minutes(started)
    line = summary_line(before, after, minutes)
    result = {"recipe": asdict(recipe), "mode": mode, "before": before, "after": after,
              "after_cold_start": after_sft,
              "curve": curve, "sft_losses": sft_losses, "summary": line,
              "torch_threads": torch.get_num_threads()}
    (output_dir / "result.json").write_text(json.dumps(result, indent=1))
    if image is not None and curve:
        plot_curve(curve, Path(image))
    print(line, flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(RECIPES), default="cpu")
    parser.add_argument("--output-dir", default="runs/cpu-demo")
    parser.add_argument("--image", default="images/cpu_demo_training.png")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--skip-grpo", action="store_true", help="cold start only (ablation)")
    parser.add_argument("--eval-after-sft", action="store_true",
                        help="also evaluate between cold start and GRPO (ablation; slower)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KNOB=VALUE",
                        help="override recipe knobs, e.g. grpo_steps=20 lora_rank=16")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = RECIPES[args.mode]
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in Recipe.__dataclass_fields__:
            raise SystemExit(f"unknown recipe knob {key!r}; knobs: {sorted(asdict(recipe))}")
        recipe = replace(recipe, **{key: None if value == "None" else
                                    type(getattr(recipe, key) or 0)(value)})
    image = None if args.mode == "smoke" and args.image == parser.get_default("image") else \
        args.image
    run(args.mode, args.output_dir, image, recipe, skip_grpo=args.skip_grpo,
        eval_after_sft=args.eval_after_sft)


if __name__ == "__main__":
    main()
