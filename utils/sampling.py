"""Sampling at the CPU's pace: the decoder of a Llama-family model written out for GRPO rollouts.

``model.generate`` (and the course's :func:`utils.generation.decode`) spend a CPU's time outside
the matrix products that sampling needs: a growing key/value cache re-copied at every token, the
long system prompt's keys and values read once per row, a multinomial draw over 49k tokens,
dozens of small operations per layer. :class:`LeanSampler` keeps only the products:

- **Weights copied once per rollout**, in the sampling precision (bf16 where the CPU has native
  bf16, see :func:`native_bf16`), with the LoRA merged in and q/k/v and gate/up fused into one
  matrix each. The copy is taken from the training model before every rollout, so the sampler
  always follows the policy; the trainer itself stays in fp32.
- **Keys and values of a prompt stored once per group**: the prefix every prompt shares (the
  system prompt) goes through the model once, the rest of each prompt once per question; the
  ``G`` samples of a question attend to one copy of its prompt (one matrix product per group),
  and to their own tokens in a cache allocated up front, written in place.
- **Sampling by inverse CDF**: one cumulative sum and one uniform number per row.
- **The sampler's log-probability of every token it draws** is returned, so that the trainer can
  measure how far its own log-probs are from the sampler's and correct for it
  (:func:`utils.rl.rollout_is_weights`, as TRL does when vLLM samples).

What it leaves out on purpose: speculative guesses for greedy decoding (greedy here is a plain
argmax; the course's evaluations use :func:`utils.generation.decode`, whose tokens are
``model.generate``'s), models other than Llama and
Qwen2 with default rotary embeddings (:meth:`LeanSampler.supports` says no and callers fall back
to :func:`utils.generation.decode`), and dropping single finished rows from the batch (groups
whose rows are all done leave together, once they are an eighth of the batch; a pass over 32
or 64 rows costs about the same on a CPU).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def native_bf16() -> bool:
    """Whether this machine multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX on x86,
    the BF16 extension on Arm, or a CUDA GPU with bf16). Read at run time: the same code runs on
    laptops without it, where bf16 would be emulated and slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = set(handle.read().split())
    except OSError:  # macOS, Windows: not read; fp32 is the safe choice
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def sampling_dtype(precision: str = "auto") -> torch.dtype:
    """The dtype a rollout samples in: ``"auto"`` is bf16 where it is native, else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if native_bf16() else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every row shares (the system prompt and chat header)."""
    shortest = min(len(row) for row in rows)
    for position in range(shortest):
        token = rows[0][position]
        if any(row[position] != token for row in rows):
            return position
    return shortest - 1  # keep at least one token per row for the second stage


def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: the least likely tokens whose total probability stays below
    ``1 - top_p`` get logit -inf (the most likely token is always kept)."""
    sorted_logits, order = logits.sort(dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - top_p
    drop[:, -1] = False
    return logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))


def _base(model):
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _weight(module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A linear layer's effective weight and bias: the base weight plus every active LoRA delta
    (``W + B A * alpha / r``), as the forward pass applies it."""
    base = getattr(module, "base_layer", None)
    if base is None:
        return module.weight, module.bias
    weight = base.weight
    if not getattr(module, "merged", False) and not getattr(module, "disable_adapters", False):
        for name in module.active_adapters:
            if name in module.lora_A:
                weight = weight + module.get_delta_weight(name)
    return weight, base.bias


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # in fp32 whatever the sampling dtype, as transformers' LlamaRMSNorm does (torch's fused
    # F.rms_norm was 20x slower than this in bf16 on a CPU)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class LeanSampler:
    """The policy's decoder in one precision, built from the (fp32, maybe LoRA) training model.

    ``LeanSampler(model, torch.bfloat16).sample(prompts, group_size, ...)`` returns, for every
    prompt and sample, the new token ids and the sampler's log-probability of each.
    """

    @staticmethod
    def supports(model) -> bool:
        config = getattr(_base(model), "config", None)
        rope = getattr(config, "rope_parameters", None) or {}
        return (getattr(config, "model_type", None) in ("llama", "qwen2")
                and rope.get("rope_type", "default") == "default"
                and not getattr(config, "use_sliding_window", False)
                and getattr(config, "hidden_act", "silu") == "silu")

    @torch.no_grad()
    def __init__(self, model, dtype: torch.dtype = torch.float32):
        if not self.supports(model):
            raise ValueError("LeanSampler: only Llama and Qwen2 models with default rotary "
                             "embeddings; use utils.generation.decode for others")
        base = _base(model)
        config = base.config
        self.dtype = dtype
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.theta = config.rope_parameters["rope_theta"]
        inner = base.model

        def cast(t):
            return None if t is None else t.detach().to(dtype).contiguous()

        self.embed = cast(inner.embed_tokens.weight)
        self.layers = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            (wq, bq), (wk, bk), (wv, bv) = _weight(att.q_proj), _weight(att.k_proj), _weight(att.v_proj)
            # the attention's 1/sqrt(d) folded into the queries (the rotation is linear)
            scale = self.head_dim ** -0.5
            wq, bq = wq * scale, None if bq is None else bq * scale
            qkv_bias = None if bq is None else torch.cat([bq, bk, bv])
            self.layers.append({
                "ln1": cast(layer.input_layernorm.weight),
                "qkv": cast(torch.cat([wq, wk, wv])), "qkv_bias": cast(qkv_bias),
                "o": cast(_weight(att.o_proj)[0]),
                "ln2": cast(layer.post_attention_layernorm.weight),
                "gate_up": cast(torch.cat([_weight(mlp.gate_proj)[0], _weight(mlp.up_proj)[0]])),
                "down": cast(_weight(mlp.down_proj)[0]),
            })
        self.norm = cast(inner.norm.weight)
        self.lm_head = cast(_weight(base.lm_head)[0])
        self.device = self.embed.device

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for ``positions`` (any shape), computed in fp32 as transformers does."""
        dim = self.head_dim
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, dim, 2, device=self.device,
                                                      dtype=torch.float32) / dim))
        angles = positions.float()[..., None] * inv_freq
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def _qkv(self, layer: dict, h: torch.Tensor):
        qkv = F.linear(h, layer["qkv"], layer["qkv_bias"])
        d = self.head_dim
        q, k, v = qkv.split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=-1)
        return q, k, v

    def _mlp(self, layer: dict, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(_rms_norm(x, layer["ln2"], self.eps), layer["gate_up"]).chunk(2, -1)
        return x + F.linear(F.silu(gate) * up, layer["down"])

    def _layers(self, x: torch.Tensor, positions: torch.Tensor, allowed: torch.Tensor | None,
                past=None):
        """Rows ``x`` (``(Q, W, hidden)``) through every layer at ``positions``; each layer's
        queries see the keys of ``past`` (that layer's ``(k, v)``, or none) and then their own,
        as ``allowed`` says (``None``: causal). Returns the hidden states and each layer's keys
        and values, ``past``'s then the rows' own: ``(Q, kv_heads, P + W, head_dim)``."""
        q_count, width = x.shape[:2]
        d = self.head_dim
        cos, sin = (t[:, None] for t in self._rope(positions))  # (Q, 1, W, D)
        cache = []
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, _rms_norm(x, layer["ln1"], self.eps))
            q = _rotate(q.view(q_count, width, self.heads, d).transpose(1, 2), cos, sin)
            k = _rotate(k.view(q_count, width, self.kv_heads, d).transpose(1, 2), cos, sin)
            v = v.view(q_count, width, self.kv_heads, d).transpose(1, 2)
            if past is not None:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            cache.append((k.contiguous(), v.contiguous()))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                                 is_causal=allowed is None, enable_gqa=True,
                                                 scale=1.0)  # queries are scaled already
            x = x + F.linear(out.transpose(1, 2).reshape(q_count, width, -1), layer["o"])
            x = self._mlp(layer, x)
        return x, cache

    def _prefill(self, prefix: list[int], ids: torch.Tensor, mask: torch.Tensor):
        """The prompts through the model: ``prefix``, the tokens every prompt starts with (the
        system prompt), once; then the rest of each prompt (``ids``, ``(Q, W)``, left-padded).
        Returns the logits of each prompt's last token and every layer's keys and values
        ``(Q, kv_heads, len(prefix) + W, head_dim)``, the prefix's copied to every prompt."""
        q_count, width = ids.shape
        shared = len(prefix)
        past = None
        if shared:
            positions = torch.arange(shared, device=self.device)[None]
            _, past = self._layers(F.embedding(torch.tensor([prefix], device=self.device),
                                               self.embed), positions, None)
            past = [(k.expand(q_count, -1, -1, -1), v.expand(q_count, -1, -1, -1))
                    for k, v in past]
        positions = shared + (mask.cumsum(1) - 1).clamp(min=0)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        # a padding position may see itself only: no fully masked row, so no NaN anywhere
        allowed = (causal & mask.bool()[:, None, :]) | torch.eye(width, dtype=torch.bool,
                                                                 device=self.device)
        allowed = torch.cat([allowed.new_ones(q_count, width, shared), allowed], -1)[:, None]
        x, cache = self._layers(F.embedding(ids, self.embed), positions, allowed, past)
        last = _rms_norm(x[:, -1], self.norm, self.eps)
        return F.linear(last, self.lm_head).float(), cache

    @torch.no_grad()
    def sample(self, prompts: Sequence[Sequence[int]], group_size: int, max_new_tokens: int,
               eos_ids: Sequence[int], temperature: float = 1.0, top_p: float = 1.0,
               generator: torch.Generator | None = None
               ) -> tuple[list[list[int]], list[list[float]]]:
        """``group_size`` samples for each prompt (token id lists), rows in prompt order:
        ``tokens[i * group_size + j]`` is sample j of prompt i, cut after its end-of-sequence
        token, and ``logps`` the sampler's log-probability (at ``temperature``) of each token."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy); got {temperature}")
        generator = generator or torch.Generator().manual_seed(0)
        eos = torch.tensor(sorted(set(eos_ids)), device=self.device)
        groups, g, d = len(prompts), group_size, self.head_dim
        per_kv = self.heads // self.kv_heads
        shared = common_prefix(prompts)  # the system prompt: through the model once
        rest = [list(p[shared:]) for p in prompts]
        width = max(len(r) for r in rest)
        ids = torch.tensor([[0] * (width - len(r)) + r for r in rest],  # 0: masked
                           device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rest],
                            device=self.device)
        logits, prompt_cache = self._prefill(list(prompts[0][:shared]), ids, mask)
        mask = torch.cat([mask.new_ones(groups, shared), mask], 1)  # the cache's columns
        # prompt padding as an additive bias on the scores: (Q, 1, 1, 1, P)
        bias = torch.zeros(mask.shape, dtype=self.dtype, device=self.device)
        bias = bias.masked_fill(~mask.bool(), float("-inf"))[:, None, None, None, :]
        lengths = mask.sum(1)  # the position of each prompt's first new token
        own = [(torch.zeros(groups, self.kv_heads, g, max_new_tokens, d, dtype=self.dtype,
                            device=self.device),
                torch.zeros(groups, self.kv_heads, g, max_new_tokens, d, dtype=self.dtype,
                            device=self.device)) for _ in self.layers]
        logits = logits.repeat_interleave(g, 0)  # (Q * G, V): each sample starts from its prompt
        tokens = torch.zeros(groups, g, max_new_tokens, dtype=torch.long, device=self.device)
        logps = torch.zeros(groups, g, max_new_tokens, dtype=torch.float32, device=self.device)
        done = torch.zeros(groups, g, dtype=torch.bool, device=self.device)
        length = torch.full((groups, g), max_new_tokens, dtype=torch.long, device=self.device)
        live = torch.arange(groups, device=self.device)  # groups with a row still writing
        for t in range(max_new_tokens):
            if temperature == 0:  # greedy: the most likely token, its log-prob at T = 1
                new = logits.argmax(-1, keepdim=True)
                new_logp = (logits.gather(-1, new) - logits.logsumexp(-1, keepdim=True))
            else:
                if temperature != 1:
                    logits = logits / temperature
                if top_p < 1:
                    logits = filter_top_p(logits, top_p)
                probs = logits.softmax(-1)
                cdf = probs.cumsum(-1)
                draw = torch.rand(len(logits), 1, generator=generator).to(self.device)
                new = torch.searchsorted(cdf, draw * cdf[:, -1:]).clamp_(max=cdf.shape[-1] - 1)
                new_logp = probs.gather(-1, new).log()
            new, new_logp = new.squeeze(-1), new_logp.squeeze(-1)
            tokens[live, :, t] = new.view(len(live), g)
            logps[live, :, t] = new_logp.view(len(live), g)
            stopped = torch.isin(new, eos).view(len(live), g) & ~done[live]
            length[live] = torch.where(stopped, t + 1, length[live])
            done[live] |= stopped
            if t + 1 == max_new_tokens:
                break
            finished = done[live].all(1)
            if finished.all():
                break
            # groups whose samples all ended leave the batch, once they are an eighth of it:
            # each departure copies every layer's cache, and a hundred one-row groups
            # leaving one by one cost more than carrying them a few tokens longer
            if finished.sum() * 8 >= len(live):
                keep = (~finished).nonzero().squeeze(1)
                live, new, bias = live[keep], new.view(-1, g)[keep].reshape(-1), bias[keep]
                prompt_cache = [(k[keep], v[keep]) for k, v in prompt_cache]
                own = [(k[keep], v[keep]) for k, v in own]
            logits = self._step(new, t, lengths[live], prompt_cache, own, bias, g, per_kv)
        rows_tokens, rows_logps = [], []
        for tok_row, logp_row, n in zip(tokens.view(-1, max_new_tokens).tolist(),
                                        logps.view(-1, max_new_tokens).tolist(),
                                        length.view(-1).tolist()):
            rows_tokens.append(tok_row[:n])
            rows_logps.append(logp_row[:n])
        return rows_tokens, rows_logps

    def _step(self, new: torch.Tensor, t: int, lengths: torch.Tensor, prompt_cache, own,
              bias: torch.Tensor, g: int, per_kv: int) -> torch.Tensor:
        """One token for every row of the live groups: the logits of the next token."""
        groups, d, kv = len(lengths), self.head_dim, self.kv_heads
        rows, width = groups * g, own[0][0].shape[3]
        cos, sin = self._rope((lengths + t).repeat_interleave(g))  # (rows, D)
        cos, sin = cos[:, None], sin[:, None]
        # one additive mask for prompt and own scores: prompt padding, and own positions after t
        later = torch.zeros(width, dtype=self.dtype, device=self.device)
        later[t + 1:] = float("-inf")
        mask = torch.cat([bias, later.expand(*bias.shape[:-1], width)], -1)
        x = F.embedding(new, self.embed)  # (rows, hidden)
        for layer, (kp, vp), (ko, vo) in zip(self.layers, prompt_cache, own):
            q, k, v = self._qkv(layer, _rms_norm(x, layer["ln1"], self.eps))
            # queries and keys rotated in one go: (rows, heads + kv, D)
            qk = _rotate(torch.cat([q, k], -1).view(rows, self.heads + kv, d), cos, sin)
            q, k = qk.split([self.heads, kv], dim=1)
            # write this token's key and value into the rows' own cache: (Q, kv, G, T, D)
            ko[:, :, :, t] = k.view(groups, g, kv, d).transpose(1, 2)
            vo[:, :, :, t] = v.view(groups, g, kv, d).transpose(1, 2)
            # queries laid out by group and key/value head: (Q, kv, G, per_kv, D)
            qg = q.reshape(groups, g, kv, per_kv, d).transpose(1, 2).contiguous()
            # the prompt: one product per group and head, its keys read once for G samples
            scores_p = qg.view(groups, kv, g * per_kv, d) @ kp.transpose(-1, -2)
            # the rows' own tokens: the whole cache, later positions masked (a contiguous
            # product is faster than one over the first t + 1 positions)
            scores_o = qg @ ko.transpose(-1, -2)  # (Q, kv, G, per_kv, T)
            scores = torch.cat([scores_p.view(groups, kv, g, per_kv, -1), scores_o], -1)
            probs = (scores + mask).softmax(-1)  # accumulates in fp32 internally
            p_prompt, p_own = probs.split([kp.shape[2], width], dim=-1)
            out = (p_prompt.reshape(groups, kv, g * per_kv, -1) @ vp).view_as(qg)
            out = out + p_own @ vo
            out = out.transpose(1, 2).reshape(rows, self.heads * d)  # back to (rows, hidden)
            x = x + F.linear(out, layer["o"])
            x = self._mlp(layer, x)
        return F.linear(_rms_norm(x, self.norm, self.eps), self.lm_head).float()
