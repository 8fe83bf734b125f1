"""Evaluation throughput: batched vs one-at-a-time generation, and grading speed.

Targets (issue 5):

1. On CPU, batched generation reaches at least 4x the tokens per second of one-at-a-time
   generation for the same prompts and the same token budget; the number of identical greedy
   outputs between the two is reported (left padding may change the last bits of the logits, so
   a few may differ after a near tie).
2. Grading all 1319 x 8 sampled answers (grade every completion, then the summary with maj@8 and
   pass@k) takes under 2 seconds.

Run: ``python benchmarks/eval_throughput.py`` (cpu mode, SmolLM2; about 3-6 minutes on 2 cores)
or ``--mode smoke`` for a seconds-long check of the script itself. Timings on a shared or busy
machine are pessimistic.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def generation_benchmark(mode: str, n_prompts: int, max_new_tokens: int) -> float:
    """Print batched vs sequential tokens/s and identical outputs; return the speed-up."""
    from utils.evaluation import select_questions
    from utils.generation import generate
    from utils.models import load_for_inference

    model, tokenizer = load_for_inference(mode)
    prompts = [q.prompt for q in select_questions("test", n_prompts, seed=0)]
    generate(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    start = time.perf_counter()
    sequential = [generate(model, tokenizer, [p], max_new_tokens=max_new_tokens, batch_size=1)[0]
                  for p in prompts]
    sequential_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                       batch_size=n_prompts)
    batched_s = time.perf_counter() - start

    seq_tokens = sum(c[0].num_tokens for c in sequential)
    bat_tokens = sum(c[0].num_tokens for c in batched)
    seq_rate, bat_rate = seq_tokens / sequential_s, bat_tokens / batched_s
    identical = sum(s[0].text == b[0].text for s, b in zip(sequential, batched, strict=True))
    speedup = bat_rate / seq_rate
    print(f"generation ({mode}, {n_prompts} GSM8K prompts, greedy, max_new_tokens="
          f"{max_new_tokens}, torch threads {_threads()})")
    print(f"  one at a time: {seq_tokens:5d} tokens in {sequential_s:7.1f} s = "
          f"{seq_rate:7.1f} tokens/s")
    print(f"  batched ({n_prompts:2d}):  {bat_tokens:5d} tokens in {batched_s:7.1f} s = "
          f"{bat_rate:7.1f} tokens/s")
    print(f"  speed-up: {speedup:.1f}x (target >= 4x)  "
          f"{'PASS' if speedup >= 4 else 'FAIL'}")
    print(f"  identical greedy outputs: {identical}/{n_prompts}")
    return speedup


def _threads() -> int:
    import torch

    return torch.get_num_threads()


TRUNCATED = 6  # the index of the cut-off completion among the synthetic samples


def synthetic_samples(k: int = 8) -> list[tuple[object, list[str]]]:
    """k realistic completions per GSM8K test question, built from the gold worked solutions:
    right and wrong answers, in tags, boxed, in prose, hedged and cut off."""
    from utils.data import load_gsm8k
    from utils.evaluation import select_questions

    questions = select_questions("test")
    solutions = load_gsm8k("test")["solution"]
    samples = []
    for question, solution in zip(questions, solutions, strict=True):
        reasoning = re.sub(r"<<[^>]*>>", "", solution.rsplit("####", 1)[0]).strip()
        gold, wrong = question.gold, str(int(float(question.gold)) + 1)
        texts = [
            f"<think>\n{reasoning}\n</think>\n<answer>\n{gold}\n</answer>",
            f"<think>\n{reasoning}\n</think>\n<answer>\n{wrong}\n</answer>",
            f"<think>{reasoning}</think> <answer>${gold}.00</answer>",
            f"{reasoning}\nThe answer is {gold}.",
            f"{reasoning}\nSo the final answer is \\boxed{{{wrong}}}.",
            f"<think>\n{reasoning}\n</think>\n<answer>\n{gold} or {wrong}\n</answer>",
            f"<think>\n{reasoning[: len(reasoning) // 2]}",
            f"<think>\n{reasoning}\n</think>\n<answer>{gold}</answer> extra text 12",
        ]
        samples.append((question, texts[:k]))
    return samples


def grading_benchmark(k: int = 8) -> float:
    """Print and return the seconds to grade and summarise 1319 x k completions."""
    from utils.evaluation import sample_rows, summarize
    from utils.generation import Completion

    samples = synthetic_samples(k)
    completions = [(q, [Completion(t, len(t) // 4, finished=j != TRUNCATED)
                        for j, t in enumerate(texts)]) for q, texts in samples]
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = [row for question, outs in completions for row in sample_rows(question, outs)]
    summary = summarize(rows)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"grading {len(samples)} questions x {k} samples = {len(rows)} completions")
    print(f"  grade + summarise: {seconds:.2f} s ({len(rows) / seconds:,.0f} completions/s; "
          f"target < 2 s)  {'PASS' if seconds < 2 else 'FAIL'}")
    print(f"  CPU time of this process: {cpu_seconds:.2f} s (wall minus time lost to other "
          "processes on a busy machine)")
    print(f"  check: strict {summary['accuracy_strict']:.3f} (expected 3/8 = 0.375), lenient "
          f"{summary['accuracy_lenient']:.3f} (expected 4/8 = 0.500), maj@{k} "
          f"{summary['maj_at_k']:.3f}, pass@{k} {summary['pass_at_k']:.3f}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="cpu", choices=("cpu", "smoke"))
    parser.add_argument("--n-prompts", type=int, default=16,
                        help="prompts, generated as one batch (16: the cpu evaluation's batch)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice). On a machine shared with "
                             "other jobs use 1: spinning OpenMP threads then slow everything down")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ok = grading_benchmark() < 2
    if not args.skip_generation:
        ok = generation_benchmark(args.mode, args.n_prompts, args.max_new_tokens) >= 4 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
