"""Toy problems that learn in seconds on a CPU, shared by notebooks 01 and 02.

- :class:`LineWorld`: a walk along a line to a goal, for REINFORCE, baselines and actor-critic
  (notebook 01). The policy and the value function are tables, so every number can be checked.
- :class:`SortTask`: a tiny "language model" task with a verifiable reward: read three tokens,
  write them back sorted. An episode is one completion, an action is one token and the reward
  (the share of positions right, like the share of unit tests passed) comes at the end. Notebook 01
  uses it for the SFT-versus-RL lesson; notebook 02 trains PPO and GRPO on it side by side.

All the RL maths comes from :mod:`utils.rl`; this module only rolls out episodes and loops.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from utils import rl

Tensor = torch.Tensor


class single_thread(contextlib.ContextDecorator):
    """Run torch on one thread inside the block: for models this small, extra threads cost more in
    synchronisation than they save (up to 5x slower on a 2-core machine)."""

    def __enter__(self):
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._threads)


def budget(mode: str) -> dict[str, float]:
    """Training lengths per workshop mode: ``smoke`` runs in seconds, ``cpu``/``gpu`` in full.

    With them, what notebook 01 checks each run reaches: the critic's largest error on the path
    and RL's least gain over the teacher (smoke's short runs get looser bounds).
    """
    if mode == "smoke":
        return {"line_updates": 40, "line_seeds": 2, "variance_estimates": 500,
                "sft_steps": 100, "sort_updates": 20, "sort_seeds": 1,
                "critic_tolerance": 0.5, "min_rl_gain": 0.03}
    return {"line_updates": 150, "line_seeds": 8, "variance_estimates": 4000,
            "sft_steps": 300, "sort_updates": 150, "sort_seeds": 3,
            "critic_tolerance": 0.1, "min_rl_gain": 0.15}


def smooth(values, window: int = 10) -> np.ndarray:
    """Trailing moving average (the first points average over what there is)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


# ============================================================================================
# LineWorld: agent, environment, state, action, reward (notebook 01)
# ============================================================================================

LEFT, RIGHT = 0, 1


@dataclass
class Episodes:
    """A batch of episodes padded to the horizon: every tensor is ``(B, H)``."""

    states: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor          # 1.0 on steps that happened, 0.0 after the episode ended
    next_states: Tensor
    terminal: Tensor      # 1.0 where the step reached the goal (no bootstrap after it)

    @property
    def returns(self) -> Tensor:
        """Undiscounted return of each episode ``(B,)``."""
        return (self.rewards * self.mask).sum(-1)


@dataclass
class LineWorld:
    """Cells ``0 .. n_states-1``; the agent starts at ``start`` and moves LEFT or RIGHT.

    Reaching the last cell (the goal) pays ``goal_reward`` and ends the episode; every step costs
    ``step_reward`` (negative); the episode is cut off after ``horizon`` steps. The left wall just
    bounces the agent back. The state is the cell, so a policy is a table ``logits[state, action]``.
    """

    n_states: int = 9
    start: int = 1
    horizon: int = 20
    goal_reward: float = 1.0
    step_reward: float = -0.1
    gamma: float = 1.0

    @property
    def goal(self) -> int:
        return self.n_states - 1

    def step(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The environment's rule: ``(next_state, reward, done)`` for a batch of states/actions."""
        move = torch.where(action == RIGHT, 1, -1)
        next_state = (state + move).clamp(0, self.goal)
        done = next_state == self.goal
        reward = self.step_reward + self.goal_reward * done.float()
        return next_state, reward, done

    def rollout(self, logits: Tensor, batch: int, generator: torch.Generator | None = None
                ) -> Episodes:
        """Play ``batch`` episodes with the tabular policy ``softmax(logits[state])``."""
        probs = torch.softmax(logits.detach(), dim=-1)
        shape = (batch, self.horizon)
        states = torch.zeros(shape, dtype=torch.long)
        actions = torch.zeros(shape, dtype=torch.long)
        next_states = torch.zeros(shape, dtype=torch.long)
        rewards, mask, terminal = torch.zeros(shape), torch.zeros(shape), torch.zeros(shape)
        state = torch.full((batch,), self.start, dtype=torch.long)
        alive = torch.ones(batch, dtype=torch.bool)
        for t in range(self.horizon):
            action = torch.multinomial(probs[state], 1, generator=generator).squeeze(-1)
            nxt, reward, done = self.step(state, action)
            states[:, t], actions[:, t], next_states[:, t] = state, action, nxt
            rewards[:, t] = reward * alive
            mask[:, t] = alive.float()
            terminal[:, t] = (done & alive).float()
            alive = alive & ~done
            state = torch.where(alive, nxt, state)
        return Episodes(states, actions, rewards, mask, next_states, terminal)

    def success_rate(self, episodes: Episodes) -> float:
        return episodes.terminal.sum(-1).clamp(max=1).mean().item()


def reinforce_weights(env: LineWorld, episodes: Episodes, baseline: str = "none",
                      values: Tensor | None = None) -> Tensor:
    """The weight of ``grad log pi(a_t|s_t)`` in the REINFORCE estimator, per step ``(B, H)``.

    - ``"none"``: the reward-to-go ``G_t``,
    - ``"mean"``: ``G_t - b_t`` with ``b_t`` the mean reward-to-go of the *other* episodes of the
      batch at the same step (leave-one-out, as RLOO does: no episode is its own baseline, so the
      estimate stays unbiased),
    - ``"value"``: ``G_t - V(s_t)`` with ``values`` a table ``V[state]``.
    """
    returns = rl.discounted_returns(episodes.rewards, env.gamma, episodes.mask)
    if baseline == "none":
        return returns
    if baseline == "mean":
        m = episodes.mask
        total, count = (returns * m).sum(0, keepdim=True), m.sum(0, keepdim=True)
        b = (total - returns * m) / (count - m).clamp(min=1)   # mean of the others, per step
        return (returns - b) * m
    if baseline == "value":
        if values is None:
            raise ValueError("baseline='value' needs a value table")
        return (returns - values.detach()[episodes.states]) * episodes.mask
    raise ValueError(f"baseline must be 'none', 'mean' or 'value'; got {baseline!r}")


def per_episode_gradients(logits: Tensor, episodes: Episodes, weights: Tensor) -> Tensor:
    """One REINFORCE gradient estimate per episode, ``(B, n_states * 2)``.

    For a softmax table, ``grad_{logits[s]} log pi(a|s) = onehot(a) - pi(.|s)``, so the estimate
    ``sum_t w_t grad log pi(a_t|s_t)`` is a scatter-add; no autograd needed.
    """
    probs = torch.softmax(logits.detach(), dim=-1)
    n_states, n_actions = logits.shape
    score = torch.nn.functional.one_hot(episodes.actions, n_actions).float() - probs[episodes.states]
    contrib = (weights * episodes.mask).unsqueeze(-1) * score          # (B, H, A)
    grads = torch.zeros(episodes.states.shape[0], n_states, n_actions)
    index = episodes.states.unsqueeze(-1).expand_as(contrib)
    grads.scatter_add_(1, index, contrib)
    return grads.reshape(grads.shape[0], -1)


def mc_state_values(env: LineWorld, episodes: Episodes) -> Tensor:
    """Monte-Carlo estimate of ``V(s)``: the mean reward-to-go of the visits to each state."""
    returns = rl.discounted_returns(episodes.rewards, env.gamma, episodes.mask)
    total = torch.zeros(env.n_states).index_add_(0, episodes.states.flatten(),
                                                 (returns * episodes.mask).flatten())
    count = torch.zeros(env.n_states).index_add_(0, episodes.states.flatten(),
                                                 episodes.mask.flatten())
    return total / count.clamp(min=1)


@single_thread()
def gradient_variance(env: LineWorld, logits: Tensor, episodes_per_estimate: int = 1,
                      n_estimates: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """How noisy is the REINFORCE gradient, with and without a baseline, at a fixed policy?

    Draws ``n_estimates`` independent gradient estimates (each from ``episodes_per_estimate``
    episodes) per baseline and reports the total variance (the trace of their covariance), the
    squared norm of their mean (the signal) and the ratio. The ``value`` baseline is estimated by
    Monte Carlo on a separate batch, so it does not bias the estimates it is subtracted from.
    """
    gen = torch.Generator().manual_seed(seed)
    values = mc_state_values(env, env.rollout(logits, 4000, gen))
    batch = env.rollout(logits, n_estimates * episodes_per_estimate, gen)
    out = {}
    for baseline in ("none", "mean", "value"):
        weights = reinforce_weights(env, batch, baseline, values)
        grads = per_episode_gradients(logits, batch, weights)
        grads = grads.view(n_estimates, episodes_per_estimate, -1).mean(1)
        mean = grads.mean(0)
        out[baseline] = {
            "variance": grads.var(0).sum().item(),
            "signal": mean.pow(2).sum().item(),
            "samples": grads,
        }
    return out


@dataclass
class LineHistory:
    method: str
    returns: list[float] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    grad_var: list[float] = field(default_factory=list)
    seconds: float = 0.0
    logits: Tensor | None = None
    values: Tensor | None = None


@single_thread()
def train_lineworld(method: str = "reinforce", env: LineWorld | None = None, updates: int = 150,
                    batch: int = 8, lr: float = 2.0, value_lr: float = 0.3, lam: float = 0.9,
                    seed: int = 0) -> LineHistory:
    """Train a tabular policy on LineWorld with one of three policy-gradient methods.

    - ``"reinforce"``: ``loss = -mean sum_t G_t log pi(a_t|s_t)``,
    - ``"baseline"``: the same with ``G_t - b_t`` (``b_t``: leave-one-out batch mean at step ``t``),
    - ``"actor_critic"``: a learned value table ``V(s)`` as critic; the actor's weight is the GAE
      advantage :func:`utils.rl.gae` and the critic regresses on its returns.
    """
    env = env or LineWorld()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    logits = torch.zeros(env.n_states, 2, requires_grad=True)
    values = torch.zeros(env.n_states, requires_grad=True)
    actor_opt = torch.optim.SGD([logits], lr=lr)
    critic_opt = torch.optim.SGD([values], lr=value_lr)
    history = LineHistory(method)
    start = time.perf_counter()
    for _ in range(updates):
        episodes = env.rollout(logits, batch, gen)
        if method == "actor_critic":
            v = values.detach()
            bootstrap = v[episodes.next_states] * (1 - episodes.terminal)
            # values along the episode: V(s_0..s_{H-1}) and, for each step, the value after it
            v_seq = torch.cat([v[episodes.states], bootstrap[:, -1:]], dim=1)
            # a step's bootstrap is the next step's state value, except after the last real step
            last = episodes.mask * (1 - torch.cat([episodes.mask[:, 1:], torch.zeros(batch, 1)], 1))
            v_seq[:, 1:] = torch.where(last.bool(), bootstrap, v_seq[:, 1:])
            weights, targets = rl.gae(episodes.rewards, v_seq, env.gamma, lam, episodes.mask)
        else:
            weights = reinforce_weights(env, episodes, "none" if method == "reinforce" else "mean")
        probs = torch.log_softmax(logits, dim=-1)
        logp = probs[episodes.states, episodes.actions]
        actor_loss = -(weights.detach() * logp * episodes.mask).sum() / batch
        actor_opt.zero_grad()
        actor_loss.backward()
        history.grad_var.append(logits.grad.pow(2).sum().item())
        actor_opt.step()
        if method == "actor_critic":
            critic_loss = rl.value_loss(values[episodes.states], targets, episodes.mask)
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()
        history.returns.append(episodes.returns.mean().item())
        history.success.append(env.success_rate(episodes))
    history.seconds = time.perf_counter() - start
    history.logits, history.values = logits.detach(), values.detach()
    return history


# ============================================================================================
# SortTask: a tiny language model with a verifiable reward (notebooks 01 and 02)
# ============================================================================================


@dataclass
class SortTask:
    """Prompt: ``length`` tokens from ``0 .. vocab-1``. Completion: the same tokens, sorted.

    The reward is verifiable, like a GSM8K answer or a unit test: the share of completion positions
    that match the sorted prompt, in ``[0, 1]``. It arrives once, at the end of the completion.
    """

    vocab: int = 8
    length: int = 4

    @property
    def pad(self) -> int:
        """The id used for "no token yet" in the policy's input (not a token it can emit)."""
        return self.vocab

    def prompts(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(0, self.vocab, (n, self.length), generator=generator)

    def solve(self, prompts: Tensor) -> Tensor:
        return prompts.sort(dim=-1).values

    def reward(self, prompts: Tensor, completions: Tensor) -> Tensor:
        return (completions == self.solve(prompts)).float().mean(-1)

    def teacher(self, prompts: Tensor, passes: int = 1) -> Tensor:
        """A flawed demonstrator: bubble sort stopped after ``passes`` passes (``length - 1``
        passes sort fully). It is deterministic and wrong in a systematic way, like a teacher model
        with a blind spot; imitating it perfectly reproduces its mistakes."""
        out = prompts.clone()
        for _ in range(passes):
            for i in range(self.length - 1):
                a, b = out[:, i].clone(), out[:, i + 1].clone()
                out[:, i], out[:, i + 1] = torch.minimum(a, b), torch.maximum(a, b)
        return out


class TinyLM(nn.Module):
    """An autoregressive policy small enough to train in seconds (a few thousand parameters).

    At completion position ``t`` it sees the prompt, the tokens it wrote so far (later slots are
    padded) and ``t``, and outputs logits over the vocabulary: ``pi(token_t | prompt, tokens_<t)``.
    With ``value_head=True`` the same body outputs one number per position instead: a critic
    ``V(state_t)``, the value model PPO needs.
    """

    def __init__(self, task: SortTask, dim: int = 16, hidden: int = 128, value_head: bool = False):
        super().__init__()
        self.task = task
        self.embed = nn.Embedding(task.vocab + 1, dim)            # + the pad id
        self.position = nn.Embedding(task.length, dim)
        inputs = (2 * task.length + 1) * dim                        # prompt + prefix + position
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1 if value_head else task.vocab)
        self.value_head = value_head

    def forward(self, prompts: Tensor, completions: Tensor) -> Tensor:
        """Logits ``(B, T, vocab)`` (or values ``(B, T)``) for every position at once."""
        batch, steps = completions.shape
        slots = torch.arange(steps)
        visible = slots.unsqueeze(0) < slots.unsqueeze(1)               # (T pos, T slot): slot < pos
        prefix = torch.where(visible, completions.unsqueeze(1), self.task.pad)  # (B, T, T)
        prompt = self.embed(prompts).flatten(1).unsqueeze(1).expand(batch, steps, -1)
        x = torch.cat([prompt, self.embed(prefix).flatten(2),
                       self.position(slots).unsqueeze(0).expand(batch, -1, -1)], dim=-1)
        out = self.head(self.body(x))
        return out.squeeze(-1) if self.value_head else out


def token_logprobs(policy: TinyLM, prompts: Tensor, completions: Tensor) -> Tensor:
    """``log pi(token_t | prompt, tokens_<t)`` of a TinyLM's completion tokens, ``(B, T)`` (a
    Hugging Face model's: :func:`utils.grpo_scratch.token_logprobs`)."""
    logp = torch.log_softmax(policy(prompts, completions), dim=-1)
    return logp.gather(-1, completions.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def generate(policy: TinyLM, prompts: Tensor, generator: torch.Generator | None = None,
             greedy: bool = False) -> Tensor:
    """Sample a TinyLM completion token by token, the rollout of an LLM in miniature (text from
    a Hugging Face model: :func:`utils.generation.generate`)."""
    batch, steps = prompts.shape[0], policy.task.length
    completions = torch.full((batch, steps), policy.task.pad, dtype=torch.long)
    for t in range(steps):
        logits = policy(prompts, completions)[:, t]
        if greedy:
            token = logits.argmax(-1)
        else:
            token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
        completions[:, t] = token
    return completions


@single_thread()
@torch.no_grad()
def evaluate(policy: TinyLM, n: int = 1000, seed: int = 1234, greedy: bool = False) -> float:
    """A TinyLM's mean reward on ``n`` fresh prompts, sampled unless ``greedy`` (the language
    models': :func:`utils.post_training.evaluate`, :func:`utils.cpu_demo.evaluate`)."""
    gen = torch.Generator().manual_seed(seed)
    prompts = policy.task.prompts(n, gen)
    return policy.task.reward(prompts, generate(policy, prompts, gen, greedy)).mean().item()


@single_thread()
def sft(policy: TinyLM, passes: int = 1, steps: int = 300, batch: int = 128,
        lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Supervised fine-tuning on a teacher's demonstrations (cross-entropy on its tokens).

    Returns the reward of the policy's own samples along the way: imitation converges to the
    teacher's level, because the teacher is all it sees.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    curve = []
    for step in range(steps):
        prompts = policy.task.prompts(batch, gen)
        demos = policy.task.teacher(prompts, passes)
        loss = -token_logprobs(policy, prompts, demos).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == steps - 1:
            with torch.no_grad():
                curve.append(policy.task.reward(prompts, generate(policy, prompts, gen)).mean().item())
    return curve


# --------------------------------------------------------------------------------------------
# PPO and GRPO on SortTask, with the same budget of sampled completions
# --------------------------------------------------------------------------------------------


@dataclass
class ToyRLConfig:
    updates: int = 150
    completions_per_update: int = 128   # PPO: 128 prompts x 1; GRPO: 16 prompts x 8
    num_generations: int = 8            # GRPO's group size G
    epochs: int = 2                     # passes over each batch (mu in the GRPO paper)
    minibatches: int = 2                # optimizer steps per pass
    lr: float = 2e-3
    critic_lr: float = 2e-3
    beta: float = 0.02                  # KL coefficient (PPO: in the reward; GRPO: in the loss)
    clip_eps: float = 0.2
    value_clip: float = 0.2
    vf_coef: float = 1.0
    gamma: float = 1.0
    lam: float = 0.95
    loss_type: str = "grpo"
    scale_rewards: str | None = "group"
    seed: int = 0


@dataclass
class RunResult:
    algorithm: str
    rewards: list[float] = field(default_factory=list)     # mean reward of each update's samples
    eval_rewards: list[float] = field(default_factory=list)
    eval_every: int = 10
    zero_std_groups: list[float] = field(default_factory=list)  # GRPO: groups with no signal
    seconds: float = 0.0
    samples: int = 0
    memory: dict[str, int] = field(default_factory=dict)
    policy: TinyLM | None = None


def parameter_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


class SavedActivations:
    """Counts the bytes autograd keeps for the backward pass (the activations), while active."""

    def __init__(self):
        self.bytes = 0
        self._seen: set[tuple[int, int]] = set()

    def _pack(self, tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in self._seen:  # several saved views of one buffer are stored once
            self._seen.add(key)
            self.bytes += storage.nbytes()
        return tensor

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def _memory_row(policy: nn.Module, reference: nn.Module, critic: nn.Module | None,
                activations: int) -> dict[str, int]:
    """Parameters of each model, bytes of parameters, of Adam's two moments for what is trained,
    and of the activations saved for one optimizer step's backward pass."""
    models = {"policy": policy, "reference": reference, "critic": critic}
    row = {f"{name}_params": 0 if m is None else sum(p.numel() for p in m.parameters())
           for name, m in models.items()}
    row["param_bytes"] = sum(parameter_bytes(m) for m in models.values() if m is not None)
    row["adam_bytes"] = 2 * sum(parameter_bytes(m) for m in (policy, critic) if m is not None)
    row["activation_bytes"] = activations
    row["total_bytes"] = row["param_bytes"] + row["adam_bytes"] + activations
    return row


@single_thread()
def make_initial_policy(task: SortTask | None = None, teacher_passes: int = 1,
                        sft_steps: int = 300, seed: int = 0) -> TinyLM:
    """The starting point of both RL runs, like an instruct LLM: SFT'd on a flawed teacher.

    It is also the frozen reference model of the KL term.
    """
    task = task or SortTask()
    torch.manual_seed(seed)
    policy = TinyLM(task)
    if sft_steps:
        sft(policy, passes=teacher_passes, steps=sft_steps, seed=seed)
    return policy


def _minibatches(n: int, count: int, generator: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=generator).chunk(count))


def _rollout(policy: TinyLM, ref: TinyLM, prompts: Tensor, gen: torch.Generator, reward_fn=None):
    """Sample completions, score them, and keep their log-probs under the sampling policy and the
    reference (both fixed for the whole update, hence no grad)."""
    completions = generate(policy, prompts, gen)
    scores = (reward_fn or policy.task.reward)(prompts, completions)
    mask = torch.ones_like(completions, dtype=torch.float32)   # fixed length: no padding here
    with torch.no_grad():
        old_logp = token_logprobs(policy, prompts, completions)
        ref_logp = token_logprobs(ref, prompts, completions)
    return completions, scores, mask, old_logp, ref_logp


def _evaluate_every(result: RunResult, policy: TinyLM, update: int, log_eval: bool) -> float:
    """Evaluate every ``eval_every`` updates; return the seconds spent (not billed to training)."""
    if not log_eval or update % result.eval_every:
        return 0.0
    tick = time.perf_counter()
    result.eval_rewards.append(evaluate(policy, 500))
    return time.perf_counter() - tick


def _finish(result: RunResult, policy: TinyLM, ref: TinyLM, critic: TinyLM | None,
            train_seconds: float, activations: int, log_eval: bool) -> RunResult:
    result.seconds = train_seconds
    if log_eval:
        result.eval_rewards.append(evaluate(policy, 500))
    result.memory = _memory_row(policy, ref, critic, activations)
    result.policy = policy
    return result


@single_thread()
def train_grpo(init: TinyLM, cfg: ToyRLConfig | None = None, log_eval: bool = True,
               reward_fn=None) -> RunResult:
    """GRPO: groups of G completions per prompt, group-relative advantages, no critic.

    ``reward_fn(prompts, completions) -> (N,)`` replaces the task's verifiable reward for training
    (to see what optimising a flawed proxy does); evaluation always uses the task's reward.
    """
    cfg = cfg or ToyRLConfig()
    task = init.task
    policy, ref = copy.deepcopy(init), copy.deepcopy(init).requires_grad_(False)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    result = RunResult("GRPO")
    n_prompts = cfg.completions_per_update // cfg.num_generations
    activations, eval_seconds = 0, 0.0
    start = time.perf_counter()
    for update in range(cfg.updates):
        eval_seconds += _evaluate_every(result, policy, update, log_eval)
        prompts = task.prompts(n_prompts, gen).repeat_interleave(cfg.num_generations, dim=0)
        completions, scores, mask, old_logp, ref_logp = _rollout(policy, ref, prompts, gen,
                                                                 reward_fn)
        advantages = rl.group_advantages(scores, cfg.num_generations, cfg.scale_rewards)
        group_std = scores.view(-1, cfg.num_generations).std(dim=1)
        result.zero_std_groups.append((group_std == 0).float().mean().item())
        for _ in range(cfg.epochs):
            for idx in _minibatches(len(prompts), cfg.minibatches, gen):
                with SavedActivations() as saved:
                    logp = token_logprobs(policy, prompts[idx], completions[idx])
                    loss = rl.grpo_loss(logp, old_logp[idx], ref_logp[idx], advantages[idx],
                                        mask[idx], beta=cfg.beta, epsilon_low=cfg.clip_eps,
                                        loss_type=cfg.loss_type)
                activations = max(activations, saved.bytes)
                opt.zero_grad()
                loss.backward()
                opt.step()
        result.rewards.append(scores.mean().item())
        result.samples += len(prompts)
    elapsed = time.perf_counter() - start - eval_seconds  # evaluation is not training
    return _finish(result, policy, ref, None, elapsed, activations, log_eval)


@single_thread()
def train_ppo(init: TinyLM, cfg: ToyRLConfig | None = None, log_eval: bool = True) -> RunResult:
    """RLHF-style PPO: one completion per prompt, a learned critic, KL in the reward, GAE."""
    cfg = cfg or ToyRLConfig()
    task = init.task
    policy, ref = copy.deepcopy(init), copy.deepcopy(init).requires_grad_(False)
    torch.manual_seed(cfg.seed + 1)
    critic = TinyLM(task, value_head=True)       # same size as the policy, as in RLHF practice
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    result = RunResult("PPO")
    activations, eval_seconds = 0, 0.0
    start = time.perf_counter()
    for update in range(cfg.updates):
        eval_seconds += _evaluate_every(result, policy, update, log_eval)
        prompts = task.prompts(cfg.completions_per_update, gen)
        completions, scores, mask, old_logp, ref_logp = _rollout(policy, ref, prompts, gen)
        with torch.no_grad():
            old_values = critic(prompts, completions)                       # V(s_0..s_{T-1})
            rewards = rl.kl_penalized_rewards(scores, old_logp, ref_logp, mask, cfg.beta)
            bootstrap = torch.zeros(len(prompts), 1)                         # terminal: V = 0
            advantages, returns = rl.gae(rewards, torch.cat([old_values, bootstrap], 1),
                                         cfg.gamma, cfg.lam, mask)
            advantages = rl.masked_whiten(advantages, mask)
        for _ in range(cfg.epochs):
            for idx in _minibatches(len(prompts), cfg.minibatches, gen):
                with SavedActivations() as saved:
                    logp = token_logprobs(policy, prompts[idx], completions[idx])
                    pg_loss = rl.ppo_policy_loss(logp, old_logp[idx], advantages[idx], mask[idx],
                                                 cfg.clip_eps)
                    values = critic(prompts[idx], completions[idx])
                    vf_loss = rl.value_loss(values, returns[idx], mask[idx], old_values[idx],
                                            cfg.value_clip)
                    loss = pg_loss + cfg.vf_coef * vf_loss
                activations = max(activations, saved.bytes)
                opt.zero_grad()
                critic_opt.zero_grad()
                loss.backward()
                opt.step()
                critic_opt.step()
        result.rewards.append(scores.mean().item())
        result.samples += len(prompts)
    elapsed = time.perf_counter() - start - eval_seconds  # evaluation is not training
    return _finish(result, policy, ref, critic, elapsed, activations, log_eval)


def summary_table(results: list[RunResult], threshold: float = 0.8):
    """One row per algorithm: final reward, samples and time to a reward threshold, memory."""
    import pandas as pd

    rows = []
    for r in results:
        curve = smooth(r.rewards, 10)
        hit = next((i for i, v in enumerate(curve) if v >= threshold), None)
        per_update = r.samples / max(len(r.rewards), 1)
        rows.append({
            "algorithm": r.algorithm,
            "final reward (eval)": round(r.eval_rewards[-1], 3) if r.eval_rewards else math.nan,
            f"samples to reward {threshold}": None if hit is None else int((hit + 1) * per_update),
            "wall time (s)": round(r.seconds, 2),
            "ms / update": round(1000 * r.seconds / max(len(r.rewards), 1), 1),
            "trained params": r.memory["policy_params"] + r.memory["critic_params"],
            "critic params": r.memory["critic_params"],
            "params+Adam (KiB)": round((r.memory["param_bytes"] + r.memory["adam_bytes"]) / 1024, 1),
            "activations (KiB)": round(r.memory["activation_bytes"] / 1024, 1),
            "total (KiB)": round(r.memory["total_bytes"] / 1024, 1),
        })
    return pd.DataFrame(rows).set_index("algorithm")
