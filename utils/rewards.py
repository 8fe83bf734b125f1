"""The reward functions GRPO trains with (notebook 03): accuracy and three format rewards.

- :func:`accuracy_reward` pays 1.0 when the final answer is the gold quantity, by the grading
  policy of ``utils/grader/POLICY.md``, coded in :mod:`utils.grader` (its entry points are
  re-exported here).
- :func:`strict_format_reward`, :func:`soft_format_reward` and :func:`tag_count_reward` pay for the
  ``<think>``/``<answer>`` layout of :data:`utils.prompts.SYSTEM_PROMPT`.
- :func:`reward_funcs_and_weights` and :func:`score_completions` combine them by weight.

TRL's contract: ``f(completions, **kwargs) -> list[float]``, the dataset columns as keywords (the
gold is ``answer``; ``question`` or TRL's ``prompts`` give the question). Completions are strings
or message lists; every function returns one float per completion and never raises.

The tags are ordinary text (see :mod:`utils.prompts`). Completions are expected to write both
``<think>`` and ``</think>`` as the system prompt asks; with the plain R1-Zero template the opening
``<think>`` sits in the prompt, so prepend it before scoring the format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from utils.grader import (  # noqa: F401 - the grader's entry points, by the names notebooks use
    POLICY_PATH,
    Quantity,
    completion_text,
    extract_final_answer,
    is_correct,
    parse_number,
    read_quantity,
)
from utils.grader.locate import never_raise
from utils.prompts import ANSWER_CLOSE, ANSWER_OPEN, TAGS, THINK_CLOSE, THINK_OPEN

# --------------------------------------------------------------------------------------------
# TRL reward functions
# --------------------------------------------------------------------------------------------


def _as_list(values: Any) -> list:
    if values is None:
        return []
    if isinstance(values, list | tuple):
        return list(values)
    return [values]


def accuracy_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the final answer is the gold ``answer``, else 0.0 (one per completion).

    ``answer`` is the GSM8K column TRL passes, one gold per completion; a single gold is used for
    all completions, a missing one scores 0. The question comes from the dataset's ``question``
    column when there is one, else from TRL's ``prompts``; without either the unit rules fall
    back to the completion alone (``utils/grader/POLICY.md``). Taught in 03 §3.
    """
    completions = _as_list(completions)
    golds = answer if isinstance(answer, list | tuple) else [answer] * len(completions)
    questions = _questions(kwargs.get("question"), kwargs.get("prompts"), len(completions))
    rewards = []
    for i, completion in enumerate(completions):
        gold = golds[i] if i < len(golds) else None
        rewards.append(1.0 if never_raise(is_correct, completion, gold, questions[i]) else 0.0)
    return rewards


def _questions(question: Any, prompts: Any, count: int) -> list[str]:
    """One question text per completion, from the ``question`` column or TRL's ``prompts``."""
    for source, read in ((question, lambda q: q if isinstance(q, str) else ""),
                         (prompts, _question_of)):
        if isinstance(source, list | tuple) and len(source) == count:
            return [never_raise(read, item) or "" for item in source]
    return [""] * count


def _question_of(prompt: Any) -> str:
    """The question inside a TRL prompt: the last user message of a conversation, or the text
    between "User:" and "Assistant:" of a plain R1-Zero prompt."""
    if isinstance(prompt, str):
        if "User:" in prompt:
            prompt = prompt.rsplit("User:", 1)[1].split("Assistant:", 1)[0]
        return prompt.strip()
    if isinstance(prompt, dict):
        prompt = [prompt]
    if isinstance(prompt, list | tuple):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list | tuple):
                    content = " ".join(part.get("text", "") for part in content
                                       if isinstance(part, dict)
                                       and isinstance(part.get("text"), str))
                return content if isinstance(content, str) else ""
    return ""


def _has_exactly_one_of_each_tag(text: str) -> bool:
    return all(text.count(tag) == 1 for tag in TAGS)


def _filled_in(reasoning: str, text: str) -> bool:
    """The template is filled in, not copied: the reasoning has words or digits and the answer
    slot holds one readable final answer. Without this, a model that copies the system prompt's
    literal ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>`` earns full format
    reward (SmolLM2 found exactly that hack in a CPU run)."""
    return any(ch.isalnum() for ch in reasoning) and extract_final_answer(text) is not None


def _strict_format(text: str) -> bool:
    """Exactly the layout of the system prompt: ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>``."""
    if not _has_exactly_one_of_each_tag(text):
        return False
    think_open, think_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    answer_open, answer_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    if text[:think_open].strip() or text[answer_close + len(ANSWER_CLOSE):].strip():
        return False
    reasoning = text[think_open + len(THINK_OPEN):think_close]
    answer = text[answer_open + len(ANSWER_OPEN):answer_close]
    return (
        think_open < think_close < answer_open < answer_close
        and text[think_close + len(THINK_CLOSE):answer_open] == "\n"
        and reasoning.startswith("\n") and reasoning.endswith("\n")
        and answer.startswith("\n") and answer.endswith("\n")
        and _filled_in(reasoning, text)
    )


def _soft_format(text: str) -> bool:
    """One ``<think>`` block then one ``<answer>`` block, any whitespace, nothing in between."""
    if not _has_exactly_one_of_each_tag(text):
        return False
    think_open, think_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    answer_open, answer_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    return (
        think_open < think_close < answer_open < answer_close
        and not text[think_close + len(THINK_CLOSE):answer_open].strip()
        and _filled_in(text[think_open + len(THINK_OPEN):think_close], text)
    )


def strict_format_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 for exactly the system prompt's layout, filled in, else 0.0.

    ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>``, each tag once, nothing before or
    after but whitespace, reasoning with words or digits, and one readable number in the answer
    slot (right or wrong: correctness is the accuracy reward's job). Taught in 03 §2.
    """
    return [1.0 if never_raise(_strict_format, completion_text(c)) else 0.0 for c in _as_list(completions)]


def soft_format_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when a ``<think>`` block is followed by an ``<answer>`` block holding one number.

    Each tag exactly once, in order, only whitespace between the blocks; layout and text around
    them are free. Gentler than :func:`strict_format_reward` for small models early in training.
    Taught in 03 §2.
    """
    return [1.0 if never_raise(_soft_format, completion_text(c)) else 0.0 for c in _as_list(completions)]


TRAILING_PENALTY_PER_CHAR, MAX_TRAILING_PENALTY = 0.001, 0.25


def _tag_count(text: str) -> float:
    """0.25 per tag that appears exactly once and in order with the others, minus trailing text."""
    positions = {tag: text.find(tag) for tag in TAGS if text.count(tag) == 1}
    score = 0.0
    for i, tag in enumerate(TAGS):
        if tag not in positions:
            continue
        before_ok = all(positions[t] < positions[tag] for t in TAGS[:i] if t in positions)
        after_ok = all(positions[t] > positions[tag] for t in TAGS[i + 1:] if t in positions)
        score += 0.25 if before_ok and after_ok else 0.0
    if ANSWER_CLOSE in positions:
        trailing = len(text[positions[ANSWER_CLOSE] + len(ANSWER_CLOSE):].strip())
        score -= min(MAX_TRAILING_PENALTY, TRAILING_PENALTY_PER_CHAR * trailing)
    return score


def tag_count_reward(completions: Any, **kwargs: Any) -> list[float]:
    """Partial credit, 0.25 per well-placed tag (once, in order), in [-0.25, 1.0].

    A dense signal a small model can climb before it gets the whole format right. Text after
    ``</answer>`` costs 0.001 per character, at most 0.25, so rambling on never pays.
    Taught in 03 §2.
    """
    return [float(never_raise(_tag_count, completion_text(c))) for c in _as_list(completions)]


# --------------------------------------------------------------------------------------------
# Combining rewards
# --------------------------------------------------------------------------------------------

REWARD_FUNCTIONS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "strict_format": strict_format_reward,
    "soft_format": soft_format_reward,
    "tag_count": tag_count_reward,
}

DEFAULT_WEIGHTS: dict[str, float] = {
    "accuracy": 1.0,
    "strict_format": 0.5,
    "soft_format": 0.0,
    "tag_count": 0.25,
}
"""Default weights, chosen so that correctness always dominates.

- ``accuracy`` 1.0: the goal. The format rewards together give at most 0.75, so a well-formatted
  wrong answer (0.75) always scores below a correct one (>= 1.0).
- ``strict_format`` 0.5: the evaluation parses the answer slot, so the exact layout is worth
  learning; half the accuracy weight keeps it secondary.
- ``soft_format`` 0.0: strict implies soft, so weighting both would pay twice for one thing; use it
  *instead of* strict for small models that never hit the exact layout (the lab has a toggle).
- ``tag_count`` 0.25: a small dense signal (partial credit per tag) for the first steps, when
  no completion is correct or strictly formatted yet and every group would otherwise have zero
  variance (no learning signal).
"""


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The weights as a dict over all reward names (names left out weigh 0)."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = sorted(set(weights) - set(REWARD_FUNCTIONS))
    if unknown:
        raise ValueError(
            f"unknown reward name(s) {unknown}; choose from {sorted(REWARD_FUNCTIONS)}"
        )
    checked = {}
    for name in REWARD_FUNCTIONS:
        weight = weights.get(name, 0.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise TypeError(f"weight of {name!r} must be a number; got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"weight of {name!r} must be finite; got {weight!r}")
        checked[name] = float(weight)
    return checked


def reward_funcs_and_weights(
    weights: Mapping[str, float] | None = None,
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """``(reward_funcs, reward_weights)`` for ``GRPOTrainer`` and ``GRPOConfig``.

    ``weights`` maps reward names (keys of :data:`REWARD_FUNCTIONS`) to weights; names left out
    weigh 0, and zero weights are dropped (TRL would spend time computing a reward it ignores).
    None means :data:`DEFAULT_WEIGHTS`. An unknown name is a ValueError. Taught in 03 §3.
    """
    checked = _check_weights(weights)
    names = [name for name, weight in checked.items() if weight != 0.0]
    return [REWARD_FUNCTIONS[name] for name in names], [checked[name] for name in names]


def score_completions(
    completions: Any, answer: Any, weights: Mapping[str, float] | None = None
) -> list[dict[str, float]]:
    """Per completion, every reward's raw value and ``"total"``, the weighted sum TRL computes.

    All four parts are reported (zero-weight ones too, for inspection); ``total`` only sums the
    weighted ones, in the order TRL does (TRL sums in float32). Taught in 03 §3.
    """
    checked = _check_weights(weights)
    completions = _as_list(completions)
    parts = {name: fn(completions, answer=answer) for name, fn in REWARD_FUNCTIONS.items()}
    scores = []
    for i in range(len(completions)):
        row = {name: parts[name][i] for name in REWARD_FUNCTIONS}
        row["total"] = sum((checked[name] * row[name] for name in REWARD_FUNCTIONS
                            if checked[name] != 0.0), start=0.0)
        scores.append(row)
    return scores
