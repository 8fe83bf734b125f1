"""Benchmark of the accuracy reward: agreement with human labels, hacks rewarded, throughput.

Run: ``python benchmarks/rewards.py`` (``make bench``). Prints figures; asserts nothing.

1. Agreement with the labels of ``tests/data/reward_corpus.jsonl`` for three graders: ours
   (``utils.rewards.accuracy_reward``, given the rows' questions where they have one, as TRL
   gives it the ``question`` column), math_verify with its defaults (parse + verify) and the naive
   grader the course composes (one-line ``<answer>`` regex without DOTALL, else last number); the
   two baselines live in ``utils.grader.baselines``.
   The corpus was written together with our grader: its agreement is in-sample (a regression
   check), not a measure on unseen completions. Targets for ours on unseen, independently
   labelled corpora: >= 97% agreement and no wrong answer rewarded.
2. Throughput of ``accuracy_reward`` on ~1 KB completions (with their questions) on one core, next
   to math_verify on the same inputs (math_verify is timed on a smaller sample; rates are per
   second). Targets: >= 20,000 completions/s and >= 10x math_verify.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from utils.data import load_gsm8k
from utils.grader.baselines import math_verify_reward, naive_accuracy_reward
from utils.rewards import accuracy_reward

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "reward_corpus.jsonl"
HACK_CATEGORIES = ("hedge", "list", "empty_tag", "injection")
GRADERS: dict[str, Callable[..., list[float]]] = {
    "ours": accuracy_reward,
    "math_verify": math_verify_reward,
    "naive regex": naive_accuracy_reward,
}


def agreement_report(rows: list[dict]) -> None:
    completions = [row["completion"] for row in rows]
    golds = [row["gold"] for row in rows]
    questions = [row.get("question") for row in rows]
    labels = [row["label"] == "correct" for row in rows]
    hack_rows = [i for i, row in enumerate(rows)
                 if row["category"] in HACK_CATEGORIES and row["label"] == "incorrect"]
    print(f"Corpus: {len(rows)} labelled completions; {len(hack_rows)} wrong answers in "
          f"{', '.join(HACK_CATEGORIES)}")
    print(f"{'grader':<14}{'agreement':>11}{'false +':>9}{'false -':>9}{'hacks rewarded':>16}")
    for name, grader in GRADERS.items():
        rewards = [reward == 1.0 for reward in grader(completions, answer=golds,
                                                      question=questions)]
        agree = sum(r == label for r, label in zip(rewards, labels, strict=True))
        false_pos = sum(r and not label for r, label in zip(rewards, labels, strict=True))
        false_neg = sum(label and not r for r, label in zip(rewards, labels, strict=True))
        hacks = sum(rewards[i] for i in hack_rows)
        print(f"{name:<14}{agree / len(rows):>10.1%}{false_pos:>9}{false_neg:>9}"
              f"{hacks:>9} / {len(hack_rows)}")
        by_category = {}
        for i in hack_rows:
            by_category.setdefault(rows[i]["category"], []).append(rewards[i])
        print(" " * 14 + "  ".join(f"{cat}: {sum(v)}/{len(v)}" for cat, v in by_category.items()))


def one_kb_completions(count: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """~1 KB completions built from GSM8K solutions, in the formats a policy produces."""
    dataset = load_gsm8k("train", n=min(count, 2000), seed=seed)
    rng = random.Random(seed)
    completions, golds, questions = [], [], []
    for i in range(count):
        row = dataset[i % len(dataset)]
        steps = row["solution"].split("####")[0].strip()
        reasoning = (steps + "\n") * (1 + 900 // max(1, len(steps)))
        reasoning = reasoning[:900]
        answer = row["answer"] if rng.random() < 0.5 else str(int(float(row["answer"])) + 1)
        kind = i % 4
        if kind == 0:
            text = f"<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>"
        elif kind == 1:
            text = f"{reasoning}\nSo the answer is {answer}."
        elif kind == 2:
            text = f"{reasoning}\nThe total is \\boxed{{{answer}}}."
        else:
            text = f"<think>\n{reasoning}\n</think>\n<answer>\n{answer} or {answer}0\n</answer>"
        completions.append(text)
        golds.append(row["answer"])
        questions.append(row["question"])
    return completions, golds, questions


def rate(grader: Callable[..., list[float]], completions: list[str], golds: list[str],
         questions: list[str], min_seconds: float = 2.0) -> tuple[float, float]:
    """Completions per wall-clock second and per CPU second of this process, repeating the whole
    list until ``min_seconds`` have passed. On a shared machine the CPU-second rate is the one
    that other processes disturb least."""
    grader(completions[:10], answer=golds[:10], question=questions[:10])  # warm up caches
    done, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        grader(completions, answer=golds, question=questions)
        done += len(completions)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed, done / max(time.process_time() - cpu_start, 1e-9)


def throughput_report() -> None:
    completions, golds, questions = one_kb_completions(20_000)
    size = sum(len(c) for c in completions) / len(completions)
    ours = rate(accuracy_reward, completions, golds, questions)
    sample = 300
    theirs = rate(math_verify_reward, completions[:sample], golds[:sample], questions[:sample],
                  min_seconds=5.0)
    print(f"Throughput on one core ({platform.processor() or platform.machine()}), "
          f"mean completion {size:.0f} chars, 4 formats mixed")
    print(f"{'':14}{'per second':>12}{'per CPU second':>16}")
    print(f"  ours        {ours[0]:>12,.0f}{ours[1]:>16,.0f}  (20,000 completions)")
    print(f"  math_verify {theirs[0]:>12,.0f}{theirs[1]:>16,.0f}  ({sample} completions)")
    print(f"  speed-up    {ours[0] / theirs[0]:>11.1f}x{ours[1] / theirs[1]:>15.1f}x")


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    agreement_report(rows)
    print()
    throughput_report()


if __name__ == "__main__":
    main()
