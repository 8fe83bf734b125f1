"""``python -m utils.train``: GRPO on GSM8K from the command line, the same code as notebook 04.

Examples::

    python -m utils.train --mode smoke --max-steps 4 --output-dir runs/smoke
    python -m utils.train --mode cpu --preset cpu --max-steps 30 --output-dir runs/cpu
    python -m utils.train --mode gpu --preset t4 --output-dir runs/t4 --resume --merged --gguf
    accelerate launch --config_file configs/ddp.yaml -m utils.train --mode gpu --preset a100 ...

Writes ``DIR/log_history.json`` (after every logging step), ``DIR/checkpoint-N/`` (every
``save_steps``) and, at the end, ``DIR/adapter/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from utils.rewards import REWARD_FUNCTIONS
from utils.runtime import MODES
from utils.training import PRESETS


def parse_reward_weights(items: Sequence[str] | None) -> dict[str, float] | None:
    """``["accuracy=1", "tag_count=0.5"]`` -> ``{"accuracy": 1.0, "tag_count": 0.5}``."""
    if not items:
        return None
    weights = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in REWARD_FUNCTIONS:
            raise ValueError(
                f"--reward-weight takes NAME=WEIGHT with NAME in {sorted(REWARD_FUNCTIONS)}; "
                f"got {item!r}")
        weights[name] = float(value)
    return weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.train",
        description="GRPO training of a LoRA adapter on GSM8K with the course's rewards "
                    "(TRL GRPOTrainer; Unsloth on the GPU path).",
        epilog="Writes DIR/log_history.json, DIR/checkpoint-N/ and DIR/adapter/. "
               "Multi-GPU: see docs/scaling.md (accelerate launch, DeepSpeed, trl vllm-serve).",
    )
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="gpu (Unsloth, Qwen2.5-3B-Instruct 4-bit), cpu (SmolLM2-135M) or "
                             "smoke (tiny random Qwen2, seconds). Default: $WORKSHOP_MODE, else "
                             "gpu when CUDA is present, else cpu.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="hardware preset (default: t4/l4/a100 by GPU memory in gpu mode, "
                             "else the mode's own)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="optimizer steps of the whole run (default: the preset's)")
    parser.add_argument("--output-dir", required=True,
                        help="where checkpoints, log_history.json and adapter/ go")
    parser.add_argument("--model", default=None,
                        help="Hub id or local path replacing the mode's default model "
                             "(e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --output-dir")
    parser.add_argument("--num-prompts", type=int, default=None,
                        help="GSM8K train questions to sample from (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="override the preset's learning rate")
    parser.add_argument("--max-completion-length", type=int, default=None,
                        help="override the preset's completion length in tokens")
    parser.add_argument("--save-steps", type=int, default=None,
                        help="override the preset's checkpoint interval")
    parser.add_argument("--reward-weight", action="append", metavar="NAME=WEIGHT",
                        help="reward weight, repeatable (names: "
                             f"{', '.join(REWARD_FUNCTIONS)}); names not given weigh 0. "
                             "Default: the preset's weights")
    parser.add_argument("--no-vllm", action="store_true",
                        help="gpu mode: generate with HF generate instead of vLLM")
    parser.add_argument("--vllm-server", metavar="URL", default=None,
                        help="generate on a `trl vllm-serve` server at URL (e.g. "
                             "http://localhost:8000) instead of in this process; see "
                             "docs/scaling.md")
    parser.add_argument("--merged", action="store_true",
                        help="also save a merged 16-bit model to DIR/merged")
    parser.add_argument("--gguf", action="store_true",
                        help="also export GGUF (q4_k_m) to DIR/gguf (gpu mode only)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop after this many minutes of training, with a checkpoint "
                             "(resume later with --resume)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice). On a busy machine "
                             "1 can be several times faster than oversubscribed threads")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--backend", choices=["unsloth", "peft"], default=None,
                        help="gpu mode: Unsloth (default on one GPU) or plain transformers + "
                             "bitsandbytes + PEFT (default under a multi-process launcher)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        reward_weights = parse_reward_weights(args.reward_weight)
    except ValueError as error:
        parser.error(str(error))
    # Imported here so that `--help` answers in a second, without torch.
    from utils.models import import_unsloth_first, load_policy
    from utils.runtime import get_mode, seed_everything

    import_unsloth_first(args.mode, args.backend)  # before utils.training imports transformers
    from utils.training import (
        TimeLimit,
        get_preset,
        preset_prompts,
        print_preset,
        save_adapter,
        save_gguf,
        save_merged,
        train,
    )

    mode = get_mode(args.mode)
    if args.gguf and mode != "gpu":
        raise SystemExit("--gguf needs --mode gpu (Unsloth builds llama.cpp to quantize)")
    overrides = {key: value for key, value in {
        "learning_rate": args.learning_rate,
        "max_completion_length": args.max_completion_length,
        "save_steps": args.save_steps,
        "num_prompts": args.num_prompts,
        "reward_weights": reward_weights,
        "vllm_server_url": args.vllm_server,
    }.items() if value is not None}
    preset = get_preset(args.preset, mode=mode, **overrides)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print_preset(preset)
    seed_everything(args.seed)
    model, tokenizer = load_policy(mode, model_name=args.model, lora=preset.lora,
                                   max_seq_length=preset.max_seq_length,
                                   use_vllm=preset.use_vllm and not args.no_vllm
                                   and not args.vllm_server,
                                   gpu_memory_utilization=preset.gpu_memory_utilization,
                                   seed=args.seed, backend=args.backend)
    dataset = preset_prompts(tokenizer, preset, seed=args.seed)
    print(f"{len(dataset)} {preset.task} train prompts fit in {preset.max_prompt_length} tokens")
    start = time.perf_counter()
    result = train(model, tokenizer, preset, dataset, args.output_dir, mode=mode,
                   max_steps=args.max_steps, resume=args.resume, seed=args.seed,
                   callbacks=[TimeLimit(args.max_minutes)] if args.max_minutes else [])
    if not result.trainer.is_world_process_zero():
        return 0
    adapter = save_adapter(result.trainer.model, tokenizer, args.output_dir)
    rewards = [row["reward"] for row in result.log_history if "reward" in row]
    summary = {
        "mode": mode, "preset": preset.name, "steps": result.trainer.state.global_step,
        "resumed_from": result.resumed_from, "seconds": round(time.perf_counter() - start, 1),
        "reward_first_10": _mean(rewards[:10]), "reward_last_10": _mean(rewards[-10:]),
        "adapter": str(adapter),
    }
    if args.merged:
        summary["merged"] = str(save_merged(result.trainer.model, tokenizer, args.output_dir,
                                            mode=mode, model_name=args.model))
    if args.gguf:
        summary["gguf"] = str(save_gguf(result.trainer.model, tokenizer, args.output_dir,
                                        mode=mode))
    print(json.dumps(summary, indent=1))
    return 0


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


if __name__ == "__main__":
    sys.exit(main())
