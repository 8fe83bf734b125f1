"""The graders ours is compared with, in one place: here to be beaten, not used for training.

- :func:`naive_accuracy_reward` and :func:`naive_format_reward`: a naive grader the course composes
  from two shortcuts of quick GRPO scripts (notebook 03's "reward hacking" section).
- :func:`strict_regex_correct` and :func:`last_number_correct`: the strict-regex and the
  "flexible" last-number graders of evaluation harnesses (notebook 05's parser comparison).
- :func:`math_verify_reward`: math_verify with its defaults (``benchmarks/rewards.py``).
"""

from __future__ import annotations

import re
from typing import Any

from utils.grader.locate import completion_text

# A format regex without re.DOTALL, so ``.`` stops at the first newline and any multi-line
# reasoning fails to match; then the answer tag, also one line only.
NAIVE_FORMAT_RE = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>\n?$")
NAIVE_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>")
NAIVE_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def naive_extract_answer(text: str) -> str | None:
    """A one-line ``<answer>`` match, else the text's last number (which reads the reasoning,
    or a hedge's second candidate, as the answer): two shortcuts of quick GRPO scripts."""
    match = NAIVE_ANSWER_RE.search(text)
    numbers = NAIVE_NUMBER_RE.findall((match.group(1) if match else text).replace(",", ""))
    return numbers[-1] if numbers else None


def naive_accuracy_reward(completions: Any, answer: Any, **kwargs: Any) -> list[float]:
    """1.0 when the naive extraction equals the gold as floats."""
    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        found = naive_extract_answer(completion_text(completion))
        try:
            rewards.append(float(found is not None and float(found) == float(gold)))
        except (TypeError, ValueError):
            rewards.append(0.0)
    return rewards


def naive_format_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when the no-DOTALL format regex matches: only for one-line reasoning and answers."""
    return [1.0 if NAIVE_FORMAT_RE.match(completion_text(c)) else 0.0 for c in completions]


_NUMBER_TEXT = r"-?[$0-9.,]+"
_STRICT_TAG_RE = re.compile(r"<answer>\s*(" + _NUMBER_TEXT + r")\s*</answer>")
_FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # lm-eval-harness "flexible-extract"


def _harness_normalise(text: str) -> str:
    """lm-eval-harness style: drop commas and dollar signs and a final full stop; keep the rest."""
    return text.replace(",", "").replace("$", "").strip().rstrip(".")


def strict_regex_correct(text: str, gold: str) -> bool:
    """A strict regex grader: the tags hold a bare number whose *string* equals the gold."""
    match = _STRICT_TAG_RE.search(text)
    return match is not None and _harness_normalise(match.group(1)) == gold


def last_number_correct(text: str, gold: str) -> bool:
    """The flexible grader of many GRPO notebooks: the last number anywhere, compared as text."""
    matches = _FLEXIBLE_RE.findall(text)
    if not matches:
        return False
    last = next(group for group in matches[-1] if group)
    return _harness_normalise(last) == gold


def math_verify_reward(completions: Any, answer: Any, **kwargs: Any) -> list[float]:
    """math_verify with its defaults, ``verify(parse(gold), parse(completion))``: strong on one
    clean final answer, not built to refuse hedges (``pip install math-verify``, a dev extra)."""
    from math_verify import parse, verify

    rewards = []
    for completion, gold in zip(completions, answer, strict=True):
        try:
            rewards.append(float(verify(parse(str(gold)), parse(completion_text(completion)))))
        except Exception:  # noqa: BLE001 - a grader under comparison scores 0 where it fails
            rewards.append(0.0)
    return rewards
