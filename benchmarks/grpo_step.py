"""GRPO step time, generated tokens/s and peak VRAM: Unsloth vs plain TRL + PEFT, T4 preset.

The model is the Qwen2.5-3B-Instruct *architecture* with random weights (hidden 2048, 36 layers,
16 heads, 2 KV heads, intermediate 11008, vocab 151936, tied embeddings): no download, and the
memory and speed of a step do not depend on the weight values. Both backends get the T4 preset
(4-bit base, LoRA r16 on all projections, 8 completions per question, fp16, paged 8-bit AdamW,
gradient checkpointing) and the course's rewards; each runs in its own process so that peak VRAM
is not shared and Unsloth's patches do not leak into the plain-TRL run.

    python benchmarks/grpo_step.py                   # both backends on the GPU, side by side
    python benchmarks/grpo_step.py --backend trl     # one backend
    python benchmarks/grpo_step.py --smoke           # tiny model on CPU: checks the script runs

Without CUDA the script runs the smoke path only and says which figures were not measured.
Target: the T4 preset peaks under 15 GiB.

Random weights rarely emit EOS, so every completion runs to ``max_completion_length``: the step
time is a worst case for the preset (real runs stop earlier once answers are short).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QWEN25_3B = {
    "hidden_size": 2048, "num_hidden_layers": 36, "num_attention_heads": 16,
    "num_key_value_heads": 2, "intermediate_size": 11008, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 32768, "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
}
T4_BUDGET_GIB = 15.0


def build_random_qwen25_3b(path: Path) -> Path:
    """Save the Qwen2.5-3B architecture with random fp16 weights and the course's tiny tokenizer
    (the vocabulary size of the model, not of the tokenizer, sets the LM head's cost)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from utils.models import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(**QWEN25_3B, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)  # ~6 GB in CPU RAM
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def step_timer():
    """A trainer callback recording the wall time of each optimizer step in ``.times``.
    (Defined on call: transformers must not be imported before Unsloth in the worker.)"""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    return StepTimer()


def run_backend(backend: str, model_path: str, steps: int, smoke: bool) -> dict:
    """Train ``steps`` GRPO steps with one backend; the first step (compilation, allocator
    warm-up) is reported apart from the mean of the others."""
    if backend == "unsloth":
        import unsloth  # noqa: F401  (before trl, so that GRPOTrainer is patched)
    import torch
    from trl import GRPOTrainer

    from utils.rewards import reward_funcs_and_weights
    from utils.training import ensure_logprob_kernel, get_preset, grpo_config, train_prompts

    mode = "smoke" if smoke else "gpu"
    preset = get_preset("smoke" if smoke else "t4", use_vllm=False, save_steps=10_000,
                        completions_to_print=1)
    if smoke:
        from utils.models import load_policy

        model, tokenizer = load_policy("smoke", lora=preset.lora)
        ensure_logprob_kernel()
    else:
        from utils.models import load_policy

        model, tokenizer = load_policy("gpu", model_name=model_path, lora=preset.lora,
                                       max_seq_length=preset.max_seq_length, use_vllm=False,
                                       backend="unsloth" if backend == "unsloth" else "peft")
    dataset = train_prompts(tokenizer, preset.max_prompt_length, n=64)
    funcs, weights = reward_funcs_and_weights(preset.reward_weights)
    timer = step_timer()
    with tempfile.TemporaryDirectory() as out:
        config = grpo_config(preset, out, mode=mode, max_steps=steps)
        config.reward_weights = weights
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        # Built here rather than with utils.training.build_trainer, which imports Unsloth on
        # the GPU path: the plain-TRL baseline must run unpatched.
        trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=config,
                              train_dataset=dataset, processing_class=tokenizer,
                              callbacks=[timer])
        trainer.train()
        history = trainer.state.log_history
    lengths = [row["completions/mean_length"] for row in history if "reward" in row]
    per_step = preset.per_device_train_batch_size * preset.gradient_accumulation_steps
    rest = timer.times[1:] or timer.times
    step_s = sum(rest) / len(rest)
    tokens = sum(lengths[1:] or lengths) / len(lengths[1:] or lengths) * per_step
    return {
        "backend": backend, "preset": preset.name, "steps": steps,
        "first_step_s": round(timer.times[0], 2), "step_s": round(step_s, 2),
        "generated_tokens_per_step": round(tokens),
        "generated_tokens_per_s": round(tokens / step_s, 1),
        "peak_vram_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }


def in_subprocess(backend: str, model_path: str, steps: int, smoke: bool) -> dict:
    """Run one backend in a fresh Python process and return its JSON line."""
    command = [sys.executable, __file__, "--worker", backend, "--model-path", model_path,
               "--steps", str(steps)] + (["--smoke"] if smoke else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={**os.environ, "WORKSHOP_MODE": "smoke" if smoke else "gpu"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        return {"backend": backend, "error": (result.stderr or result.stdout)[-1500:]}
    return json.loads(lines[-1].removeprefix("RESULT "))


def print_table(results: list[dict]) -> None:
    keys = ["backend", "device", "first_step_s", "step_s", "generated_tokens_per_s",
            "peak_vram_gib"]
    print(" | ".join(f"{k:>22}" for k in keys))
    for row in results:
        if "error" in row:
            print(f"{row['backend']:>22} | FAILED: {row['error'].splitlines()[-1][:100]}")
            continue
        print(" | ".join(f"{row.get(k)!s:>22}" for k in keys))
    for row in results:
        if row.get("peak_vram_gib") is not None:
            verdict = "under" if row["peak_vram_gib"] < T4_BUDGET_GIB else "OVER"
            print(f"{row['backend']}: peak {row['peak_vram_gib']} GiB, {verdict} the "
                  f"{T4_BUDGET_GIB} GiB T4 target")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["unsloth", "trl", "both"], default="both")
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per backend (>= 2)")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU")
    parser.add_argument("--model-path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["unsloth", "trl"], default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(run_backend(args.worker, args.model_path, args.steps,
                                                 args.smoke)), flush=True)
        return 0

    import torch

    smoke = args.smoke or not torch.cuda.is_available()
    if smoke and not args.smoke:
        print("No CUDA GPU: running the smoke path (tiny random Qwen2 on CPU, plain TRL + PEFT).\n"
              "NOT MEASURED here: Unsloth vs TRL+PEFT step time, generated tokens/s and peak VRAM "
              "of the T4 preset on the Qwen2.5-3B architecture. Run this script on a GPU.")
    backends = ["trl"] if smoke else (["unsloth", "trl"] if args.backend == "both"
                                      else [args.backend])
    with tempfile.TemporaryDirectory() as tmp:
        model_path = "" if smoke else str(build_random_qwen25_3b(Path(tmp) / "qwen25-3b-random"))
        if not smoke:
            torch.cuda.empty_cache()
        results = [in_subprocess(b, model_path, args.steps, smoke) for b in backends]
    print_table(results)
    print(json.dumps(results, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
