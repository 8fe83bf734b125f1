"""GRPO training in smoke mode: presets, data filter, the CPU log-prob head, a run, resume, saving."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from utils.health import first_last_mean, metric, plot_health, reward_names, sampled_completions
from utils.models import load_policy
from utils.prompts import SYSTEM_PROMPT
from utils.rewards import DEFAULT_WEIGHTS, soft_format_reward, tag_count_reward
from utils.tasks import load_task
from utils.training import (
    FORMAT_HEAVY_WEIGHTS,
    PRESETS,
    THINK_PREFILL,
    StopAtStep,
    _torch_chunked_logprobs,
    answer,
    build_trainer,
    ensure_logprob_kernel,
    get_preset,
    grpo_config,
    last_checkpoint,
    lean_rollout,
    prefill_think,
    preset_prompts,
    preset_table,
    prompt_length,
    read_log_history,
    reward_hack_preset,
    run_time,
    save_adapter,
    save_merged,
    train,
    train_prompts,
    with_prefix,
)

SMOKE = get_preset("smoke")


@pytest.fixture(scope="module")
def policy():
    return load_policy("smoke", lora=SMOKE.lora, max_seq_length=SMOKE.max_seq_length)


@pytest.fixture(scope="module")
def prompts(policy):
    _, tokenizer = policy
    return train_prompts(tokenizer, SMOKE.max_prompt_length, n=SMOKE.num_prompts)


@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory, prompts):
    """A smoke run of 4 steps stopped after step 2 (a 'disconnect'), then resumed to step 4."""
    out = tmp_path_factory.mktemp("resume")
    model, tokenizer = load_policy("smoke", lora=SMOKE.lora)
    first = train(model, tokenizer, SMOKE, prompts, out, mode="smoke", max_steps=4,
                  callbacks=[StopAtStep(2)])
    history_at_stop = read_log_history(out)
    checkpoint_at_stop = last_checkpoint(out)
    model, tokenizer = load_policy("smoke", lora=SMOKE.lora)  # a fresh process after the crash
    second = train(model, tokenizer, SMOKE, prompts, out, mode="smoke", max_steps=4, resume=True)
    return out, first, history_at_stop, checkpoint_at_stop, second


# ------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_whole_groups_on_1_to_8_processes(name):
    preset = PRESETS[name]
    for processes in (1, 2, 4, 8):
        generation_batch = (preset.per_device_train_batch_size * processes
                            * preset.gradient_accumulation_steps)
        assert generation_batch % preset.num_generations == 0
    assert preset.prompts_per_step >= 1
    assert preset.num_generations >= 2


def test_t4_preset_fits_a_t4():
    t4 = PRESETS["t4"]
    assert t4.precision == "fp16"  # a T4 has no bf16
    assert t4.gradient_checkpointing and t4.optim == "paged_adamw_8bit"
    assert t4.max_seq_length <= 1024


def test_run_time_is_steps_times_the_step_estimate():
    """Every GPU time in the notebooks comes from run_time (scripts/sync_links.py renders it)."""
    t4 = PRESETS["t4"]
    assert t4.step_seconds == (40, 90)
    text = run_time(t4)  # 250 x 40 s = 2.78 h, 250 x 90 s = 6.25 h; a checkpoint per 10 steps
    assert text.startswith("250 steps x 40-90 s a step = 2.8-6.2 h (an estimate)")
    assert text.endswith("a checkpoint every 10 steps, so a disconnect costs at most 7-15 min")
    assert run_time(t4, 30).startswith("30 steps x 40-90 s a step = 20-45 min")
    assert all(PRESETS[name].step_seconds for name in ("t4", "l4", "a100"))
    assert "no estimate" in run_time(PRESETS["cpu"])  # the cpu times are measured, not guessed


def test_get_preset_overrides_and_rejects_bad_input():
    assert get_preset("cpu", learning_rate=3e-5).learning_rate == 3e-5
    assert get_preset("cpu", learning_rate=3e-5).num_generations == PRESETS["cpu"].num_generations
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("v100")
    with pytest.raises(ValueError, match="unknown preset field"):
        get_preset("cpu", batch=3)
    with pytest.raises(ValueError, match="multiple of num_generations"):
        get_preset("cpu", num_generations=3)
    assert get_preset(mode="smoke").name == "smoke"


def test_preset_table_explains_every_knob():
    rows = preset_table(PRESETS["t4"])
    knobs = [knob for knob, _, _ in rows]
    assert {"num_generations", "max_completion_length", "learning_rate", "loss_type", "beta",
            "precision", "optim", "save_steps"} <= set(knobs)
    assert all(note for _, _, note in rows)


def _format_and_accuracy(weights):
    weights = weights or DEFAULT_WEIGHTS
    return sum(w for name, w in weights.items() if name != "accuracy"), weights["accuracy"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_follows_notebook_3s_rule(name):
    """Accuracy dominates: the format rewards together weigh less (else looking right pays)."""
    format_total, accuracy = _format_and_accuracy(PRESETS[name].reward_weights)
    assert format_total < accuracy


def test_the_reward_hack_demo_breaks_the_rule_on_gsm8k():
    for name in ("cpu", "smoke"):
        hack = reward_hack_preset(PRESETS[name])
        format_total, accuracy = _format_and_accuracy(hack.reward_weights)
        assert format_total > accuracy and hack.reward_weights == FORMAT_HEAVY_WEIGHTS
        assert hack.task == "gsm8k" and hack.think_prefill
        assert hack.max_steps < PRESETS["cpu"].max_steps  # a short demonstration
        assert get_preset(name, **{k: getattr(hack, k) for k in (
            "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps")})
    assert reward_hack_preset(PRESETS["cpu"]).lora == PRESETS["cpu"].lora
    assert PRESETS["cpu"].reward_weights != FORMAT_HEAVY_WEIGHTS  # the main run is not the hack


def test_cpu_config_is_fp32_without_checkpointing(tmp_path):
    config = grpo_config(PRESETS["cpu"], tmp_path, mode="cpu")
    assert config.bf16 is False and config.fp16 is False
    assert config.use_cpu and not config.gradient_checkpointing
    assert config.num_generations == PRESETS["cpu"].num_generations
    assert config.generation_batch_size % config.num_generations == 0
    assert config.report_to == [] or config.report_to == "none" or config.report_to == ["none"]


# --------------------------------------------------------------------------------------- data
def test_train_prompts_drops_only_prompts_over_the_limit(policy):
    _, tokenizer = policy
    all_rows = train_prompts(tokenizer, 10_000, n=40)
    lengths = sorted(prompt_length(tokenizer, p) for p in all_rows["prompt"])
    limit = lengths[len(lengths) // 2]
    kept = train_prompts(tokenizer, limit, n=40)
    assert 0 < len(kept) < len(all_rows)
    assert len(kept) == sum(length <= limit for length in lengths)
    assert all(prompt_length(tokenizer, p) <= limit for p in kept["prompt"])
    assert {"prompt", "answer"} <= set(kept.column_names)
    with pytest.raises(ValueError, match="no GSM8K prompt fits"):
        train_prompts(tokenizer, 5, n=10)


def test_think_prefill_prompts_end_in_an_open_think_tag(policy):
    _, tokenizer = policy
    rows = train_prompts(tokenizer, 10_000, n=5, think_prefill=True)
    for prompt, question in zip(rows["prompt"], rows["question"]):
        assert isinstance(prompt, str) and prompt.endswith("<think>\n")
        assert question.strip() in prompt
        assert prompt.count("<think>") == SYSTEM_PROMPT.count("<think>") + 1
    messages = train_prompts(tokenizer, 10_000, n=1)["prompt"][0]
    assert prefill_think(tokenizer, messages) == rows["prompt"][0]
    assert prompt_length(tokenizer, rows["prompt"][0]) > prompt_length(tokenizer, messages)


def test_preset_prompts_follow_the_presets_task(policy):
    _, tokenizer = policy
    one_step = get_preset("smoke", task="one_step", num_prompts=12)
    rows = preset_prompts(tokenizer, one_step, seed=3)
    expected = load_task("one_step", "train", n=12, seed=3)
    assert rows["question"] == [row["question"] for row in expected]
    assert rows["answer"] == [row["answer"] for row in expected]
    assert all(isinstance(p, list) and p[-1]["content"] == q
               for p, q in zip(rows["prompt"], rows["question"]))
    prefilled = preset_prompts(tokenizer, replace(one_step, think_prefill=True), seed=3)
    assert all(p.endswith(THINK_PREFILL) for p in prefilled["prompt"])
    gsm8k = get_preset("smoke", task="gsm8k", num_prompts=5)
    assert preset_prompts(tokenizer, gsm8k)["question"] == train_prompts(
        tokenizer, gsm8k.max_prompt_length, n=5)["question"]
    with pytest.raises(ValueError, match="no one_step prompt fits"):
        preset_prompts(tokenizer, replace(one_step, max_prompt_length=5))
    with pytest.raises(ValueError, match="unknown rung"):
        preset_prompts(tokenizer, replace(one_step, task="gsm9k"))


def test_rewards_see_the_prefilled_tag():
    completion = "2 + 3 = 5\n</think>\n<answer>\n5\n</answer>"
    assert soft_format_reward([completion]) == [0.0]  # no <think> in the completion itself
    prefixed = with_prefix(soft_format_reward, THINK_PREFILL)
    assert prefixed([completion]) == [1.0]
    assert prefixed.__name__ == "soft_format_reward"  # TRL logs rewards/<name>/mean
    assert with_prefix(tag_count_reward, THINK_PREFILL)([completion, "rambling"]) == [1.0, 0.25]


def test_vllm_server_url_switches_trl_to_server_mode(tmp_path):
    preset = get_preset("cpu", vllm_server_url="http://10.0.0.2:8000")
    config = grpo_config(preset, tmp_path, mode="cpu")
    assert config.use_vllm and config.vllm_mode == "server"
    assert config.vllm_server_base_url == "http://10.0.0.2:8000"
    assert not grpo_config(PRESETS["cpu"], tmp_path, mode="cpu").use_vllm


# ----------------------------------------------------------------------- CPU log-prob head
def test_torch_logprob_head_matches_log_softmax_and_has_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(7, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (7,))
    logprobs, entropy, _, _, is_top1 = _torch_chunked_logprobs(
        hidden, weight, None, targets, 0.7, 4096, None, 1.0, ("entropy", "is_top1"))
    reference = torch.log_softmax(hidden @ weight.T / 0.7, dim=-1)
    assert torch.allclose(logprobs, reference.gather(1, targets[:, None]).squeeze(1), atol=1e-5)
    probs = reference.exp()
    assert torch.allclose(entropy, -(probs * reference).sum(-1), atol=1e-5)
    assert torch.equal(is_top1, reference.argmax(-1) == targets)
    logprobs.sum().backward()
    assert hidden.grad is not None and weight.grad.abs().sum() > 0


def test_logprob_kernel_is_available_after_ensure():
    import trl.trainer.utils as trl_utils

    ensure_logprob_kernel()
    assert trl_utils._ChunkedLogProbFunction is not None


# ------------------------------------------------------------------------- training + resume
def test_interrupted_run_resumes_to_the_target_step(interrupted_then_resumed):
    out, first, history_at_stop, checkpoint_at_stop, second = interrupted_then_resumed
    assert first.trainer.state.global_step == 2
    assert checkpoint_at_stop.endswith("checkpoint-2")
    assert [row["step"] for row in history_at_stop if "reward" in row] == [1, 2]
    assert second.resumed_from.endswith("checkpoint-2")
    assert second.trainer.state.global_step == 4
    steps = [row["step"] for row in read_log_history(out) if "reward" in row]
    assert steps == [1, 2, 3, 4]  # the log continues, nothing repeated or lost
    on_disk = json.loads((out / "log_history.json").read_text())
    assert on_disk == second.log_history


def test_logged_metrics_cover_the_health_plots(interrupted_then_resumed):
    history = interrupted_then_resumed[4].log_history
    for key in ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length",
                "completions/clipped_ratio", "entropy", "kl", "clip_ratio/region_mean"):
        steps, values = metric(history, key)
        assert steps == [1, 2, 3, 4], key
        assert all(isinstance(v, float) for v in values), key
    assert set(reward_names(history)) == {"accuracy_reward", "strict_format_reward",
                                          "tag_count_reward"}
    rewards = metric(history, "reward")[1]
    assert first_last_mean(history, "reward", k=2) == pytest.approx(
        (sum(rewards[:2]) / 2, sum(rewards[2:]) / 2))
    fig = plot_health(history)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 8


def test_sampled_completions_are_read_back(interrupted_then_resumed):
    out = interrupted_then_resumed[0]
    table = sampled_completions(out, every=2, per_step=1)
    assert sorted(table["step"].unique()) == [1, 2, 4]
    assert table["completion"].map(lambda text: isinstance(text, str)).all()


def test_training_moves_the_lora_weights_and_saves_them(interrupted_then_resumed, tmp_path):
    trainer = interrupted_then_resumed[4].trainer
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # lora_B starts at exactly 0
    adapter = save_adapter(trainer.model, trainer.processing_class, tmp_path)
    assert (adapter / "adapter_config.json").is_file()
    assert not (adapter / "ref").exists()  # TRL's frozen KL reference copy is not saved
    merged = save_merged(trainer.model, trainer.processing_class, tmp_path, mode="smoke")
    assert (merged / "config.json").is_file()
    text = answer(trainer.model, trainer.processing_class, "What is 2 + 3?", max_new_tokens=4)
    assert isinstance(text, str)


def test_a_run_continues_from_a_saved_adapter(tmp_path):
    """Notebook 04's cpu path: TRL starts from a saved cold start, on a rung of utils.tasks."""
    cold, tokenizer = load_policy("smoke", lora=SMOKE.lora)
    for name, param in cold.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    cold.save_pretrained(tmp_path / "cold_start")
    start = {n: p.detach().clone() for n, p in cold.named_parameters() if "lora_" in n}
    model, tokenizer = load_policy("smoke", adapter=tmp_path / "cold_start")
    preset = get_preset("smoke", task="one_step")
    result = train(model, tokenizer, preset, preset_prompts(tokenizer, preset),
                   tmp_path / "run", mode="smoke", max_steps=1)
    assert [row["step"] for row in result.log_history if "reward" in row] == [1]
    moved = {n: p for n, p in result.trainer.model.named_parameters() if n in start}
    assert moved.keys() == start.keys()
    assert any(not torch.equal(moved[n], start[n]) for n in start)  # it trained
    # it trained from the adapter, not from a fresh LoRA (whose B would start at 0)
    assert all((moved[n] - start[n]).abs().max() < 0.05 for n in start if "lora_B" in n)


def test_a_prefilled_run_trains_on_text_prompts(tmp_path, prompts):
    preset = get_preset("smoke", think_prefill=True, reward_weights={"tag_count": 1.0})
    model, tokenizer = load_policy("smoke", lora=preset.lora)
    rows = train_prompts(tokenizer, preset.max_prompt_length, n=8, think_prefill=True)
    result = train(model, tokenizer, preset, rows, tmp_path, mode="smoke", max_steps=1)
    assert [row["step"] for row in result.log_history if "reward" in row] == [1]
    table = sampled_completions(tmp_path, every=1, per_step=8)
    assert len(table) == preset.per_device_train_batch_size
    assert table["completion"].map(lambda text: isinstance(text, str)).all()
    # TRL scored each completion with the prefilled "<think>\n" in front of it
    expected = tag_count_reward([THINK_PREFILL + text for text in table["completion"]])
    assert table["tag_count_reward"].tolist() == pytest.approx(expected)


def test_lean_rollout_gives_trl_one_completion_per_entry_from_the_policy(policy, prompts):
    """TRL's rollout_func contract: one completion per (repeated) prompt, the sampler's log-probs
    beside it; in fp32 those log-probs are the policy's own (no off-policy gap)."""
    from types import SimpleNamespace

    from utils.grpo_scratch import pad_rows, token_logprobs

    model, tokenizer = policy
    preset = replace(SMOKE, num_generations=3, max_completion_length=5, temperature=1.0)
    entries = [prompts[i]["prompt"] for i in range(2) for _ in range(3)]
    out = lean_rollout(preset, precision="fp32")(entries, SimpleNamespace(
        processing_class=tokenizer, model=model))
    assert len(out["prompt_ids"]) == len(out["completion_ids"]) == len(out["logprobs"]) == 6
    assert out["prompt_ids"][0] == out["prompt_ids"][2] != out["prompt_ids"][3]
    assert all(0 < len(c) <= 5 and len(c) == len(lp)
               for c, lp in zip(out["completion_ids"], out["logprobs"]))
    prompt_ids, prompt_mask = pad_rows(out["prompt_ids"], 0, left=True)
    completion_ids, completion_mask = pad_rows(out["completion_ids"], 0, left=False)
    with torch.no_grad():
        trainer_logp = token_logprobs(model, prompt_ids, prompt_mask, completion_ids,
                                      completion_mask)
    sampler_logp = pad_rows(out["logprobs"], 0.0, left=False)[0]
    assert torch.allclose(trainer_logp * completion_mask, sampler_logp, atol=1e-4)
    # entries not laid out in groups get one sample each
    single = lean_rollout(preset, precision="fp32")(entries[:4:3] + entries[:1], SimpleNamespace(
        processing_class=tokenizer, model=model))
    assert len(single["completion_ids"]) == 3


def test_cpu_presets_sample_through_the_lean_rollout(tmp_path, prompts):
    assert PRESETS["cpu"].lean_sampler and not PRESETS["t4"].lean_sampler
    for lean in (True, False):
        model, tokenizer = load_policy("smoke", lora=SMOKE.lora)
        trainer = build_trainer(model, tokenizer, replace(SMOKE, lean_sampler=lean), prompts,
                                tmp_path, mode="smoke")
        assert (trainer.rollout_func is not None) == lean


def test_trl_trains_on_the_lean_samplers_completions(tmp_path, prompts, monkeypatch):
    """A TRL run with the lean rollout: TRL scores and trains on what the sampler wrote. A
    length reward gives the tiny random model's groups spread (its answers are gibberish)."""
    from utils import rewards

    seen = []

    def length_reward(completions, **kwargs):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]  # chat
        seen.extend(texts)
        return [float(len(text)) for text in texts]

    monkeypatch.setitem(rewards.REWARD_FUNCTIONS, "length", length_reward)
    preset = replace(SMOKE, lean_sampler=True, beta=0.0)
    model, tokenizer = load_policy("smoke", lora=SMOKE.lora)
    start = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    result = train(model, tokenizer, preset, prompts, tmp_path, mode="smoke", max_steps=1,
                   reward_weights={"length": 1.0})
    assert result.trainer.rollout_func is not None
    assert len(seen) == preset.per_device_train_batch_size * preset.gradient_accumulation_steps
    logged = next(row for row in result.log_history if "reward" in row)
    assert logged["completions/max_length"] <= preset.max_completion_length
    moved = dict(result.trainer.model.named_parameters())
    assert any(not torch.equal(moved[n], start[n]) for n in start)
