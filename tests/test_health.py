"""Health tables and plots that fit the preset, and TRL's completion table kept short."""

import matplotlib

matplotlib.use("Agg")

import pytest

from utils import health
from utils.training import PRESETS


def rows(name):
    return {plot: (healthy, fix) for plot, healthy, fix in health.health_table(PRESETS[name])}


def test_health_table_fits_one_question_per_step():
    t4 = rows("t4")
    assert PRESETS["t4"].prompts_per_step == 1
    assert "0 or 1" in t4["reward std / zero-std groups"][0]
    assert "not logged: beta = 0" in t4["KL to the start"][0]
    assert "0 by construction" in t4["policy clip ratios"][0]


def test_health_table_for_several_questions_and_a_kl_term():
    assert PRESETS["a100"].prompts_per_step == 4
    assert "4 groups" in rows("a100")["reward std / zero-std groups"][0]
    assert PRESETS["smoke"].beta > 0
    assert "< ~0.1" in rows("smoke")["KL to the start"][0]


def test_stalled_fraction():
    history = [{"step": s, "reward": 0.0, "frac_reward_zero_std": v}
               for s, v in enumerate([1.0, 0.0, 0.75, 0.5], start=1)]
    assert health.stalled_fraction(history) == 0.5
    with pytest.raises(ValueError, match="frac_reward_zero_std"):
        health.stalled_fraction([{"step": 1, "reward": 0.0}])


def test_plot_health_has_integer_step_ticks_and_says_what_lines_are():
    history = [{"step": s, "reward": s / 4, "frac_reward_zero_std": 0.0} for s in (1, 2, 3)]
    fig = health.plot_health(history, window=5)
    assert "thin: value at each step; thick: moving average over 5 steps" in fig._suptitle.get_text()
    ticks = fig.axes[1].get_xticks()
    assert all(float(t).is_integer() for t in ticks)


def test_compact_completion_log_replaces_trl_table_and_restores_it(capsys):
    import trl.trainer.grpo_trainer as grpo_module

    original = grpo_module.print_prompt_completions_sample
    completions = [[{"role": "assistant", "content": "<think>\nlong reasoning " * 20}],
                   [{"role": "assistant", "content": "short"}]]
    with health.compact_completion_log(every=10, width=40):
        printer = grpo_module.print_prompt_completions_sample
        assert printer is not original
        printer(["p", "p"], completions, {"accuracy": [1.0, 0.0], "tag": [0.25, None]},
                [0.5, -0.5], 10)
        printer(["p"], completions[:1], {"accuracy": [1.0]}, [0.0], 11)  # not a printed step
    assert grpo_module.print_prompt_completions_sample is original
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step   10 best  reward  1.25  advantage +0.50")
    assert lines[1].startswith("step   10 worst reward  0.00  advantage -0.50")
    assert all(len(line) < 120 for line in lines)


def test_compact_completion_log_also_patches_modules_that_imported_the_printer(capsys):
    """Unsloth's compiled GRPOTrainer module imports TRL's printer by name."""
    import types

    import trl.trainer.grpo_trainer as grpo_module

    original = grpo_module.print_prompt_completions_sample
    compiled = types.ModuleType("unsloth_compiled_grpo_for_test")
    compiled.print_prompt_completions_sample = original
    import sys

    sys.modules[compiled.__name__] = compiled
    try:
        with health.compact_completion_log(every=1):
            assert compiled.print_prompt_completions_sample is not original
        assert compiled.print_prompt_completions_sample is original
    finally:
        del sys.modules[compiled.__name__]
