"""Search the cpu-demo's GRPO recipe on the dev split, from one saved cold start.

Every candidate starts from the same cold-start adapter (``make cpu-demo``'s first stages, run
once with ``eval_split=dev``), so a candidate costs only its GRPO steps and its evaluations, and
candidates differ in nothing but their GRPO knobs. It never touches the test split: the recipe
chosen here is then run once by ``python -m utils.cpu_demo`` on the 200 reported problems.

    python -m utils.cpu_demo --skip-grpo --set eval_split=dev --output-dir runs/search/cold0
    python scripts/recipe_search.py NAME [knob=value ...]   # e.g. learning_rate=5e-5

Writes ``runs/search/NAME/result.json`` and appends one line to ``runs/search/summary.tsv``:
dev accuracy at each checkpoint (the first ``checkpoint_n`` dev problems) and at the end (all
``eval_n``), against the cold start on the same problems, with McNemar's paired p-value.
What it leaves out on purpose: no cold-start knobs (they would need their own cold start).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import cpu_demo
from utils.stats import mcnemar_exact

COLD = Path("runs/search/cold0")


def main(argv: list[str]) -> None:
    name, knobs = argv[0], argv[1:]
    recipe = cpu_demo.with_knobs(
        replace(cpu_demo.RECIPES["cpu"], eval_split="dev", checkpoint_n=100), knobs)
    if not (COLD / "cold_start_adapter").is_dir():
        raise SystemExit(f"no dev cold start in {COLD}: run `python -m utils.cpu_demo "
                         f"--skip-grpo --set eval_split=dev --output-dir {COLD}` first")
    cold_result = json.loads((COLD / "result.json").read_text())
    if cold_result["recipe"]["eval_split"] != "dev":
        raise SystemExit(f"{COLD} is not a dev-split cold start")
    torch.manual_seed(recipe.seed)
    from peft import PeftModel

    base, tokenizer = cpu_demo.load_model("cpu", replace(recipe, lora_rank=None))
    model = PeftModel.from_pretrained(base, str(COLD / "cold_start_adapter"), is_trainable=True)
    held_out, _, grpo_rows = cpu_demo.problems(recipe)
    cold = cold_result["after_cold_start"]["correct"][:len(held_out)]
    out = Path("runs/search") / name
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    curve = cpu_demo.grpo_train(model, tokenizer, grpo_rows, recipe, out,
                                held_out[:recipe.checkpoint_n])
    after = cpu_demo.evaluate(model, tokenizer, held_out, recipe)
    minutes = (time.perf_counter() - started) / 60
    test = mcnemar_exact(cold, after["correct"])
    n_check = recipe.checkpoint_n
    checks = [f"{c['step'] + 1}:{round(c['heldout_accuracy'] * n_check)}" for c in curve
              if "heldout_accuracy" in c]
    line = (f"{name}\t{' '.join(knobs) or '(shipped)'}\tcold {sum(cold[:n_check])}/{n_check} "
            f"-> {' '.join(checks)}\tend {sum(cold)}/{len(cold)} -> "
            f"{sum(after['correct'])}/{len(cold)} (+{test.only_b}/-{test.only_a}, "
            f"p={test.p_value:.2g})\t{minutes:.1f} min GRPO, {torch.get_num_threads()} threads")
    (out / "result.json").write_text(json.dumps(
        {"recipe": asdict(recipe), "knobs": knobs, "curve": curve, "after": after,
         "cold": cold, "line": line}, indent=1))
    with open("runs/search/summary.tsv", "a") as f:
        f.write(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
