"""TRL GRPO step time on a CPU: HF ``generate`` against the course's lean sampler.

Notebook 04's section 7 runs TRL's ``GRPOTrainer`` with the cpu preset (4 questions x 8 answers
of up to 40 tokens a step, LoRA r32 on SmolLM2-135M). On a CPU most of a step is sampling; with
``rollout_func=utils.training.lean_rollout(...)`` TRL samples with
:class:`utils.sampling.LeanSampler` (bf16 where native), as it samples with vLLM on a GPU. This
script runs a few steps of each, one after the other in one process, from the cpu-demo's cold
start when it exists (real answer lengths), and prints the mean step and sampling seconds.

    python benchmarks/trl_cpu_step.py              # cpu preset, 3 steps each
    python benchmarks/trl_cpu_step.py --smoke      # tiny model: checks the script runs

The first step of each run is left out of the mean (warm-up). Timings on a shared machine are
noise: compare the two rows of one run, on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(mode: str, lean: bool, steps: int, adapter: Path | None) -> dict:
    from utils.models import load_policy
    from utils.training import build_trainer, get_preset, preset_prompts

    preset = replace(get_preset(mode), lean_sampler=lean)
    if mode == "smoke":
        preset = replace(preset, beta=0.0)
    model, tokenizer = (load_policy(mode, adapter=adapter) if adapter
                        else load_policy(mode, lora=preset.lora))
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(model, tokenizer, preset, preset_prompts(tokenizer, preset),
                                out, mode=mode, max_steps=steps)
        sampling = []
        generate = trainer._generate

        def timed(prompts):
            start = time.perf_counter()
            result = generate(prompts)
            sampling.append(time.perf_counter() - start)
            return result

        trainer._generate = timed
        trainer.log_completions = False  # no completion tables in the timing output
        trainer.train()
        step_times = [row["step_time"] for row in trainer.state.log_history if "step_time" in row]
        lengths = [row["completions/mean_length"] for row in trainer.state.log_history
                   if "completions/mean_length" in row]
    keep = slice(1, None) if steps > 1 else slice(None)
    return {"sampler": "lean (LeanSampler)" if lean else "HF generate",
            "step": sum(step_times[keep]) / len(step_times[keep]),
            "sampling": sum(sampling[keep]) / len(sampling[keep]),
            "length": sum(lengths[keep]) / len(lengths[keep])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch

    from utils.sampling import native_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    mode = "smoke" if args.smoke else "cpu"
    adapter = Path("runs/cpu-demo/cold_start_adapter")
    adapter = adapter if mode == "cpu" and adapter.is_dir() else None
    print(f"mode {mode}, {torch.get_num_threads()} threads, native bf16: {native_bf16()}, "
          f"start: {adapter or 'a fresh LoRA'}")
    rows = [run(mode, lean, args.steps, adapter) for lean in (False, True)]
    print("| sampler | s a step | of which sampling | mean completion tokens |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['sampler']} | {row['step']:.1f} | {row['sampling']:.1f} | "
              f"{row['length']:.1f} |")
    print(f"lean / HF step time: {rows[1]['step'] / rows[0]['step']:.2f}")


if __name__ == "__main__":
    main()
