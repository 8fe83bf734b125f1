"""Is the GRPO run healthy? Read the trainer's log history and sampled completions, and plot them.

A GRPO run can fail silently: the loss of GRPO is not a progress measure (it hovers near zero by
construction), so the course reads these instead, all logged by TRL every logging step:

- ``rewards/<name>/mean``: each reward separately (format usually rises first, then accuracy);
- ``reward_std`` and ``frac_reward_zero_std``: the learning signal. A group whose completions all
  score the same has zero advantage and teaches nothing; a zero-std fraction near 1 means a stalled
  run (too hard, too easy, or a reward bug);
- ``completions/mean_length`` and ``completions/clipped_ratio``: lengths, and how many answers hit
  ``max_completion_length`` (cut answers have no ``</answer>`` and score 0 on format);
- ``kl`` (only when beta > 0), ``clip_ratio/*`` and ``entropy``: how far and how fast the policy
  moves; entropy collapsing to ~0 means the samples of a group have become identical.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.rewards import completion_text
from utils.toy_tasks import smooth
from utils.training import compact_completion_log, read_log_history  # noqa: F401 (re-exported)

moving_average = smooth  # the name utils.cpu_demo imports: one trailing average, in toy_tasks

REWARD_PREFIX = "rewards/"


def training_rows(log_history: Sequence[dict]) -> list[dict]:
    """The per-step rows of a log history (the final summary row has no ``reward``)."""
    return [row for row in log_history if "reward" in row and "step" in row]


def metric(log_history: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of one logged metric, skipping steps where it is missing or None."""
    pairs = [(row["step"], row[key]) for row in training_rows(log_history)
             if row.get(key) is not None]
    return [s for s, _ in pairs], [v for _, v in pairs]


def reward_names(log_history: Sequence[dict]) -> list[str]:
    """Names of the reward functions in the log (``accuracy_reward``, ``tag_count_reward``, ...)."""
    names: list[str] = []
    for row in training_rows(log_history):
        for key in row:
            if key.startswith(REWARD_PREFIX) and key.endswith("/mean"):
                name = key[len(REWARD_PREFIX):-len("/mean")]
                if name not in names:
                    names.append(name)
    return names


def first_last_mean(log_history: Sequence[dict], key: str = "reward",
                    k: int = 10) -> tuple[float, float]:
    """Mean of ``key`` over the first ``k`` and the last ``k`` logged steps: a noise-robust
    "did it learn" number (single GRPO steps are very noisy)."""
    _, values = metric(log_history, key)
    if not values:
        raise ValueError(f"no {key!r} in the log history")
    head, tail = values[:k], values[-k:]
    return sum(head) / len(head), sum(tail) / len(tail)


def stalled_fraction(log_history: Sequence[dict], threshold: float = 0.5) -> float:
    """Share of logged steps where more than ``threshold`` of the groups had zero reward std
    (no learning signal): notebook 04's exercise 3 checks the learner's version against it."""
    _, zero_std = metric(log_history, "frac_reward_zero_std")
    if not zero_std:
        raise ValueError("no 'frac_reward_zero_std' in the log history")
    return sum(value > threshold for value in zero_std) / len(zero_std)


PANELS = (
    ("reward (total)", ["reward"]),
    ("reward std / zero-std groups", ["reward_std", "frac_reward_zero_std"]),
    ("completion length (tokens)", ["completions/mean_length", "completions/mean_terminated_length"]),
    ("clipped (truncated) ratio", ["completions/clipped_ratio"]),
    ("KL to the start (beta > 0)", ["kl"]),
    ("policy clip ratios", ["clip_ratio/region_mean", "clip_ratio/low_mean",
                            "clip_ratio/high_mean"]),
    ("entropy", ["entropy"]),
)


def health_table(preset: Any) -> list[tuple[str, str, str]]:
    """Rows ``(plot, healthy, unhealthy -> what to do)`` with thresholds that fit ``preset``.

    The numbers a healthy run shows depend on the preset: with one question per step (the T4
    preset) the zero-std fraction of a step is 0 or 1, so only its moving average means anything;
    with one optimizer update per generation batch (TRL's default ``num_iterations=1``) the
    importance ratio is exactly 1 and the clip ratios are 0 by construction; with ``beta = 0``
    no KL is computed at all.
    """
    questions = preset.prompts_per_step
    if questions == 1:
        zero_std = ("each step is 0 or 1 (one question per step): read the thick line, the "
                    "share of stalled steps over the last 5 steps; <= 0.5 after the first "
                    "tens of steps")
    else:
        zero_std = f"<= 0.5 after the first tens of steps (a step has {questions} groups)"
    rows = [
        ("each reward's mean", "format rises first, accuracy follows",
         "flat for 100+ steps -> raise tag_count, check the prompt asks for the tags"),
        ("reward std / zero-std groups", zero_std,
         ("~1.0 throughout -> all samples score the same: raise temperature or num_generations, "
         "add partial credit")),
        ("completion length", "stable or slowly growing",
         ("climbing to the limit -> more truncation; raise max_completion_length or penalise "
         "length")),
        ("clipped (truncated) ratio", "< 0.2", ("> 0.5 -> answers cut before `</answer>`: raise the "
         "limit")),
    ]
    if preset.beta > 0:
        rows.append(("KL to the start", "grows slowly, < ~0.1", "jumps -> lower the learning rate"))
    else:
        rows.append(("KL to the start", "not logged: beta = 0 (no reference model)",
                     "set beta > 0 (e.g. 0.04) to watch drift, at the cost of a reference model"))
    rows.append(("policy clip ratios", ("0 by construction here: one optimizer update per "
                 "generation batch (num_iterations = 1), so the ratio is exactly 1"),
                 "non-zero -> more than one update per batch; > 0.2 means lower the lr"))
    rows.append(("entropy", "slowly decreasing", ("-> 0 fast: samples collapse to one answer; "
                 "lower lr, raise temperature")))
    return rows


def plot_health(log_history: Sequence[dict], title: str = "GRPO health", window: int = 5):
    """A grid of health plots: each reward's mean, then the :data:`PANELS`. Returns the figure.

    Raw values are drawn thin, their ``window``-step moving average thick (the figure says so).
    Steps are whole numbers on the x axis. Panels whose metrics were not logged (e.g. KL with
    beta = 0) say so instead of staying blank.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [("rewards (mean of each)",
               [f"{REWARD_PREFIX}{name}/mean" for name in reward_names(log_history)]),
              *PANELS]
    columns = 4
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax, (name, keys) in zip(axes.flat, panels):
        drawn = False
        for key in keys:
            steps, values = metric(log_history, key)
            if not values:
                continue
            line, = ax.plot(steps, values, alpha=0.35, linewidth=1)
            ax.plot(steps, smooth(values, window), color=line.get_color(), linewidth=2,
                    label=key.removeprefix(REWARD_PREFIX).removesuffix("/mean"))
            drawn = True
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{title}\nthin: value at each step; thick: moving average over {window} steps",
                 fontsize=11)
    fig.tight_layout()
    return fig


def plot_reward_curve(log_history: Sequence[dict], path: str | os.PathLike | None = None,
                      title: str = "GRPO reward", window: int = 5):
    """Total reward and each reward's mean per step, with moving averages; saved when ``path``."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    keys = ["reward"] + [f"{REWARD_PREFIX}{n}/mean" for n in reward_names(log_history)]
    for key in keys:
        steps, values = metric(log_history, key)
        if values:
            line, = ax.plot(steps, values, alpha=0.3, linewidth=1)
            ax.plot(steps, smooth(values, window), color=line.get_color(), linewidth=2,
                    label=key.removeprefix(REWARD_PREFIX).removesuffix("/mean"))
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("reward")
    ax.set_title(f"{title} (thin: per step; thick: {window}-step average)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def sampled_completions(output_dir: str | os.PathLike, every: int = 10, per_step: int = 2):
    """A few completions the trainer sampled, every ``every`` steps, as a pandas DataFrame.

    TRL writes every completion of every logging step to ``output_dir/completions/*.parquet``
    (``log_completions=True`` in the config); this keeps ``per_step`` of them per chosen step,
    with their rewards and advantage.
    """
    import pandas as pd

    files = sorted(Path(output_dir, "completions").glob("completions_*.parquet"))
    frames = []
    for path in files:
        step = int(path.stem.split("_")[-1])
        if step == 1 or step % every == 0 or path == files[-1]:
            frames.append(pd.read_parquet(path).head(per_step))
    if not frames:
        return pd.DataFrame(columns=["step", "prompt", "completion", "advantage"])
    table = pd.concat(frames, ignore_index=True)
    table["completion"] = table["completion"].map(  # parquet holds arrays, not lists
        lambda c: completion_text(c if isinstance(c, str) else list(c)))
    return table.drop(columns=["prompt"])


def load_log_history(output_dir: str | os.PathLike) -> list[dict]:
    """A training run's log history (what ``python -m utils.train`` wrote), a list of dicts; an
    evaluation run's results are :func:`utils.evaluation.load_run`."""
    history = read_log_history(output_dir)
    if not history:
        raise FileNotFoundError(f"no log_history.json in {output_dir}: has the run logged a step?")
    return history
