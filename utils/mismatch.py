"""The sampler/trainer mismatch, made visible: how far the log-probs a fast sampler recorded are
from the ones the trainer computes for the same tokens, per token and per sequence.

RL systems sample with one engine (vLLM: bf16, its own kernels) and train with another, so even
with the same weights the two disagree slightly and the update is slightly off-policy. Notebook
06 measures the gap on the course's bf16 sampler (:mod:`utils.sampling`); the correction is
:func:`utils.rl.rollout_is_weights`. Left out on purpose: statistics TRL does not log (KL or
chi-square between the two policies, effective sample size).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check(trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor) -> None:
    if trainer_logp.dim() != 2 or not trainer_logp.shape == sampler_logp.shape == mask.shape:
        raise ValueError(
            "mismatch: trainer_logp, sampler_logp and mask must share one (B, T) shape; got "
            f"{tuple(trainer_logp.shape)}, {tuple(sampler_logp.shape)}, {tuple(mask.shape)}")


def token_gaps(trainer_logp: Tensor, sampler_logp: Tensor, mask: Tensor) -> Tensor:
    """``log pi_trainer - log pi_sampler`` of every real completion token, as one 1-D tensor
    (fp64, so that a gap of 1e-7 is not rounded away); padding is left out."""
    _check(trainer_logp, sampler_logp, mask)
    diff = trainer_logp.detach().double() - sampler_logp.detach().double()
    return diff[mask.bool()]


def gap_histogram(gaps: Tensor, low: int = -9, high: int = 1) -> dict:
    """Counts of ``|gap|`` per decade from ``10**low`` to ``10**high`` (outside: the end bins),
    for a log-axis histogram; exact zeros cannot sit on a log axis and are counted apart."""
    if low >= high:
        raise ValueError(f"gap_histogram: low ({low}) must be below high ({high})")
    size = gaps.abs().double().flatten()
    zeros = int((size == 0).sum())
    decade = torch.floor(torch.log10(size[size > 0])).clamp(low, high - 1).long() - low
    counts = torch.bincount(decade, minlength=high - low).tolist()
    return {"edges": [10.0 ** e for e in range(low, high + 1)], "counts": counts,
            "zeros": zeros, "n": int(size.numel())}


def plot_mismatch(token: dict[str, Tensor], sequence: dict[str, Tensor], cap: float = 3.0):
    """Two panels on a bare ``Figure`` (no pyplot), one colour per sampler: the histogram of
    ``|log p_trainer - log p_sampler|`` per token (``token``: gaps, a log axis: bf16 and fp32
    differ by orders of magnitude), and of the sequence-level ratio ``pi_trainer(y) /
    pi_sampler(y)`` per completion (``sequence``: ratios) with TRL's cap marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(10, 3.6))
    left, right = fig.subplots(1, 2)
    colors = ("tab:orange", "tab:blue", "tab:green")
    for (name, gaps), color in zip(token.items(), colors):
        hist = gap_histogram(gaps)
        edges = hist["edges"]
        left.stairs(hist["counts"], edges, color=color, lw=2,
                    label=f"{name} sampler ({hist['zeros']} of {hist['n']} exactly 0)")
    left.set(xscale="log", xlabel="|log p trainer - log p sampler| per token",
             ylabel="tokens", title="the gap per token")
    left.legend(fontsize=8, frameon=False)
    ratios = {name: ratio.detach().double().flatten() for name, ratio in sequence.items()}
    everything = torch.cat(list(ratios.values()) + [torch.tensor([0.5, cap]).double()])
    # log-spaced bins shared by both samplers, wide enough to show the cap on either side
    bins = torch.logspace(math.log10(everything.min().item() / 1.1),
                          math.log10(everything.max().item() * 1.1), 41, dtype=torch.float64)
    for (name, ratio), color in zip(ratios.items(), colors):
        right.hist(ratio.numpy(), bins=bins.numpy(), color=color, alpha=0.6,
                   label=f"{name} sampler")
    right.axvline(cap, color="tab:red", ls="--", lw=1)
    right.annotate(f"cap {cap:g}", (cap, 0), xytext=(3, 3), textcoords="offset points",
                   color="tab:red", fontsize=8, xycoords=("data", "axes fraction"))
    right.set(xscale="log", xlabel="pi_trainer(y) / pi_sampler(y) per completion",
              ylabel="completions", title="the sequence-level ratio")
    ticks = sorted({t for t in (0.1, 0.2, 0.5, 1.0, 2.0, cap) if bins[0] <= t <= bins[-1]})
    right.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
    right.xaxis.set_minor_formatter(NullFormatter())  # no crowded labels between them
    right.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def describe(gaps: Tensor) -> str:
    """One line: how many tokens, the mean and largest ``|gap|``, and the share of tokens
    whose ratio is off 1 by more than a hundredth (``|gap| > log 1.01``)."""
    size = gaps.abs()
    if not size.numel():
        return "no tokens"
    share = (size > math.log(1.01)).double().mean().item()
    return (f"{size.numel()} tokens, mean |gap| {size.mean().item():.2e}, max "
            f"{size.max().item():.2e}; {share:.1%} of the tokens have a ratio more than 1% "
            "from 1")
