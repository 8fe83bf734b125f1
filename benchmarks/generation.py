"""Generation speed: ``utils.generation.generate`` against plain ``model.generate``, same prompts.

Target (issue 10): at least 3x the tokens per second of plain ``model.generate`` at batch 16
(greedy, CPU, SmolLM2-135M-Instruct, task-ladder prompts), with identical greedy outputs.
Tokens counted are the completion tokens kept (up to and including end-of-sequence), the same
count for both sides; time is wall-clock for the whole batch, prompt processing included.

Run: ``python benchmarks/generation.py`` (cpu mode, about 2-5 minutes on 2 cores) or
``--mode smoke`` for a seconds-long check of the script itself. Timings on a shared or busy
machine are pessimistic and noisy: the ratio of the two, measured back to back, is the figure.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["cpu", "smoke"], default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--rung", default="one_step")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from utils.generation import _eos_ids, decode, plain_generate_tokens, render_prompt
    from utils.models import load_for_inference
    from utils.prompts import build_messages
    from utils.tasks import load_task

    model, tokenizer = load_for_inference(args.mode)
    model.eval()
    prompts = [build_messages(row["question"])
               for row in load_task(args.rung, "test", n=args.batch, seed=0)]
    eos_ids = _eos_ids(model, tokenizer)
    ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
           for p in prompts]
    plain_generate_tokens(model, tokenizer, prompts[:2], 4)  # warm-up both paths
    decode(model, ids[:2], 4, eos_ids)

    start = time.perf_counter()
    reference = plain_generate_tokens(model, tokenizer, prompts, args.max_new_tokens)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = decode(model, ids, args.max_new_tokens, eos_ids)
    ours_s = time.perf_counter() - start

    tokens = sum(len(row) for row in reference)
    identical = sum(a == b for a, b in zip(reference, ours, strict=True))
    ratio = plain_s / ours_s
    print(f"generation ({args.mode}, batch {args.batch}, {args.rung} prompts, greedy, "
          f"max_new_tokens={args.max_new_tokens}, torch threads {torch.get_num_threads()})")
    print(f"  plain model.generate:      {tokens:5d} tokens in {plain_s:6.1f} s = "
          f"{tokens / plain_s:6.1f} tokens/s")
    print(f"  utils.generation.generate: {sum(map(len, ours)):5d} tokens in {ours_s:6.1f} s = "
          f"{sum(map(len, ours)) / ours_s:6.1f} tokens/s")
    print(f"  ratio: {ratio:.2f}x (target >= 3x)  {'PASS' if ratio >= 3 else 'FAIL'}")
    print(f"  identical greedy outputs: {identical}/{len(ids)}"
          f"  {'PASS' if identical == len(ids) else 'FAIL'}")


if __name__ == "__main__":
    main()
