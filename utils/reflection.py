"""The "aha moment", measured: reflection phrases and response length over training steps.

The DeepSeek-R1 paper (Guo et al., 2025, Section 2.2.4) reports that during RL R1-Zero's responses
grew longer and that it began to re-evaluate its own steps ("Wait, wait. Wait. That's an aha
moment I can flag here."). Later work measured the same thing in *base* models before any RL
(Liu et al., 2025, "There May Not be Aha Moment in R1-Zero-like Training", and "Understanding
R1-Zero-Like Training: A Critical Perspective", which found it in DeepSeek-V3-Base). So the claim
to test in any run is quantitative: does the *rate* of reflection change over training, and by
how much, compared with step 0?

- :data:`REFLECTION_PATTERNS` are the phrases counted (word-bounded, case-insensitive). A phrase
  list is a crude instrument: "wait" also matches "wait for the bus". The notebook shows matches
  in context so that the reader can judge.
- :func:`read_logged_completions` reads what a GRPO run logged: TRL's
  ``completions/completions_*.parquet`` or a ``completions.jsonl`` with ``step`` and
  ``completion`` keys.
- :func:`reflection_by_step` gives, per step, the share of completions with at least one phrase
  (with a Wilson 95% interval) and the mean length; :func:`early_late` compares the first and last
  steps of a run with a two-sided Fisher exact test.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from utils.stats import wilson_interval

REFLECTION_PATTERNS: dict[str, str] = {
    "wait": r"\bwait\b",
    "let me check": r"\blet(?: me|'s| us) (?:double[- ])?check\b",
    "recheck": r"\bre-?check(?:ing|ed)?\b",
    "double-check": r"\bdouble[- ]check(?:ing|ed)?\b",
    "verify": r"\bverify(?:ing)?\b",
    "re-evaluate": r"\bre-?(?:evaluate|examine|consider|think)\b",
    "mistake": r"\b(?:i made a |my )?mistake\b",
    "actually": r"\bactually\b",
    "hmm": r"\bhmm+\b",
    "on second thought": r"\bon second thought\b",
    "aha": r"\baha\b",
}
"""Phrases counted as self-reflection: those of the R1 paper's "aha" example and the keyword lists
of later reproductions (re-check, verify, re-evaluate, wait, mistake)."""

_COMPILED = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in
             REFLECTION_PATTERNS.items()}


def reflection_counts(text: Any) -> dict[str, int]:
    """How often each reflection phrase occurs in ``text`` (non-strings count as empty)."""
    text = text if isinstance(text, str) else ""
    return {name: len(regex.findall(text)) for name, regex in _COMPILED.items()}


def has_reflection(text: Any) -> bool:
    """Whether ``text`` contains at least one reflection phrase."""
    text = text if isinstance(text, str) else ""
    return any(regex.search(text) for regex in _COMPILED.values())


def reflection_examples(texts: Iterable[str], limit: int = 5, width: int = 60) -> list[str]:
    """Up to ``limit`` matches shown in context (``width`` characters either side)."""
    found = []
    for text in texts:
        for regex in _COMPILED.values():
            match = regex.search(text or "")
            if match:
                start, end = max(0, match.start() - width), min(len(text), match.end() + width)
                found.append(" ".join(text[start:end].split()))
                break
        if len(found) == limit:
            break
    return found


# ------------------------------------------------------------------------------- reading a run
def read_logged_completions(run: str | os.PathLike) -> list[dict[str, Any]]:
    """Every logged completion of a training run as ``{"step", "completion"}`` rows.

    ``run`` is a run directory holding TRL's ``completions/completions_*.parquet`` (written with
    ``log_completions=True``, as :mod:`utils.training` configures) or a ``completions.jsonl``
    with ``step`` and ``completion`` (or ``text``, as :mod:`utils.grpo_scratch` writes) keys;
    or the path of such a JSONL file. A missing log is an error that says how to make one.
    """
    path = Path(run)
    jsonl = path if path.suffix == ".jsonl" else path / "completions.jsonl"
    if jsonl.is_file():
        rows = []
        with open(jsonl, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{jsonl}, line {number}: not valid JSON") from None
                text = row.get("completion", row.get("text"))  # utils.grpo_scratch writes "text"
                if "step" not in row or text is None:
                    raise ValueError(f"{jsonl}, line {number}: needs 'step' and 'completion'")
                rows.append({"step": int(row["step"]), "completion": str(text)})
        return rows
    files = sorted(path.glob("completions/completions_*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no logged completions in {path}: expected completions.jsonl or "
            "completions/completions_*.parquet (train with utils.training, which sets "
            "log_completions=True)")
    import pandas as pd

    from utils.rewards import completion_text

    rows = []
    for file in files:
        table = pd.read_parquet(file, columns=["step", "completion"])
        for step, completion in zip(table["step"], table["completion"]):
            text = completion if isinstance(completion, str) else completion_text(list(completion))
            rows.append({"step": int(step), "completion": text})
    return sorted(rows, key=lambda row: row["step"])


# ------------------------------------------------------------------------------- measuring
def _word_count(text: str) -> int:
    return len(text.split())


def reflection_by_step(rows: Iterable[Mapping[str, Any]],
                       length: Callable[[str], int] = _word_count) -> list[dict[str, Any]]:
    """Per training step: completions ``n``, share with a reflection phrase ``rate`` and its
    Wilson 95% interval ``low``/``high``, mean ``length`` (words unless ``length`` is given,
    e.g. a token counter), and the count of each phrase."""
    by_step: dict[int, list[str]] = {}
    for row in rows:
        by_step.setdefault(int(row["step"]), []).append(str(row["completion"]))
    table = []
    for step in sorted(by_step):
        texts = by_step[step]
        hits = sum(has_reflection(t) for t in texts)
        low, high = wilson_interval(hits, len(texts))
        phrases = {name: 0 for name in REFLECTION_PATTERNS}
        for text in texts:
            for name, count in reflection_counts(text).items():
                phrases[name] += count
        table.append({"step": step, "n": len(texts), "rate": hits / len(texts), "low": low,
                      "high": high, "length": statistics.fmean(length(t) for t in texts),
                      "phrases": phrases})
    return table


def fisher_exact(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p-value for "the two rates hits_a/n_a and hits_b/n_b are equal"
    (sum of the hypergeometric probabilities no larger than the observed table's)."""
    if not (0 <= hits_a <= n_a and 0 <= hits_b <= n_b) or n_a + n_b == 0:
        raise ValueError("need 0 <= hits <= n for both groups")
    total_hits, total = hits_a + hits_b, n_a + n_b

    def probability(x: int) -> float:
        return (math.comb(n_a, x) * math.comb(n_b, total_hits - x)) / math.comb(total, total_hits)

    support = range(max(0, total_hits - n_b), min(n_a, total_hits) + 1)
    observed = probability(hits_a)
    return min(1.0, sum(p for p in map(probability, support) if p <= observed * (1 + 1e-9)))


def early_late(rows: Sequence[Mapping[str, Any]], share: float = 0.25,
               length: Callable[[str], int] = _word_count) -> dict[str, Any]:
    """Reflection rate and mean length of the first and the last ``share`` of a run's steps,
    with Wilson intervals and a Fisher exact test on the rates."""
    steps = sorted({int(row["step"]) for row in rows})
    if len(steps) < 2:
        raise ValueError("need completions from at least two training steps")
    cut = max(1, round(len(steps) * share))
    early_steps, late_steps = set(steps[:cut]), set(steps[-cut:])
    result: dict[str, Any] = {}
    for name, chosen in (("early", early_steps), ("late", late_steps)):
        texts = [str(r["completion"]) for r in rows if int(r["step"]) in chosen]
        hits = sum(has_reflection(t) for t in texts)
        result[name] = {"steps": (min(chosen), max(chosen)), "n": len(texts), "hits": hits,
                        "rate": hits / len(texts), "ci95": wilson_interval(hits, len(texts)),
                        "length": statistics.fmean(length(t) for t in texts)}
    early, late = result["early"], result["late"]
    result["p_value"] = fisher_exact(early["hits"], early["n"], late["hits"], late["n"])
    return result


def format_early_late(result: Mapping[str, Any], unit: str = "words") -> str:
    """Two lines and a verdict for :func:`early_late`."""
    lines = []
    for name in ("early", "late"):
        part = result[name]
        low, high = part["ci95"]
        lines.append(f"  {name:<5} steps {part['steps'][0]}-{part['steps'][1]}: reflection in "
                     f"{part['hits']}/{part['n']} = {part['rate']:.1%} (95% CI {low:.1%}-"
                     f"{high:.1%}), mean length {part['length']:.1f} {unit}")
    lines.append(f"  Fisher exact test, early vs late rate: p = {result['p_value']:.3g}")
    return "\n".join(lines)


def plot_reflection(table: Sequence[Mapping[str, Any]], title: str = "Reflection over training",
                    length_unit: str = "words"):
    """Two panels over steps: mean response length, and the reflection rate with its Wilson band."""
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in table]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(steps, [row["length"] for row in table], marker="o", markersize=3)
    left.set_xlabel("training step")
    left.set_ylabel(f"mean length ({length_unit})")
    left.set_title("response length")
    right.plot(steps, [row["rate"] for row in table], marker="o", markersize=3)
    right.fill_between(steps, [row["low"] for row in table], [row["high"] for row in table],
                       alpha=0.25, label="Wilson 95%")
    right.set_ylim(0, 1)
    right.set_xlabel("training step")
    right.set_ylabel("share with a reflection phrase")
    right.set_title("reflection rate")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
