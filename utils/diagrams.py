"""The course's diagrams, drawn with matplotlib alone (works in Colab and here, no Graphviz).

Each ``*_figure()`` function returns a matplotlib Figure, so a notebook can show it inline;
``save_all()`` (run by ``python scripts/make_diagrams.py``, or ``make diagrams``) writes every
diagram to ``images/`` as SVG and PNG. The output is deterministic: same code, same files.

Colours follow the DeepSeekMath paper's Figure 4: yellow for trained models, blue for frozen ones.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use(matplotlib.get_backend())  # keep the notebook's backend; Agg in scripts
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

TRAINED = "#fde68a"   # yellow: weights updated by the algorithm
FROZEN = "#bfdbfe"    # blue: weights fixed
DATA = "#f3f4f6"      # grey: tensors flowing between models
COMPUTE = "#d1fae5"   # green: a computation with no weights
EDGE = "#374151"
HIGHLIGHT = "#dc2626"


class Canvas:
    """A blank axes in data coordinates with helpers for boxes and arrows."""

    def __init__(self, width: float, height: float, title: str | None = None, scale: float = 1.0):
        self.fig, self.ax = plt.subplots(figsize=(width * scale, height * scale))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.set_aspect("equal")
        self.ax.axis("off")
        if title:
            self.ax.set_title(title, fontsize=13, fontweight="bold", loc="left")

    def box(self, x, y, text, w=1.9, h=0.8, color=DATA, fontsize=10, bold=False, style="round"):
        """A rounded box centred on ``(x, y)``; returns its bounds for the arrows."""
        patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                               boxstyle=f"{style},pad=0.02,rounding_size=0.12" if style == "round"
                               else style, facecolor=color, edgecolor=EDGE, linewidth=1.3)
        self.ax.add_patch(patch)
        self.ax.text(x, y, text, ha="center", va="center", fontsize=fontsize,
                     fontweight="bold" if bold else "normal", wrap=True)
        return (x, y, w, h)

    def arrow(self, a, b, text=None, color=EDGE, style="-|>", rad=0.0, text_offset=(0, 0.18),
              fontsize=9, ls="-", side=None):
        """An arrow from the edge of box (or point) ``a`` to the edge of ``b``."""
        start, end = _edge_point(a, b, side), _edge_point(b, a, None)
        patch = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color,
                                linewidth=1.4, connectionstyle=f"arc3,rad={rad}", linestyle=ls)
        self.ax.add_patch(patch)
        if text:
            mx, my = (start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1]
            self.ax.text(mx, my, text, ha="center", va="bottom", fontsize=fontsize, color=color)

    def note(self, x, y, text, fontsize=9, color=EDGE, ha="center", style="normal"):
        self.ax.text(x, y, text, ha=ha, va="center", fontsize=fontsize, color=color,
                     fontstyle=style)

    def legend(self, x, y, items):
        for i, (color, label) in enumerate(items):
            self.box(x + 0.25, y - 0.45 * i, "", w=0.35, h=0.28, color=color)
            self.note(x + 0.55, y - 0.45 * i, label, ha="left", fontsize=9)


def _edge_point(a, b, side):
    """The point on the border of box ``a`` facing box ``b`` (a point is its own border)."""
    if len(a) == 2:
        return a
    ax, ay, aw, ah = a
    bx, by = b[0], b[1]
    if side == "top":
        return (ax, ay + ah / 2)
    if side == "bottom":
        return (ax, ay - ah / 2)
    dx, dy = bx - ax, by - ay
    if dx == 0 and dy == 0:
        return (ax, ay)
    # scale the direction until it meets the rectangle's border
    tx = (aw / 2) / abs(dx) if dx else float("inf")
    ty = (ah / 2) / abs(dy) if dy else float("inf")
    t = min(tx, ty)
    return (ax + dx * t, ay + dy * t)


# --------------------------------------------------------------------------------------------
# Notebook 01
# --------------------------------------------------------------------------------------------


def rl_loop_figure():
    """Agent and environment: the agent's policy picks an action, the environment answers with
    the next state and a reward."""
    c = Canvas(9, 4.2, "The reinforcement-learning loop")
    agent = c.box(2.0, 2.1, "Agent\npolicy  π(a | s)", w=2.6, h=1.3, color=TRAINED, bold=True)
    env = c.box(7.0, 2.1, "Environment\nrules + reward", w=2.6, h=1.3, color=FROZEN, bold=True)
    c.arrow((3.3, 2.5), (5.7, 2.5), "action  aₜ", rad=-0.25, text_offset=(0, 0.35))
    c.arrow((5.7, 1.7), (3.3, 1.7), "", rad=-0.25)
    c.note(4.5, 0.95, "next state  sₜ₊₁ ,  reward  rₜ", fontsize=9)
    c.note(4.5, 0.3, "goal: maximise the return  G = r₀ + γ r₁ + γ² r₂ + …",
           fontsize=10, style="italic")
    del agent, env
    return c.fig


def actor_critic_figure():
    """Actor-critic: the actor is the policy, the critic a learned value that scores its moves."""
    c = Canvas(10, 4.6, "Actor-critic")
    state = c.box(1.2, 2.3, "state  sₜ", w=1.6, h=0.7)
    actor = c.box(4.0, 3.4, "Actor\nπθ(a | s)", w=2.2, h=1.0, color=TRAINED, bold=True)
    critic = c.box(4.0, 1.2, "Critic\nVφ(s)", w=2.2, h=1.0, color=TRAINED, bold=True)
    env = c.box(7.3, 3.4, "Environment", w=2.2, h=0.9, color=FROZEN)
    adv = c.box(7.3, 1.2, "advantage\nA = r + γV(s') − V(s)", w=2.9, h=1.0, color=COMPUTE)
    c.arrow(state, actor)
    c.arrow(state, critic)
    c.arrow(actor, env, "action aₜ")
    c.arrow(env, adv, "rₜ , sₜ₊₁", text_offset=(0.75, -0.05))
    c.arrow(critic, adv, "V(s)")
    c.arrow((5.9, 1.55), (4.9, 2.9), "", color=HIGHLIGHT, rad=0.3)
    c.note(6.0, 2.35, "update actor\nalong A ∇log π", fontsize=8.5, color=HIGHLIGHT)
    c.note(4.0, 0.3, "critic learns to predict the return; the actor is pushed toward actions "
           "that beat the critic's prediction", fontsize=9, style="italic")
    return c.fig


def llm_as_rl_figure():
    """An LLM as an RL agent: the state is the prompt plus the tokens so far, the action is the
    next token, the episode is one completion, the reward comes at the end."""
    c = Canvas(11, 3.6, "An LLM as an RL agent")
    c.box(1.3, 2.2, "prompt\n\"12 + 30 = ?\"", w=2.2, h=0.9, color=DATA)
    xs = [3.2, 4.5, 5.8, 7.1]
    tokens = ["<think>", "42", "</think>", "<eos>"]
    for i, (x, tok) in enumerate(zip(xs, tokens)):
        c.box(x, 2.2, tok, w=1.15, h=0.7, color=TRAINED if i < 4 else DATA, fontsize=9)
        c.note(x, 1.45, f"a{i} ~ π(· | s{i})", fontsize=8)
    c.arrow((2.4, 2.2), (2.6, 2.2), "")
    reward = c.box(9.4, 2.2, "verifier\nreward = 1", w=2.0, h=0.9, color=FROZEN)
    c.arrow((7.7, 2.2), reward)
    c.note(5.15, 3.2, "state sₜ = prompt + tokens so far    action aₜ = next token", fontsize=9.5)
    c.note(5.15, 0.7, "episode = one completion;  reward at the end only (rₜ = 0 before);  "
           "γ = 1", fontsize=9.5, style="italic")
    return c.fig


def lineworld_figure(n_states: int = 9, start: int = 1, goal: int | None = None,
                     values=None, probs_right=None, agent: int | None = None, title: str = "",
                     ax=None):
    """LineWorld drawn as a row of cells: start S, goal G, optionally the agent, a value per cell
    (colour and number) and the policy (under each cell a right arrow of length ~ pi(RIGHT|s), a
    red left arrow of length ~ pi(LEFT|s), and the number pi(RIGHT|s))."""
    goal = n_states - 1 if goal is None else goal
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.9 * n_states + 0.6, 1.9))
    else:
        fig = ax.figure
    cmap = plt.get_cmap("RdYlGn")
    if values is not None:  # colour scale over the non-terminal cells (V(goal) = 0 by definition)
        inner = [v for s, v in enumerate(values) if s != goal]
        lo, hi = min(inner), max(inner)
    for s in range(n_states):
        if values is not None and s != goal:
            color = cmap((values[s] - lo) / (hi - lo + 1e-9) * 0.8 + 0.1)
        else:
            color = "#bbf7d0" if s == goal else DATA
        ax.add_patch(FancyBboxPatch((s + 0.06, 0.06), 0.88, 0.88,
                                    boxstyle="round,pad=0.0,rounding_size=0.08",
                                    facecolor=color, edgecolor=EDGE, linewidth=1.1))
        label = "G" if s == goal else ("S" if s == start else str(s))
        ax.text(s + 0.5, 0.78, label, ha="center", va="center", fontsize=9, fontweight="bold")
        if values is not None:
            text = "end" if s == goal else f"{values[s]:.2f}"
            ax.text(s + 0.5, 0.42, text, ha="center", va="center", fontsize=8.5)
        if probs_right is not None and s != goal:
            p = float(probs_right[s])
            for direction, prob in ((1, p), (-1, 1 - p)):  # arrow length ~ probability
                if prob > 0.02:
                    ax.annotate("", xy=(s + 0.5 + direction * 0.45 * prob, -0.3),
                                xytext=(s + 0.5, -0.3),
                                arrowprops={"arrowstyle": "-|>", "lw": 1.4,
                                            "color": EDGE if direction > 0 else HIGHLIGHT})
            ax.text(s + 0.5, -0.62, f"{p:.2f}", ha="center", va="center", fontsize=7.5)
    if agent is not None:
        ax.text(agent + 0.5, 0.2 if values is None else 0.14, "●",
                ha="center", va="center", fontsize=13, color="#2563eb")
    ax.set_xlim(-0.1, n_states + 0.1)
    ax.set_ylim(-0.85 if probs_right is not None else -0.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


# --------------------------------------------------------------------------------------------
# Notebook 02: the two pipelines (after DeepSeekMath, Figure 4)
# --------------------------------------------------------------------------------------------


def ppo_pipeline_figure():
    """PPO for LLMs: one completion per prompt, four models, the KL inside the reward, GAE."""
    c = Canvas(13, 6.4, "PPO (RLHF-style): four models, one completion per prompt")
    q = c.box(0.9, 3.6, "prompt q", w=1.4, h=0.7)
    policy = c.box(3.0, 3.6, "Policy\nπθ", w=1.7, h=1.0, color=TRAINED, bold=True)
    o = c.box(5.0, 3.6, "completion o\n(tokens o₁…o_T)", w=2.0, h=0.9)
    ref = c.box(7.6, 5.3, "Reference\nπref", w=1.8, h=0.9, color=FROZEN, bold=True)
    rm = c.box(7.6, 3.6, "Reward model\n(or verifier)", w=1.8, h=0.9, color=FROZEN, bold=True)
    value = c.box(7.6, 1.9, "Value model\nVφ  (critic)", w=1.8, h=0.9, color=TRAINED, bold=True)
    kl = c.box(10.0, 5.3, "per-token KL\nlog πθ − log πref", w=2.2, h=0.9, color=COMPUTE)
    r = c.box(10.0, 3.6, "reward  rₜ =\nscore·[t=T] − β·KLₜ", w=2.2, h=0.9, color=COMPUTE)
    v = c.box(10.0, 1.9, "values\nV(s₁) … V(s_T)", w=2.2, h=0.9)
    gae = c.box(12.2, 2.75, "GAE\n→ Aₜ", w=1.2, h=1.0, color=COMPUTE, bold=True)
    c.arrow(q, policy)
    c.arrow(policy, o)
    for model in (ref, rm, value):
        c.arrow(o, model)
    c.arrow(ref, kl)
    c.arrow(rm, r)
    c.arrow(value, v)
    c.arrow(kl, r, "into the reward", text_offset=(0.95, -0.1), color=HIGHLIGHT)
    c.arrow(r, gae)
    c.arrow(v, gae)
    c.arrow((12.2, 2.25), (3.0, 3.1), "", rad=-0.35, color=HIGHLIGHT)
    c.note(7.6, 0.2, "update πθ with the clipped surrogate on Aₜ;  update Vφ on the returns",
           fontsize=9, color=HIGHLIGHT)
    c.legend(0.2, 1.6, [(TRAINED, "trained"), (FROZEN, "frozen"), (COMPUTE, "computed")])
    return c.fig


def grpo_pipeline_figure():
    """GRPO: G completions per prompt, no value model, group-relative advantages, KL in the loss."""
    c = Canvas(13.6, 6.4, "GRPO: no critic, a group of G completions per prompt")
    q = c.box(0.9, 3.6, "prompt q", w=1.4, h=0.7)
    policy = c.box(3.0, 3.6, "Policy\nπθ", w=1.7, h=1.0, color=TRAINED, bold=True)
    outs = [c.box(5.0, y, label, w=1.4, h=0.55)
            for y, label in zip((4.75, 4.05, 3.35, 2.4), ("o₁", "o₂", "o₃", "o_G"))]
    c.note(5.0, 2.9, "⋮", fontsize=12)
    rm = c.box(7.4, 3.6, "Reward model\n(or verifier)", w=1.8, h=0.9, color=FROZEN, bold=True)
    ref = c.box(7.4, 1.5, "Reference\nπref", w=1.8, h=0.9, color=FROZEN, bold=True)
    rs = c.box(9.5, 3.6, "r₁ r₂ … r_G", w=1.7, h=0.7)
    group = c.box(11.75, 3.6, "group computation\nAᵢ = (rᵢ − mean r) / std r",
                  w=2.5, h=1.1, color=COMPUTE, bold=True)
    loss = c.box(11.75, 1.5, "loss: −clipped surrogate(Aᵢ)\n+ β·KL(πθ‖πref)  (k3)", w=2.7,
                 h=0.9, color=COMPUTE)
    c.arrow(q, policy)
    for out in outs:
        c.arrow(policy, out)
        c.arrow(out, rm)
    c.arrow(outs[-1], ref)
    c.arrow(rm, rs)
    c.arrow(rs, group)
    c.arrow(group, loss, "Aᵢ on every\ntoken of oᵢ", text_offset=(-0.75, -0.3), fontsize=8.5)
    c.arrow(ref, loss, "β·KL in the loss", color=HIGHLIGHT, text_offset=(0, 0.05))
    c.note(9.45, 0.95, "(not in the reward)", fontsize=8.5, color=HIGHLIGHT)
    c.arrow((11.75, 1.05), (3.0, 3.1), "", rad=-0.35, color=HIGHLIGHT)
    c.note(6.6, 0.2, "update πθ", fontsize=9, color=HIGHLIGHT)
    c.legend(0.2, 1.6, [(TRAINED, "trained"), (FROZEN, "frozen"), (COMPUTE, "computed")])
    c.note(6.5, 5.75, "no value model: the mean reward of the group is the baseline",
           fontsize=10, style="italic")
    return c.fig



# --------------------------------------------------------------------------------------------
# Notebook 06: DeepSeek-R1-Zero vs DeepSeek-R1 (after the R1 paper, Sections 2.2-2.4)
# --------------------------------------------------------------------------------------------


def r1_pipeline_figure():
    """R1-Zero (pure RL on the base model) beside R1 (four stages), and distillation."""
    c = Canvas(14.2, 8.2, "DeepSeek-R1-Zero vs DeepSeek-R1: what was trained, in what order")
    c.note(2.1, 7.35, "R1-Zero", fontsize=12, style="italic")
    zbase = c.box(2.1, 6.5, "DeepSeek-V3-Base\n(no SFT)", w=2.8, h=0.85, color=FROZEN, bold=True)
    zrl = c.box(2.1, 4.6, "GRPO, rule-based rewards\naccuracy + format\n(no SFT, no curated "
                "traces)", w=3.3, h=1.3, color=COMPUTE)
    zero = c.box(2.1, 2.7, "R1-Zero", w=2.2, h=0.8, color=TRAINED, bold=True)
    c.arrow(zbase, zrl)
    c.arrow(zrl, zero)
    c.note(2.1, 1.8, "reasons well, long CoT;\nbut poor readability,\nlanguage mixing", fontsize=9)

    c.note(8.2, 7.35, "R1: four stages", fontsize=12, style="italic")
    base = c.box(5.7, 6.5, "DeepSeek-V3-Base", w=2.5, h=0.7, color=FROZEN, bold=True)
    s1 = c.box(8.9, 6.5, "① cold-start SFT\nthousands of long CoT\n(readable format)",
               w=3.0, h=1.15, color=COMPUTE)
    s2 = c.box(12.3, 6.5, "② reasoning RL (GRPO)\nrule rewards + language-\nconsistency reward",
               w=3.1, h=1.15, color=COMPUTE)
    s3 = c.box(12.3, 4.3, "③ rejection sampling\nkeep correct, readable\n~600k reasoning + "
               "~200k\nnon-reasoning samples", w=3.1, h=1.45, color=DATA)
    s3b = c.box(8.9, 4.3, "SFT of V3-Base\non the ~800k samples\n(2 epochs)", w=3.0,
                h=1.15, color=COMPUTE)
    s4 = c.box(5.7, 4.3, "④ RL for all scenarios\nrule rewards (reasoning)\n+ reward models "
               "(helpful,\nharmless)", w=2.9, h=1.45, color=COMPUTE)
    r1 = c.box(5.7, 2.3, "DeepSeek-R1", w=2.5, h=0.8, color=TRAINED, bold=True)
    c.arrow(base, s1)
    c.arrow(s1, s2)
    c.arrow(s2, s3, "sample from\nthe RL checkpoint", text_offset=(1.05, -0.2), fontsize=8.5)
    c.arrow(s3, s3b)
    c.arrow(s3b, s4)
    c.arrow(s4, r1)

    distill = c.box(11.3, 2.3, "SFT only (no RL) of Qwen2.5 /\nLlama 1.5B-70B → R1-Distill",
                    w=3.9, h=0.95, color=TRAINED, bold=True)
    c.arrow((11.3, 3.57), distill, "distillation: the same\n~800k samples",
            color=HIGHLIGHT, text_offset=(1.45, -0.15), fontsize=8.5)
    c.note(9.3, 1.2, "R1 paper: at small scale, distilling R1 beats running RL on the small "
           "model itself", fontsize=9, color=HIGHLIGHT, style="italic")
    c.legend(0.2, 1.05, [(TRAINED, "released model"), (FROZEN, "starting model"),
                         (COMPUTE, "training stage")])
    return c.fig

DIAGRAMS = {
    "rl_loop": rl_loop_figure,
    "actor_critic": actor_critic_figure,
    "llm_as_rl": llm_as_rl_figure,
    "ppo_pipeline": ppo_pipeline_figure,
    "grpo_pipeline": grpo_pipeline_figure,
    "r1_pipeline": r1_pipeline_figure,
}


def save_all(outdir: str | Path = "images", names=None) -> list[Path]:
    """Write each diagram as ``<name>.svg`` and ``<name>.png`` into ``outdir``; return the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context({"svg.hashsalt": "rl-reasoning-course", "svg.fonttype": "path"}):
        for name in names or DIAGRAMS:
            fig = DIAGRAMS[name]()
            for ext, meta in (("svg", {"Date": None}), ("png", {"Software": None})):
                path = outdir / f"{name}.{ext}"
                fig.savefig(path, format=ext, bbox_inches="tight", dpi=150, metadata=meta)
                written.append(path)
            plt.close(fig)
    return written
