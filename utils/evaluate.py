"""Command line for the GSM8K evaluation: ``python -m utils.evaluate``.

Evaluate (resumes when DIR already holds an unfinished run with the same settings)::

    python -m utils.evaluate --mode cpu --adapter runs/cpu/adapter --output-dir runs/eval_cpu
    python -m utils.evaluate --mode gpu --samples 8 --temperature 0.8 --output-dir runs/gpu_maj8

Compare two finished runs on the same questions (paired test)::

    python -m utils.evaluate --compare runs/eval_base runs/eval_trained
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from utils.runtime import MODES, get_mode

SUMMARY_KEYS = ("accuracy_strict", "accuracy_lenient", "maj_at_k", "pass_at_k")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.evaluate",
        description="GSM8K accuracy (strict and lenient) with 95% intervals; or --compare two "
                    "runs with a paired test.")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="gpu (vLLM), cpu (SmolLM2) or smoke; default: $WORKSHOP_MODE")
    parser.add_argument("--model", default=None, help="model id or path (default: the mode's)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter directory from training")
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--n-questions", type=int, default=None,
                        help="random subset size (default: gpu all 1319, cpu 64, smoke 4)")
    parser.add_argument("--samples", type=int, default=1, help="samples per question (k)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="0 = greedy (default for 1 sample); default 0.8 for k > 1")
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="questions per generation batch (and per resumable chunk)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output-dir", default=None, help="where samples.jsonl and summary.json go")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an existing run in --output-dir instead of resuming it")
    parser.add_argument("--compare", nargs=2, metavar=("DIR_A", "DIR_B"), default=None,
                        help="print the paired comparison of two finished runs (B - A)")
    parser.add_argument("--metric", default="correct_strict",
                        choices=("correct_strict", "correct_lenient"),
                        help="what --compare compares")
    return parser


def print_summary(summary: dict) -> None:
    """The headline numbers of a run, each with its Wilson 95% interval."""
    print(f"{summary['n_questions']} questions x {summary['samples_per_question']} sample(s)")
    for key in SUMMARY_KEYS:
        if key in summary:
            low, high = summary["ci95"][key]
            print(f"  {key:<17} {summary[key]:6.1%}   95% CI [{low:.1%}, {high:.1%}]")
    print(f"  {'format_rate':<17} {summary['format_rate']:6.1%}")
    print(f"  {'truncation_rate':<17} {summary['truncation_rate']:6.1%}")
    print(f"  length (tokens)   mean {summary['length_mean']:.0f}, "
          f"median {summary['length_median']:.0f}")
    print(f"  errors            {json.dumps(summary['errors'])}")


def main(argv: Sequence[str] | None = None) -> int:
    from utils import evaluation

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.compare:
        dir_a, dir_b = args.compare
        result = evaluation.compare_runs(evaluation.read_samples(dir_a),
                                         evaluation.read_samples(dir_b), metric=args.metric)
        print(evaluation.format_comparison(result, dir_a, dir_b))
        return 0
    if args.output_dir is None:
        parser.error("--output-dir is required (or use --compare DIR_A DIR_B)")
    try:  # bad settings and a resume with different settings: a message, not a traceback
        config = evaluation.make_config(
            get_mode(args.mode), samples=args.samples, temperature=args.temperature,
            model=args.model, adapter=args.adapter, split=args.split,
            n_questions=args.n_questions, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size, seed=args.seed)
        summary = evaluation.run_evaluation(config, args.output_dir, overwrite=args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    print_summary(summary)
    print(f"wrote {args.output_dir}/samples.jsonl and {args.output_dir}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
