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

from utils.training import read_log_history

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


def moving_average(values: Sequence[float], window: int = 5) -> list[float]:
    """Trailing moving average (shorter window at the start), to see a trend through the noise."""
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


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


def plot_health(log_history: Sequence[dict], title: str = "GRPO health", window: int = 5):
    """A grid of health plots: each reward's mean, then the :data:`PANELS`. Returns the figure.

    Raw values are drawn thin, their moving average thick. Panels whose metrics were not logged
    (e.g. KL with beta = 0) say so instead of staying blank.
    """
    import matplotlib.pyplot as plt

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
            ax.plot(steps, moving_average(values, window), color=line.get_color(), linewidth=2,
                    label=key.removeprefix(REWARD_PREFIX).removesuffix("/mean"))
            drawn = True
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reward_curve(log_history: Sequence[dict], path: str | os.PathLike | None = None,
                      title: str = "GRPO reward", window: int = 5):
    """Total reward and each reward's mean per step, with moving averages; saved when ``path``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    keys = ["reward"] + [f"{REWARD_PREFIX}{n}/mean" for n in reward_names(log_history)]
    for key in keys:
        steps, values = metric(log_history, key)
        if values:
            line, = ax.plot(steps, values, alpha=0.3, linewidth=1)
            ax.plot(steps, moving_average(values, window), color=line.get_color(), linewidth=2,
                    label=key.removeprefix(REWARD_PREFIX).removesuffix("/mean"))
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title(title)
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
    table["completion"] = table["completion"].map(_completion_text)
    return table.drop(columns=["prompt"])


def _completion_text(completion) -> str:
    from utils.rewards import completion_text

    return completion_text(list(completion) if not isinstance(completion, str) else completion)


def load_run(output_dir: str | os.PathLike) -> list[dict]:
    """The log history of a run directory (what ``python -m utils.train`` wrote)."""
    history = read_log_history(output_dir)
    if not history:
        raise FileNotFoundError(f"no log_history.json in {output_dir}: has the run logged a step?")
    return history
