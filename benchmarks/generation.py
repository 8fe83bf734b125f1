"""Generation speed against plain ``model.generate`` and against what the CPU's matmuls allow.

Prints, in one run on the machine it runs on:

1. **Greedy, fp32**: :func:`utils.generation.decode` against ``model.generate`` at batch 16,
   128 new tokens, task-ladder prompts: tokens/s, the ratio, and how many rows are identical.
2. **Rollouts** (``grpo_scratch.rollout``, the public sampling entry point, called with the fp32
   model; the sampling copy of the weights is taken inside the timed call) at three shapes: the
   old demo's 8 questions x 4 samples x 48 tokens, 8 x 8 x 48, and the shipped cpu recipe's
   shape; in fp32, in bf16 where the CPU has it natively, and plain ``model.generate`` (fp32,
   one batch, ``do_sample=True``, ``num_return_sequences=G``, ``top_k=0``, ``top_p=1``, the same
   prompts, temperature, token limit and threads).
3. Next to each: the achieved GFLOP/s (2 x the linear layers' parameters x completion tokens /
   seconds) and the **matmul ceiling** for that precision and batch: the best of several timed
   passes of the model's linear layers (``F.linear`` on random rows), measured here.

Tokens counted are completion tokens up to and including end-of-sequence, the same count for
every side. Targets (issue 18): rollouts >= 4x plain sampling and >= half the ceiling; greedy
identical and >= 3x. Run ``python benchmarks/generation.py`` (cpu mode, several minutes on 2
cores) or ``--mode smoke`` (seconds, checks the script). On a busy machine the figures are noise:
run it on an idle one (``uptime``) and record the machine with the table in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def linear_parameters(model) -> int:
    """Parameters of every linear layer, the LM head included: the FLOPs of a token are twice this."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def matmul_ceiling(model, rows: int, dtype, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` passes through all linear layers with ``rows`` rows."""
    import torch
    import torch.nn.functional as F

    weights = [m.weight.detach().to(dtype) for m in model.modules()
               if isinstance(m, torch.nn.Linear)]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=dtype) for w in weights}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for w in weights:
            F.linear(inputs[w.shape[1]], w)
        best = min(best, time.perf_counter() - start)
    return 2 * sum(w.numel() for w in weights) * rows / best / 1e9


def plain_sample_tokens(model, tokenizer, prompts, group_size: int, max_new_tokens: int,
                        temperature: float) -> int:
    """Completion tokens (up to end-of-sequence) of plain ``model.generate`` sampling."""
    import torch

    from utils.generation import eos_ids, render_prompt

    tokenizer.padding_side = "left"
    eos = eos_ids(model, tokenizer)
    batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt",
                      padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    with torch.inference_mode():
        output = model.generate(**batch, do_sample=True, num_return_sequences=group_size,
                                top_k=0, top_p=1.0, temperature=temperature,
                                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=eos)
    count = 0
    for row in output[:, batch["input_ids"].shape[1]:].tolist():
        stop = next((i for i, token in enumerate(row) if token in eos), None)
        count += len(row) if stop is None else stop + 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["cpu", "smoke"], default="cpu")
    parser.add_argument("--rung", default="one_step")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every side (default: torch's choice)")
    parser.add_argument("--skip-greedy", action="store_true")
    parser.add_argument("--skip-rollouts", action="store_true")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from utils import grpo_scratch
    from utils.cpu_demo import RECIPES, machine
    from utils.generation import decode, eos_ids, plain_generate_tokens, render_prompt
    from utils.models import load_for_inference
    from utils.prompts import build_messages
    from utils.sampling import LeanSampler, common_prefix, native_bf16
    from utils.tasks import load_task

    model, tokenizer = load_for_inference(args.mode)
    model.eval()
    params = linear_parameters(model)
    print(f"generation benchmark ({args.mode}) on {machine()}, torch threads "
          f"{torch.get_num_threads()}")

    if not args.skip_greedy:
        prompts = [build_messages(row["question"])
                   for row in load_task(args.rung, "test", n=16, seed=0)]
        eos = eos_ids(model, tokenizer)
        ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
               for p in prompts]
        plain_generate_tokens(model, tokenizer, prompts[:2], 4)  # warm-up both paths
        decode(model, ids[:2], 4, eos)
        start = time.perf_counter()
        reference = plain_generate_tokens(model, tokenizer, prompts, 128)
        plain_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = decode(model, ids, 128, eos)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        lean, _ = LeanSampler(model, torch.float32).sample(ids, 1, 128, eos, temperature=0.0)
        lean_s = time.perf_counter() - start
        tokens = sum(len(row) for row in reference)
        print("greedy fp32, batch 16, 128 new tokens:")
        print(f"  plain model.generate          {tokens / plain_s:7.1f} tokens/s")
        for label, rows, seconds in (("decode (speculative)", ours, ours_s),
                                     ("LeanSampler argmax", lean, lean_s)):
            identical = sum(a == b for a, b in zip(reference, rows, strict=True))
            ratio = plain_s / seconds
            print(f"  {label:28s}  {sum(map(len, rows)) / seconds:7.1f} tokens/s  {ratio:.2f}x "
                  f"(target >= 3x) {'PASS' if ratio >= 3 else 'FAIL'}; identical "
                  f"{identical}/{len(ids)} {'PASS' if identical == len(ids) else 'FAIL'}")
        # where the time must go without speculation: the prompts through the linear layers
        # once (the shared prefix once, at the best ceiling), then one pass per new token over
        # the rows still writing (rows leave when done, as plain generate's rows do not)
        shared = common_prefix(ids)
        prompt_tokens = shared + sum(len(row) - shared for row in ids)
        head = model.get_output_embeddings().weight.numel()
        best = max(matmul_ceiling(model, rows, torch.float32) for rows in (64, 128, 256))
        prefill_s = 2 * (params - head) * prompt_tokens / best / 1e9
        lengths = [len(row) for row in reference]
        live = [sum(n > t for n in lengths) for t in range(max(lengths))]
        pass_s = {rows: 2 * params * rows / matmul_ceiling(model, rows, torch.float32) / 1e9
                  for rows in set(live)}
        floor_s = prefill_s + sum(pass_s[rows] for rows in live)
        print(f"  fp32 floor without speculation: prompts {prefill_s:.1f} s + {len(live)} "
              f"passes over 16 to {live[-1]} live rows {floor_s - prefill_s:.1f} s = "
              f"{floor_s:.1f} s; plain took {plain_s:.1f} s, so 3x needs {floor_s / (plain_s / 3):.0%}"
              f" of the ceiling (over 100%: only guessed tokens checked in one pass can reach it)")

    if args.skip_rollouts:
        return
    recipe = RECIPES["cpu"] if args.mode == "cpu" else RECIPES["smoke"]
    shapes = [(8, 4, 48), (8, 8, 48),
              (recipe.questions_per_step, recipe.group_size, recipe.max_new_tokens)]
    precisions = ["fp32"] + (["bf16"] if native_bf16() else [])
    if not native_bf16():
        print("  (no native bf16 on this CPU: bf16 sampling not measured)")
    rows_all = load_task(args.rung, "train", n=8, seed=0)
    grpo_scratch.rollout(model, tokenizer, [build_messages(rows_all[0]["question"])], ["1"], 2, 4)
    for questions, group, new_tokens in dict.fromkeys(shapes):
        rows = load_task(args.rung, "train", n=questions, seed=0)
        prompts = [build_messages(r["question"]) for r in rows]
        answers = [r["answer"] for r in rows]
        batch = questions * group
        print(f"rollout {questions} questions x {group} samples x {new_tokens} tokens "
              f"(T = {recipe.temperature}):")
        start = time.perf_counter()
        tokens = plain_sample_tokens(model, tokenizer, prompts, group, new_tokens,
                                     recipe.temperature)
        plain_rate = tokens / (time.perf_counter() - start)
        ceiling32 = matmul_ceiling(model, batch, torch.float32)
        print(f"  plain model.generate fp32  {plain_rate:7.1f} tokens/s  "
              f"{2 * params * plain_rate / 1e9:6.1f} GFLOP/s (ceiling {ceiling32:6.1f})")
        for precision in precisions:
            start = time.perf_counter()
            out = grpo_scratch.rollout(model, tokenizer, prompts, answers, group, new_tokens,
                                       temperature=recipe.temperature, precision=precision)
            rate = int(out.completion_mask.sum()) / (time.perf_counter() - start)
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            ceiling = ceiling32 if precision == "fp32" else matmul_ceiling(model, batch, dtype)
            achieved = 2 * params * rate / 1e9
            ratio, share = rate / plain_rate, achieved / ceiling
            print(f"  ours {precision:4s}                 {rate:7.1f} tokens/s  {achieved:6.1f} "
                  f"GFLOP/s (ceiling {ceiling:6.1f}, {share:.0%}: {'PASS' if share >= 0.5 else 'FAIL'}"
                  f" >= 50%)  {ratio:.2f}x plain {'PASS' if ratio >= 4 else 'FAIL'} >= 4x")


if __name__ == "__main__":
    main()
