"""The toy problems of notebooks 01 and 02 and their diagrams: correct rules, fast, learning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from utils import diagrams
from utils import toy_tasks as tt

ROOT = Path(__file__).resolve().parent.parent


# ---- LineWorld ------------------------------------------------------------------------------


def test_lineworld_rules():
    env = tt.LineWorld(n_states=5, start=1, step_reward=-0.1)
    state = torch.tensor([0, 1, 3])
    nxt, reward, done = env.step(state, torch.tensor([tt.LEFT, tt.RIGHT, tt.RIGHT]))
    assert nxt.tolist() == [0, 2, 4]                       # the left wall bounces
    assert done.tolist() == [False, False, True]
    assert torch.allclose(reward, torch.tensor([-0.1, -0.1, 0.9]))


def test_lineworld_rollout_masks_after_the_goal():
    env = tt.LineWorld(n_states=4, start=1, horizon=6)
    always_right = torch.tensor([[-20.0, 20.0]] * 4)
    ep = env.rollout(always_right, 3)
    assert ep.mask[0].tolist() == [1, 1, 0, 0, 0, 0]
    assert ep.terminal[0].tolist() == [0, 1, 0, 0, 0, 0]
    assert torch.allclose(ep.returns, torch.full((3,), 1.0 - 0.2))
    assert env.success_rate(ep) == 1.0


def test_per_episode_gradient_equals_autograd():
    env = tt.LineWorld()
    logits = torch.randn(env.n_states, 2, generator=torch.Generator().manual_seed(0))
    ep = env.rollout(logits, 5, torch.Generator().manual_seed(1))
    weights = tt.reinforce_weights(env, ep, "none")
    grads = tt.per_episode_gradients(logits, ep, weights)
    for i in range(5):
        table = logits.clone().requires_grad_(True)
        logp = torch.log_softmax(table, -1)[ep.states[i], ep.actions[i]]
        (weights[i] * logp * ep.mask[i]).sum().backward()
        assert torch.allclose(grads[i], table.grad.flatten(), atol=1e-5)


def test_baselines_cut_the_gradient_variance_without_moving_its_mean():
    env = tt.LineWorld()
    stats = tt.gradient_variance(env, torch.zeros(env.n_states, 2), n_estimates=3000)
    assert stats["mean"]["variance"] < stats["none"]["variance"] / 3
    assert stats["value"]["variance"] < stats["none"]["variance"] / 2
    mean_none = stats["none"]["samples"].mean(0)
    for baseline in ("mean", "value"):
        assert torch.allclose(stats[baseline]["samples"].mean(0), mean_none, atol=0.08)


def test_leave_one_out_baseline_excludes_the_episode_itself():
    env = tt.LineWorld()
    ep = env.rollout(torch.zeros(env.n_states, 2), 2, torch.Generator().manual_seed(0))
    returns = tt.rl.discounted_returns(ep.rewards, 1.0, ep.mask)
    w = tt.reinforce_weights(env, ep, "mean")
    both = ep.mask[0, 0] * ep.mask[1, 0]
    assert both == 1 and torch.isclose(w[0, 0], returns[0, 0] - returns[1, 0])


@pytest.mark.parametrize("method", ["reinforce", "baseline", "actor_critic"])
def test_lineworld_methods_learn(method):
    history = tt.train_lineworld(method, updates=60, seed=0)
    assert len(history.returns) == 60
    assert sum(history.returns[-10:]) / 10 > sum(history.returns[:10]) / 10 + 0.3
    assert history.seconds < 10


def test_train_lineworld_rejects_unknown_baseline():
    env = tt.LineWorld()
    ep = env.rollout(torch.zeros(env.n_states, 2), 2)
    with pytest.raises(ValueError):
        tt.reinforce_weights(env, ep, "median")


# ---- SortTask and the tiny LM ---------------------------------------------------------------


def test_sort_task_reward_and_teacher():
    task = tt.SortTask(vocab=8, length=4)
    prompts = torch.tensor([[3, 1, 2, 0], [5, 5, 1, 7]])
    assert task.solve(prompts).tolist() == [[0, 1, 2, 3], [1, 5, 5, 7]]
    assert task.reward(prompts, task.solve(prompts)).tolist() == [1.0, 1.0]
    assert task.reward(prompts, prompts).tolist() == [0.5, 0.5]
    assert task.teacher(prompts, passes=1).tolist() == [[1, 2, 0, 3], [5, 1, 5, 7]]
    assert torch.equal(task.teacher(prompts, passes=3), task.solve(prompts))


def test_tiny_lm_is_causal_and_generate_matches_logprobs():
    task = tt.SortTask()
    torch.manual_seed(0)
    lm = tt.TinyLM(task)
    prompts = task.prompts(4, torch.Generator().manual_seed(0))
    a = torch.randint(0, task.vocab, (4, task.length))
    b = a.clone()
    b[:, 2:] = (b[:, 2:] + 1) % task.vocab              # change tokens at positions >= 2
    la, lb = lm(prompts, a), lm(prompts, b)
    assert torch.allclose(la[:, :3], lb[:, :3])         # position t sees tokens < t only
    assert not torch.allclose(la[:, 3], lb[:, 3])
    completions = tt.generate(lm, prompts, greedy=True)
    logp = tt.token_logprobs(lm, prompts, completions)
    assert torch.allclose(logp, torch.log_softmax(lm(prompts, completions), -1).max(-1).values)
    critic = tt.TinyLM(task, value_head=True)
    assert critic(prompts, completions).shape == (4, task.length)


def test_sft_matches_the_teacher_and_stops_there():
    task = tt.SortTask()
    policy = tt.make_initial_policy(task, teacher_passes=1, sft_steps=150)
    gen = torch.Generator().manual_seed(0)
    prompts = task.prompts(2000, gen)
    teacher = task.reward(prompts, task.teacher(prompts, 1)).mean().item()
    assert abs(tt.evaluate(policy, 1000) - teacher) < 0.08


def test_ppo_and_grpo_runs_have_the_same_budget_and_the_right_memory():
    task = tt.SortTask()
    init = tt.make_initial_policy(task, sft_steps=20)
    cfg = tt.ToyRLConfig(updates=3, completions_per_update=32, num_generations=4)
    grpo, ppo = tt.train_grpo(init, cfg), tt.train_ppo(init, cfg)
    assert grpo.samples == ppo.samples == 96
    assert len(grpo.rewards) == len(ppo.rewards) == 3 and len(grpo.zero_std_groups) == 3
    assert grpo.memory["critic_params"] == 0 and ppo.memory["critic_params"] > 0
    assert ppo.memory["total_bytes"] > grpo.memory["total_bytes"]
    assert ppo.memory["activation_bytes"] > grpo.memory["activation_bytes"] > 0
    table = tt.summary_table([grpo, ppo], threshold=0.5)
    assert list(table.index) == ["GRPO", "PPO"] and "wall time (s)" in table.columns
    # the policy being trained is a copy: the initial policy (the reference) is untouched
    assert all(torch.equal(p, q) for p, q in zip(init.parameters(),
                                                  tt.make_initial_policy(task, sft_steps=20)
                                                  .parameters()))


def test_grpo_learns_the_sort_task_quickly():
    task = tt.SortTask()
    init = tt.make_initial_policy(task, sft_steps=100)
    start = tt.evaluate(init, 500)
    result = tt.train_grpo(init, tt.ToyRLConfig(updates=40))
    assert result.eval_rewards[-1] > start + 0.1


def test_budget_and_smooth():
    assert tt.budget("smoke")["sort_updates"] < tt.budget("cpu")["sort_updates"]
    assert tt.smooth([0, 2, 4], 2).tolist() == [0.0, 1.0, 3.0]


# ---- diagrams ------------------------------------------------------------------------------


def test_diagrams_are_generated_and_committed(tmp_path):
    written = diagrams.save_all(tmp_path, names=["grpo_pipeline"])
    assert sorted(p.name for p in written) == ["grpo_pipeline.png", "grpo_pipeline.svg"]
    assert all(p.stat().st_size > 10_000 for p in written)
    for name in diagrams.DIAGRAMS:
        for ext in ("svg", "png"):
            assert (ROOT / "images" / f"{name}.{ext}").is_file(), "run: python scripts/make_diagrams.py"
