"""The reward lab of notebook 03: score a group of completions, see GRPO's advantages move.

- :func:`lab_update` is the whole computation (rewards -> weighted totals -> group advantages);
  the widget only calls it, so the notebook and the tests can assert on its result directly.
- :func:`build_lab` wraps it in ipywidgets: a slider per reward weight ("accuracy weight",
  "format weight", "tag count weight"), a "format rule" toggle (strict or soft: which format
  reward the format weight pays) and a std checkbox (GRPO divides by the group std; Dr. GRPO
  does not). The rendered table fits a laptop screen and scrolls sideways when it cannot.
- :func:`naive_accuracy_reward`, :func:`naive_format_reward` and :func:`math_verify_reward`, the
  graders ours is compared with, live in :mod:`utils.grader.baselines` (imported here for the lab).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import torch

from utils.grader.baselines import (  # noqa: F401 - the lab's graders to compare, by their old names
    NAIVE_ANSWER_RE,
    NAIVE_FORMAT_RE,
    NAIVE_NUMBER_RE,
    math_verify_reward,
    naive_accuracy_reward,
    naive_extract_answer,
    naive_format_reward,
)
from utils.rewards import DEFAULT_WEIGHTS, REWARD_FUNCTIONS, completion_text, score_completions

FORMAT_KINDS = ("strict", "soft")


# --------------------------------------------------------------------------------------------
# The group of completions
# --------------------------------------------------------------------------------------------


def load_lab_examples() -> dict[str, Any]:
    """The shipped group: one GSM8K question, its gold, 8 hand-written labelled completions."""
    path = resources.files("utils") / "data" / "lab_examples.json"
    return json.loads(path.read_text(encoding="utf-8"))


def sample_group(
    question: str,
    n: int = 8,
    mode: str | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.8,
    seed: int = 0,
) -> list[str]:
    """``n`` sampled completions of the mode's model for one question (cpu and gpu modes).

    In smoke mode the model is random and would produce gibberish: use the shipped examples.
    """
    from utils.generation import generate
    from utils.models import load_for_inference
    from utils.prompts import build_messages

    model, tokenizer = load_for_inference(mode)
    group = generate(model, tokenizer, [build_messages(question)], n=n,
                     max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)[0]
    return [completion.text for completion in group]


# --------------------------------------------------------------------------------------------
# One update of the lab
# --------------------------------------------------------------------------------------------


@dataclass
class LabResult:
    """What one update of the lab shows: a table and the group's learning signal."""

    table: pd.DataFrame  # one row per completion: reward parts, total, both advantages
    weights: dict[str, float]  # the weights in effect (by reward name)
    zero_variance: bool  # every total equal: all advantages are 0, nothing to learn
    message: str
    advantage_column: str = "adv_grpo"  # the advantage in use: adv_grpo or adv_dr_grpo

    @property
    def advantage(self) -> pd.Series:
        """The advantages in use (GRPO's with std scaling on, Dr. GRPO's with it off)."""
        return self.table[self.advantage_column]


def lab_weights(accuracy: float, format_weight: float, tag_count: float,
                format_kind: str = "strict") -> dict[str, float]:
    """Slider values -> reward weights; the format weight goes to the strict or the soft format."""
    if format_kind not in FORMAT_KINDS:
        raise ValueError(f"format_kind must be one of {FORMAT_KINDS}; got {format_kind!r}")
    return {
        "accuracy": accuracy,
        "strict_format": format_weight if format_kind == "strict" else 0.0,
        "soft_format": format_weight if format_kind == "soft" else 0.0,
        "tag_count": tag_count,
    }


def lab_update(
    completions: list[Any],
    gold: str,
    weights: dict[str, float],
    scale_std: bool = True,
    labels: list[str] | None = None,
) -> LabResult:
    """Score one group and compute its advantages exactly as GRPO would.

    ``scale_std=True`` divides by the group's std (GRPO, TRL's default); ``False`` only subtracts
    the group mean (Dr. GRPO). Both columns are in the table; ``advantage_column`` names the one
    in use (and :attr:`LabResult.advantage` returns it).
    """
    from utils.rl import group_advantages

    scores = score_completions(completions, [gold] * len(completions), weights)
    totals = torch.tensor([row["total"] for row in scores], dtype=torch.float32)
    grpo = group_advantages(totals, len(completions), scale="group")
    dr_grpo = group_advantages(totals, len(completions), scale=None)
    table = pd.DataFrame(scores, columns=[*REWARD_FUNCTIONS, "total"])
    table["adv_grpo"] = grpo.tolist()
    table["adv_dr_grpo"] = dr_grpo.tolist()
    column = "adv_grpo" if scale_std else "adv_dr_grpo"
    table.insert(0, "completion", [_preview(completion_text(c)) for c in completions])
    if labels is not None:
        table.insert(0, "label", labels)
    zero_variance = bool(torch.all(totals == totals[0])) if len(totals) else True
    if zero_variance:
        message = ("Zero-variance group: every completion has the same total, so every advantage "
                   "is 0 and this prompt teaches the model nothing.")
    else:
        best = int(totals.argmax())
        message = (f"Group mean {totals.mean():.3f}, std {totals.std():.3f}; the best completion "
                   f"(#{best}) gets advantage {table[column][best]:+.3f}.")
    return LabResult(table=table, weights=dict(weights), zero_variance=zero_variance,
                     message=message, advantage_column=column)


def _preview(text: str, width: int = 60) -> str:
    """A one-line view of a completion's end, where the answer is."""
    flat = text.replace("\n", " \u23ce ")
    return flat if len(flat) <= width else "\u2026" + flat[-width:]


_SHORT_NAMES = {"accuracy": "accuracy", "strict_format": "strict format",
               "soft_format": "soft format", "tag_count": "tag count"}


def render_result(result: LabResult) -> str:
    """HTML for a lab result: a compact table, advantages coloured by sign, and the message.

    Each reward column's header shows its weight; a weight-0 column is greyed out and marked
    "not counted", so the table says which format reward counts toward the total. The completion
    previews are left out (the cell above prints the completions) so that the table fits a
    1024 px laptop screen with the file browser open; a wrapper scrolls sideways if it does not.
    """
    table = result.table.drop(columns=["completion"], errors="ignore")
    headers = {}
    for name in REWARD_FUNCTIONS:
        weight = result.weights.get(name, 0.0)
        headers[name] = (f"{_SHORT_NAMES[name]} \u00d7{weight:g}" if weight
                         else f"{_SHORT_NAMES[name]} (not counted)")
    used = "\u25c0 in use"
    headers["adv_grpo"] = "adv. GRPO" + (f" {used}" if result.advantage_column == "adv_grpo" else "")
    headers["adv_dr_grpo"] = "adv. Dr. GRPO" + (
        f" {used}" if result.advantage_column == "adv_dr_grpo" else "")
    table = table.rename(columns=headers)
    muted = [headers[name] for name in REWARD_FUNCTIONS if not result.weights.get(name, 0.0)]
    styled = (table.style.format(precision=2)
              .map(lambda v: f"color: {'green' if v > 0 else 'red' if v < 0 else 'gray'}",
                   subset=[headers["adv_grpo"], headers["adv_dr_grpo"]])
              .map(lambda v: "color: #aaa", subset=muted)
              .set_table_styles([
                  {"selector": "th, td", "props": "padding: 2px 6px; font-size: 12px"},
                  {"selector": "th.col_heading", "props": "max-width: 7em; white-space: normal"},
                  {"selector": "td.col0", "props": "max-width: 16em; white-space: normal"},
              ])
              .hide(axis="index"))
    colour = "#b00" if result.zero_variance else "#333"
    return (f"<div style='overflow-x: auto; max-width: 100%'>{styled.to_html()}</div>"
            f"<p style='color:{colour}'><b>{html.escape(result.message)}</b></p>")


# --------------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------------


@dataclass
class RewardLab:
    """The built widget, its controls, and the result of its latest update (for asserts)."""

    widget: Any
    controls: dict[str, Any]
    latest: LabResult | None


def build_lab(completions: list[Any], gold: str, labels: list[str] | None = None,
              weights: dict[str, float] | None = None) -> RewardLab:
    """Sliders (accuracy, format, tag count weights), the format rule and the std checkbox.

    Moving a control recomputes :func:`lab_update` and redraws the table. Works headless: setting
    a control's ``.value`` from code triggers the same update.
    """
    import ipywidgets as widgets

    start = weights or DEFAULT_WEIGHTS
    slider = {"min": 0.0, "max": 2.0, "step": 0.05, "continuous_update": False,
              "style": {"description_width": "initial"}}
    controls = {
        "accuracy": widgets.FloatSlider(value=start.get("accuracy", 0.0),
                                        description="accuracy weight", **slider),
        "format": widgets.FloatSlider(
            value=start.get("strict_format", 0.0) or start.get("soft_format", 0.0),
            description="format weight", **slider),
        "tag_count": widgets.FloatSlider(value=start.get("tag_count", 0.0),
                                         description="tag count weight", **slider),
        "format_kind": widgets.ToggleButtons(
            options=FORMAT_KINDS, value="soft" if start.get("soft_format") else "strict",
            description="format rule", style={"description_width": "initial"},
            tooltips=["strict_format_reward: the exact layout of the system prompt",
                      "soft_format_reward: a think block then an answer block, any spacing"]),
        "scale_std": widgets.Checkbox(value=True, description="divide by group std (GRPO)",
                                      style={"description_width": "initial"}),
    }
    output = widgets.HTML()
    lab = RewardLab(widget=widgets.VBox([*controls.values(), output]), controls=controls,
                    latest=None)

    def update(_change: Any = None) -> None:
        weights_now = lab_weights(controls["accuracy"].value, controls["format"].value,
                                  controls["tag_count"].value, controls["format_kind"].value)
        lab.latest = lab_update(completions, gold, weights_now, controls["scale_std"].value, labels)
        output.value = render_result(lab.latest)

    for control in controls.values():
        control.observe(update, names="value")
    update()
    return lab

