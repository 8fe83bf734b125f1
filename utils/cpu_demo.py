"""``make cpu-demo``: SmolLM2-135M gets measurably better at word problems in minutes on a CPU,
and the demo shows which share of the gain is imitation and which is reinforcement learning.

The recipe (chosen by experiment on the ``dev`` split, see docs/experiments.md):

1. **Evaluate** the model as it is on held-out problems of the task ladder (:mod:`utils.tasks`),
   greedy, with the course's grader (:func:`utils.rewards.is_correct`, strict format).
2. **Cold start**: a short supervised pass on a few dozen worked examples in the
   ``<think>``/``<answer>`` format, as DeepSeek-R1 did before its RL stage. Without it the small
   model almost never closes its tags, and GRPO has too few groups with reward spread.
   Evaluated again: the cold start's own share of the gain.
3. **GRPO** written out in plain PyTorch (:mod:`utils.grpo_scratch`): groups of samples per
   question (sampled in bf16 where the CPU has it, with the off-policy correction), rewards from
   :mod:`utils.rewards`, group-relative advantages, clipped loss. Held-out accuracy on a fixed
   subset is measured at a few checkpoints for the curve.
4. **Evaluate again** on the same questions; McNemar's exact test pairs GRPO with the cold start.

Run ``python -m utils.cpu_demo`` (cpu mode) or ``--mode smoke`` (a tiny random model, seconds:
checks the plumbing, learns nothing). The last line printed is the summary::

    cpu-demo: accuracy A% -> cold start B% -> GRPO C% (n=N, GRPO vs cold start paired p=P), strict format F% -> G%, M.M min
"""

from __future__ import annotations

import argparse
import codecs
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

    rung: str = DEFAULT_RUNG           # the held-out problems' rung
    eval_split: str = "test"           # "dev" while a recipe is searched, never the test split
    eval_n: int = 200
    eval_max_new_tokens: int = 64
    eval_batch: int = 100
    train_rung: str | None = None      # None: the held-out rung
    cold_start: bool = True            # False: R1-Zero, RL from the base model
    prefill: str = ""                  # e.g. "<think>\n" to start every sampled answer
    sft_examples: int = 48
    sft_epochs: int = 2
    sft_batch: int = 8
    sft_lr: float = 2e-4
    grpo_steps: int = 40               # beat 30 on both dev seeds (sixth session)
    questions_per_step: int = 8
    group_size: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 40
    learning_rate: float = 5e-5       # 2e-4 sharpened the cold start and collapsed its spread
    loss_type: str = "dapo"
    epsilon_high: float = 0.28
    skip_zero_spread: bool = False     # DAPO's dynamic sampling, without refilling
    rows_per_pass: int = 16            # rows per forward/backward pass: memory, not the maths
    lora_rank: int | None = 32
    reward_weights: tuple[tuple[str, float], ...] = (("accuracy", 1.0), ("strict_format", 0.5))
    sampling_precision: str = "auto"   # bf16 where native; "fp32" turns it off
    is_correction: str | None = "sequence_mask"  # TRL's default; None: measured, not applied
    checkpoints: int = 3               # held-out checkpoints during GRPO (for the curve)
    checkpoint_n: int = 50             # the fixed subset they use
    seed: int = 0                      # training order, sampling, initialisation; never the test


RECIPES = {
    "cpu": Recipe(),
    "smoke": Recipe(eval_n=4, eval_max_new_tokens=4, eval_batch=4, sft_examples=4, sft_epochs=1,
                    sft_batch=2, grpo_steps=2, questions_per_step=2, group_size=2,
                    max_new_tokens=4, lora_rank=4, learning_rate=1e-4, checkpoints=1,
                    checkpoint_n=2),
}


def worked_solution(row: dict) -> str:
    """A formatted answer for the cold start: the arithmetic inside ``<think>``, the number in
    ``<answer>``. Built from the row's exact expression, never from a model."""
    steps = row["expression"] if row.get("expression") else row["answer"]
    return (f"<think>\n{steps} = {row['answer']}\n</think>\n<answer>\n{row['answer']}\n"
            "</answer>")


def evaluate(model, tokenizer, rows: list[dict], recipe: Recipe) -> dict:
    """The demo recipe's greedy answers to ``rows``: correctness, strict format and texts (not
    :func:`utils.post_training.evaluate`'s graded rows, nor :func:`utils.toy_tasks.evaluate`).
    With ``recipe.prefill`` the answer starts with it, as in training, and is graded with it."""
    from utils.generation import render_prompt

    model.eval()
    prompts = [build_messages(r["question"]) for r in rows]
    if recipe.prefill:
        prompts = [render_prompt(tokenizer, p) + recipe.prefill for p in prompts]
    outputs = generate(model, tokenizer, prompts, max_new_tokens=recipe.eval_max_new_tokens,
                       batch_size=recipe.eval_batch)
    texts = [recipe.prefill + o[0].text for o in outputs]
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
            prompt_ids, prompt_mask = grpo_scratch.pad_rows([p for p, _ in chunk],
                                                            tokenizer.pad_token_id, left=True)
            answer_ids, answer_mask = grpo_scratch.pad_rows([a for _, a in chunk],
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


def problems(recipe: Recipe) -> tuple[list[dict], list[dict], list[dict]]:
    """The held-out problems, the cold start's worked examples and GRPO's questions. The
    held-out ones do not depend on the seed: every seed and recipe meets the same ones; the
    training ones never overlap them (another split) nor each other."""
    held_out = load_task(recipe.rung, recipe.eval_split, n=recipe.eval_n, seed=0)
    train_rung = recipe.train_rung or recipe.rung
    train = load_task(train_rung, "train",
                      n=recipe.sft_examples + recipe.grpo_steps * recipe.questions_per_step,
                      seed=recipe.seed)
    return held_out, train[:recipe.sft_examples], train[recipe.sft_examples:]


def checkpoint_steps(recipe: Recipe) -> list[int]:
    """The GRPO steps after which the held-out subset is evaluated (the last step included)."""
    if recipe.checkpoints <= 0 or recipe.grpo_steps == 0:
        return []
    every = recipe.grpo_steps / recipe.checkpoints
    return sorted({max(1, round(every * (i + 1))) for i in range(recipe.checkpoints)})


def grpo_train(model, tokenizer, rows: list[dict], recipe: Recipe, output_dir: Path,
               checkpoint_rows: list[dict] | None = None) -> list[dict]:
    """GRPO steps with :mod:`utils.grpo_scratch`; every completion goes to completions.jsonl.
    After the steps of :func:`checkpoint_steps`, greedy accuracy on ``checkpoint_rows`` is
    recorded in the curve as ``heldout_accuracy``."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.0)
    log_path = output_dir / "completions.jsonl"
    log_path.unlink(missing_ok=True)
    weights = dict(recipe.reward_weights)
    order = list(range(len(rows)))
    random.Random(recipe.seed).shuffle(order)
    checkpoints = set(checkpoint_steps(recipe)) if checkpoint_rows else set()
    curve = []
    for step in range(recipe.grpo_steps):
        start = time.perf_counter()
        ids = order[step * recipe.questions_per_step:(step + 1) * recipe.questions_per_step]
        model.eval()
        batch = grpo_scratch.rollout(
            model, tokenizer, [build_messages(rows[i]["question"]) for i in ids],
            [rows[i]["answer"] for i in ids], recipe.group_size, recipe.max_new_tokens,
            temperature=recipe.temperature, weights=weights, prefill=recipe.prefill,
            seed=recipe.seed * 100_003 + step, precision=recipe.sampling_precision)
        grpo_scratch.log_completions(log_path, step, batch, ids, recipe.group_size)
        sampled = time.perf_counter()
        spread = grpo_scratch.spread_share(batch.rewards, recipe.group_size)
        train_batch = batch
        if recipe.skip_zero_spread:
            grouped = batch.rewards.view(-1, recipe.group_size)
            keep = grouped.amax(1) > grouped.amin(1)
            train_batch = grpo_scratch.keep_groups(batch, keep, recipe.group_size) \
                if keep.any() else None
        loss = torch.tensor(0.0)
        if train_batch is not None:
            model.train()
            optimizer.zero_grad()
            loss = torch.tensor(grpo_scratch.grpo_backward(
                model, train_batch, recipe.group_size, recipe.rows_per_pass, recipe.temperature,
                loss_type=recipe.loss_type, epsilon_high=recipe.epsilon_high,
                max_completion_length=recipe.max_new_tokens, correction=recipe.is_correction))
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        row = {"step": step, "loss": loss.item(), "reward": batch.rewards.mean().item(),
               "accuracy": sum(s["accuracy"] for s in batch.scores) / len(batch.scores),
               "strict_format": sum(s["strict_format"] for s in batch.scores) / len(batch.scores),
               "spread_share": spread,
               "completion_tokens": batch.completion_mask.sum(1).float().mean().item(),
               "precision": batch.precision,
               **(train_batch.metrics if train_batch is not None else {}),
               "sample_seconds": sampled - start, "seconds": time.perf_counter() - start}
        gap = row.get("sampling/sampling_logp_difference/max")
        mismatch = "" if gap is None else (
            f"  |dlogp| max {gap:.3f}, IS ratio "
            f"{row['sampling/importance_sampling_ratio/min']:.2f}-"
            f"{row['sampling/importance_sampling_ratio/max']:.2f}")
        print(f"  step {step + 1:3d}/{recipe.grpo_steps}  reward {row['reward']:.2f}  "
              f"accuracy {row['accuracy']:.2f}  format {row['strict_format']:.2f}  "
              f"spread {row['spread_share']:.2f}  {row['seconds']:.0f} s "
              f"(sampling {row['sample_seconds']:.0f} s, {batch.precision}){mismatch}", flush=True)
        if step + 1 in checkpoints:
            evaluated = time.perf_counter()
            held = evaluate(model, tokenizer, checkpoint_rows, recipe)
            row["heldout_accuracy"] = sum(held["correct"]) / len(held["correct"])
            row["heldout_seconds"] = time.perf_counter() - evaluated
            print(f"  held-out subset after step {step + 1}: accuracy "
                  f"{sum(held['correct'])}/{len(held['correct'])} "
                  f"({row['heldout_seconds']:.0f} s)", flush=True)
        curve.append(row)
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


CURVE_TITLE = "cpu-demo: what GRPO adds after the cold start (SmolLM2-135M)"


def plot_curve(curve: list[dict], path: Path, levels: dict[str, float] | None = None,
               checkpoint_n: int | None = None,
               title: str = CURVE_TITLE) -> Path:
    """What GRPO learns: greedy accuracy on a fixed held-out subset at a few checkpoints, over
    the smoothed accuracy of the step's own samples, with the levels of ``levels`` (e.g. base
    and cold start on the same subset) as dashed lines.

    Drawn on a bare ``Figure`` (no pyplot, no backend switch): called from a notebook, it must
    leave the notebook's inline plotting as it was."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from utils.health import moving_average

    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    steps = [r["step"] + 1 for r in curve]
    ax.plot(steps, [r["accuracy"] for r in curve], color="tab:blue", alpha=0.25, lw=1)
    ax.plot(steps, moving_average([r["accuracy"] for r in curve], 5), color="tab:blue",
            label="sampled answers right (5-step average)")
    start = (levels or {}).get("cold start", (levels or {}).get("base"))
    held = [] if start is None else [(0, start)]
    held += [(r["step"] + 1, r["heldout_accuracy"]) for r in curve if "heldout_accuracy" in r]
    if held:
        subset = f" ({checkpoint_n} problems)" if checkpoint_n else ""
        ax.plot(*zip(*held), color="tab:red", marker="o", lw=2,
                label=f"held-out accuracy, greedy{subset}")
    for (name, value), style in zip((levels or {}).items(), ("gray", "tab:orange", "tab:green")):
        ax.axhline(value, color=style, ls="--", lw=1)
        ax.annotate(name, (steps[-1] if steps else 1, value), xytext=(3, 2),
                    textcoords="offset points", color=style, fontsize=8)
    ax.set(xlabel="GRPO step", ylabel="share right", ylim=(-0.02, 1.02),
           title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # the legend below the axes, never over the data
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _minutes(started: float) -> float:
    return (time.perf_counter() - started) / 60


def _pct(values) -> float:
    return 100 * sum(values) / len(values)


def summary_line(before: dict, cold: dict, after: dict, minutes: float) -> str:
    """The demo's last line (its format is part of the course's interface): base, cold start
    and GRPO accuracy on the same problems, and GRPO paired against the cold start."""
    test = mcnemar_exact(cold["correct"], after["correct"])
    return (f"cpu-demo: accuracy {_pct(before['correct']):.1f}% -> cold start "
            f"{_pct(cold['correct']):.1f}% -> GRPO {_pct(after['correct']):.1f}% "
            f"(n={len(before['correct'])}, GRPO vs cold start paired p={test.p_value:.2g}), "
            f"strict format {_pct(before['strict_format']):.1f}% -> "
            f"{_pct(after['strict_format']):.1f}%, {minutes:.1f} min")


def _evaluation_record(result: dict) -> dict:
    """The figures of a run that the README, notebooks and docs quote (docs/results/)."""
    record = {key: result[key] for key in ("mode", "summary", "minutes", "torch_threads",
                                           "machine", "recipe")}
    for key in ("before", "after_cold_start", "after"):
        record[key] = {"accuracy": _pct(result[key]["correct"]) / 100,
                       "strict_format": _pct(result[key]["strict_format"]) / 100,
                       "n": len(result[key]["correct"])}
    record["grpo_vs_cold_start"] = result["grpo_vs_cold_start"]
    record["curve"] = [{k: v for k, v in row.items() if isinstance(v, (int, float, str))}
                       for row in result["curve"]]
    return record


def machine() -> str:
    """The CPU model and what torch can use on it, for the record next to a timing."""
    from utils.sampling import native_bf16

    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{name}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16()})")


def run(mode: str = "cpu", output_dir: str | os.PathLike = "runs/cpu-demo",
        image: str | os.PathLike | None = "images/cpu_demo_training.png",
        recipe: Recipe | None = None, skip_grpo: bool = False,
        record: str | os.PathLike | None = None) -> dict:
    """The whole demo; returns the three evaluations, the curve and the summary line. Saves
    ``cold_start_adapter`` and ``adapter`` (after GRPO) in ``output_dir``; ``record`` also
    writes the quoted figures to that JSON file."""
    started = time.perf_counter()
    recipe = recipe or RECIPES[mode]
    torch.manual_seed(recipe.seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model(mode, recipe)
    held_out, sft_rows, grpo_rows = problems(recipe)
    print(f"cpu-demo ({mode}): {recipe.rung}, {len(held_out)} held-out problems "
          f"({recipe.eval_split} split)", flush=True)
    before = evaluate(model, tokenizer, held_out, recipe)
    print(f"  before: accuracy {sum(before['correct'])}/{len(held_out)}, strict format "
          f"{sum(before['strict_format'])}/{len(held_out)} ({_minutes(started):.1f} min)",
          flush=True)
    sft_losses = []
    if recipe.cold_start:
        sft_losses = cold_start(model, tokenizer, sft_rows, recipe)
        print(f"  cold start: {len(sft_losses)} steps, loss {sft_losses[0]:.2f} -> "
              f"{sft_losses[-1]:.2f} ({_minutes(started):.1f} min)", flush=True)
        cold = evaluate(model, tokenizer, held_out, recipe)
    else:  # R1-Zero: RL starts from the base model
        cold = before
    print(f"  after cold start: accuracy {sum(cold['correct'])}/{len(held_out)}, strict "
          f"format {sum(cold['strict_format'])}/{len(held_out)} ({_minutes(started):.1f} min)",
          flush=True)
    model.save_pretrained(str(output_dir / "cold_start_adapter"))
    tokenizer.save_pretrained(str(output_dir / "cold_start_adapter"))
    subset = held_out[:recipe.checkpoint_n]
    curve = [] if skip_grpo else grpo_train(model, tokenizer, grpo_rows, recipe, output_dir,
                                            subset)
    after = evaluate(model, tokenizer, held_out, recipe)
    adapter = output_dir / "adapter"
    model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    minutes = _minutes(started)
    line = summary_line(before, cold, after, minutes)
    test = mcnemar_exact(cold["correct"], after["correct"])
    result = {"recipe": asdict(recipe), "mode": mode, "before": before,
              "after_cold_start": cold, "after": after,
              "grpo_vs_cold_start": {"fixed": test.only_b, "broken": test.only_a,
                                     "p_value": test.p_value},
              "curve": curve, "sft_losses": sft_losses, "summary": line, "minutes": minutes,
              "torch_threads": torch.get_num_threads(), "machine": machine()}
    (output_dir / "result.json").write_text(json.dumps(result, indent=1))
    if record is not None:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        Path(record).write_text(json.dumps(_evaluation_record(result), indent=1) + "\n")
    if image is not None and curve:
        n = len(subset)
        levels = {"base": sum(before["correct"][:n]) / n}
        title = CURVE_TITLE
        if recipe.cold_start:
            levels["cold start"] = sum(cold["correct"][:n]) / n
        else:  # R1-Zero: no cold start, RL from the base model
            title = "R1-Zero on a CPU: GRPO from the base model, no cold start (SmolLM2-135M)"
        plot_curve(curve, Path(image), levels, checkpoint_n=n, title=title)
    print(line, flush=True)
    return result


FRESH_PROBLEMS = Path(__file__).parent / "data" / "fresh_word_problems.jsonl"
"""Word problems from templates written after the recipe was chosen: never trained on, never
searched on. The test of whether GRPO learned the skill or the templates."""


def compare_on_fresh(mode: str = "cpu", output_dir: str | os.PathLike = "runs/cpu-demo",
                     path: str | os.PathLike = FRESH_PROBLEMS,
                     record: str | os.PathLike | None = None) -> str:
    """The cold-start adapter against the GRPO adapter of a finished run, greedy, on the fresh
    word problems; McNemar pairs them. Returns (and prints) one line."""
    from peft import PeftModel

    output_dir = Path(output_dir)
    missing = [a for a in ("cold_start_adapter", "adapter") if not (output_dir / a).is_dir()]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} in {output_dir}: run `make cpu-demo` first")
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    recipe = json.loads((output_dir / "result.json").read_text())["recipe"]
    recipe_seed = recipe.get("seed", 0)
    recipe = replace(RECIPES[mode], **{k: v for k, v in recipe.items()
                                       if k in ("eval_max_new_tokens", "eval_batch")})
    results = {}
    for adapter in ("cold_start_adapter", "adapter"):
        base, tokenizer = load_model(mode, replace(recipe, lora_rank=None))
        model = PeftModel.from_pretrained(base, str(output_dir / adapter))
        results[adapter] = evaluate(model, tokenizer, rows, recipe)
    test = mcnemar_exact(results["cold_start_adapter"]["correct"], results["adapter"]["correct"])
    line = (f"fresh word problems: cold start {_pct(results['cold_start_adapter']['correct']):.1f}%"
            f" -> GRPO {_pct(results['adapter']['correct']):.1f}% (n={len(rows)}, "
            f"{test.only_b} fixed, {test.only_a} broken, paired p={test.p_value:.2g})")
    print(line, flush=True)
    if record is not None:
        Path(record).parent.mkdir(parents=True, exist_ok=True)
        Path(record).write_text(json.dumps({
            "summary": line, "run": str(output_dir), "seed": recipe_seed,
            "n": len(rows), "fixed": test.only_b, "broken": test.only_a,
            "p_value": test.p_value, "machine": machine(),
            "cold_start": _pct(results["cold_start_adapter"]["correct"]) / 100,
            "grpo": _pct(results["adapter"]["correct"]) / 100}, indent=1) + "\n")
    return line


def _knob(current, value: str):
    """A ``--set`` value in the type of the knob it replaces (None, bools and tuples included)."""
    if value == "None":
        return None
    if isinstance(current, bool):
        if value not in ("True", "False"):
            raise SystemExit(f"a yes/no knob takes True or False; got {value!r}")
        return value == "True"
    if isinstance(current, tuple):  # reward_weights=accuracy:1.0,strict_format:0.5
        return tuple((name, float(w)) for name, w in (p.split(":") for p in value.split(",")))
    if isinstance(current, str) and not value.replace(".", "").isdigit():
        return codecs.decode(value, "unicode_escape")  # prefill=<think>\n: a real newline
    if current is None or isinstance(current, str):  # e.g. train_rung, lora_rank=None
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value
    return type(current)(value)


def with_knobs(recipe: Recipe, items: list[str]) -> Recipe:
    """``recipe`` with ``KNOB=VALUE`` overrides (``--set``), each in its knob's type."""
    for item in items:
        key, _, value = item.partition("=")
        if key not in Recipe.__dataclass_fields__:
            raise SystemExit(f"unknown recipe knob {key!r}; knobs: {sorted(asdict(recipe))}")
        recipe = replace(recipe, **{key: _knob(getattr(recipe, key), value)})
    return recipe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(RECIPES), default="cpu")
    parser.add_argument("--output-dir", default="runs/cpu-demo")
    parser.add_argument("--image", default="images/cpu_demo_training.png",
                        help="where the training curve goes; 'none': no figure")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--skip-grpo", action="store_true", help="cold start only (ablation)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KNOB=VALUE",
                        help="override recipe knobs, e.g. grpo_steps=20 lora_rank=16")
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--record", default=None, metavar="JSON",
                        help="also write the quoted figures here (e.g. docs/results/cpu_demo.json)")
    parser.add_argument("--compare-fresh", action="store_true",
                        help="no training: compare the run's two adapters on fresh problems")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare_fresh:
        compare_on_fresh(args.mode, args.output_dir, record=args.record)
        return
    recipe = with_knobs(RECIPES[args.mode], args.set)
    if args.seed is not None:
        recipe = replace(recipe, seed=args.seed)
    image = None if args.image.lower() == "none" or (
        args.mode == "smoke" and args.image == parser.get_default("image")) else args.image
    run(args.mode, args.output_dir, image, recipe, skip_grpo=args.skip_grpo, record=args.record)


if __name__ == "__main__":
    main()
