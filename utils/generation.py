"""Batched, left-padded Hugging Face generation for chat prompts.

Used wherever the course samples outside the GRPO trainer: the reward lab's groups, the
before/after answers of training, and the CPU path of the GSM8K evaluation.

Why left padding: a decoder-only model continues from the *last* position of each row, so the
prompts must end at the same column; right padding would put pad tokens between prompt and answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from utils.sampling import LeanSampler, common_prefix, filter_top_p, sampling_dtype

Prompt = str | Sequence[dict[str, str]]


@dataclass
class Completion:
    """One generated answer: its text (special tokens removed, as TRL decodes), its length in
    tokens, and whether it stopped at end-of-sequence (False means cut at ``max_new_tokens``)."""

    text: str
    num_tokens: int
    finished: bool


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """A chat prompt (list of messages) through the chat template; a string is used as is."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    n: int = 1,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
    precision: str = "fp32",
) -> list[list[Completion]]:
    """``n`` text completions per chat prompt from a Hugging Face model: ``result[i][j]`` is
    sample j of prompt i (the toy policy's sampler is :func:`utils.toy_tasks.generate`).

    ``temperature=0`` is greedy decoding (then ``n`` must be 1: greedy copies are identical).
    ``batch_size`` counts prompts per forward batch; each batch is seeded with ``seed + index``
    so that a rerun, or a resumed evaluation, samples the same text for the same batch.
    Greedy decoding runs in :func:`decode` (a loop of our own, faster on CPU than
    ``model.generate``, with the same tokens); sampling runs in :class:`utils.sampling.LeanSampler`
    in ``precision`` (``"fp32"``, ``"bf16"``, or ``"auto"``: bf16 where the CPU has it natively).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1; got {temperature}, {top_p}")
    if temperature == 0 and n > 1:
        raise ValueError("greedy decoding (temperature=0) gives n identical samples; use n=1")
    texts = [render_prompt(tokenizer, p) for p in prompts]
    eos = eos_ids(model, tokenizer)
    sampler = (LeanSampler(model, sampling_dtype(precision))
               if temperature > 0 and LeanSampler.supports(model) else None)
    results: list[list[Completion]] = []
    starts = range(0, len(texts), batch_size)
    for index, start in enumerate(tqdm(starts, desc="generating", disable=not progress)):
        prompts_ids = [tokenizer(text, add_special_tokens=False)["input_ids"]
                       for text in texts[start:start + batch_size]]
        generator = torch.Generator().manual_seed(seed + index)
        if sampler is not None:
            new_tokens, _ = sampler.sample(prompts_ids, n, max_new_tokens, eos, temperature,
                                           top_p, generator)
        else:
            rows = [ids for ids in prompts_ids for _ in range(n)]
            new_tokens = decode(model, rows, max_new_tokens, eos, temperature, top_p,
                                generator)
        completions = [_to_completion(tokenizer, row, eos) for row in new_tokens]
        results.extend(completions[i:i + n] for i in range(0, len(completions), n))
    return results


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Greedy argmax, or a sample from the temperature-scaled, top-p-filtered distribution."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_p < 1:
        logits = filter_top_p(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _sdpa_grouped_heads(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                        **kwargs):
    """Transformers' SDPA attention, except that the grouped K/V heads are read in place
    (``enable_gqa``): with a padding mask, transformers copies each K/V head for every query
    head it serves (``repeat_kv``), a large share of a wide batch's time on a CPU."""
    causal = attention_mask is None and query.shape[2] > 1  # a prompt pass with no padding
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=causal, enable_gqa=True)
    return output.transpose(1, 2).contiguous(), None


@contextmanager
def _grouped_attention(model) -> Iterator[None]:
    """Decode with :func:`_sdpa_grouped_heads` when the model uses SDPA; restore it after."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        yield
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register("sdpa_grouped_heads", _sdpa_grouped_heads)
    AttentionMaskInterface.register("sdpa_grouped_heads", ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    config._attn_implementation = "sdpa_grouped_heads"
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


# Greedy decoding guesses ahead while rows x (1 + guesses) stays within this many tokens per
# forward pass. On a 2-core CPU a pass of 16 tokens costs little more than a pass of 4 (the
# weights are read from memory once per pass either way); budgets of 32-64 were slower overall
# than 16, their extra guesses costing more than the accepted ones saved (docs/experiments.md).
DRAFT_TOKENS_PER_STEP = 16
MAX_DRAFT = 6


def _draft(tokens: list[int], k: int) -> list[int]:
    """Up to ``k`` tokens guessed by prompt lookup: what followed the latest earlier occurrence
    of the last 3 tokens (else the last 2) in the prompt and the answer so far. Word problems
    copy names, numbers and the answer template from the prompt, and a looping answer copies
    itself, so the guess is often right; a wrong guess costs only compute."""
    for n in (3, 2):
        if len(tokens) <= n:
            continue
        tail = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start:start + n] == tail:
                return tokens[start + n:start + n + k]
    return []


def _accepted(draft: list[int], predicted: list[int]) -> int:
    """How many leading draft tokens the model itself predicts (greedy verification)."""
    count = 0
    for guess, token in zip(draft, predicted):
        if guess != token:
            break
        count += 1
    return count


@torch.inference_mode()
def decode(model, rows: list[list[int]], max_new_tokens: int, eos_ids: Sequence[int],
           temperature: float = 0.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> list[list[int]]:
    """New token ids for each prompt (lists of ids), stopping at end-of-sequence.

    Four savings over ``model.generate``, none of which changes which tokens come out:

    1. The prefix all rows share (the long system prompt) goes through the model once; its keys
       and values are copied to every row. The rest of each prompt follows, left-padded, once
       per distinct prompt (the n samples of a GRPO group share one prompt pass).
    2. A row that has finished leaves the batch: later steps compute only rows still writing.
    3. One forward call and one argmax per step, no logits processors, only the logits that
       are used are computed, and attention reads the grouped K/V heads in place
       (:func:`_sdpa_grouped_heads`) instead of copying them for every query head.
    4. Greedy decoding guesses ahead (speculative decoding with prompt-lookup drafts): each row
       feeds its last token plus up to ``MAX_DRAFT`` guessed tokens, and one forward pass checks
       them all. A guess is kept only while it equals the model's own argmax, so the output is
       what one-token-at-a-time decoding gives; a rejected guess's cache entry is masked out,
       like padding. On a CPU a pass costs about the same for a few more tokens, so each
       accepted guess is a step saved. Guessing stops while the batch is large.
    Positions and the attention mask are what ``model.generate`` uses for a left-padded batch,
    so greedy decoding gives the same tokens (up to float rounding across batch shapes).
    """
    with _grouped_attention(model):
        return _decode(model, rows, max_new_tokens, eos_ids, temperature, top_p, generator)


def _decode(model, rows: list[list[int]], max_new_tokens: int, eos_ids: Sequence[int],
            temperature: float, top_p: float, generator: torch.Generator | None) -> list[list[int]]:
    from transformers import DynamicCache

    device = next(model.parameters()).device
    generator = generator or torch.Generator().manual_seed(0)
    eos = set(eos_ids)
    pad = next(iter(eos_ids))
    batch = len(rows)
    distinct = list(dict.fromkeys(map(tuple, rows)))  # n samples of a prompt: one prompt pass
    shared = common_prefix(distinct)
    cache = DynamicCache(config=getattr(model, "config", None))
    if shared > 0:
        prefix = torch.tensor([distinct[0][:shared]], device=device)
        model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(distinct))
    suffixes = [list(row[shared:]) for row in distinct]
    width = max(len(s) for s in suffixes)
    input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], device=device)
    mask = torch.tensor([[1] * shared + [0] * (width - len(s)) + [1] * len(s) for s in suffixes],
                        device=device)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
    if len(distinct) < batch:  # each row takes its prompt's cache, mask and first logits
        index = {row: i for i, row in enumerate(distinct)}
        copies = torch.tensor([index[tuple(row)] for row in rows], device=device)
        cache.batch_select_indices(copies)
        mask, logits = mask[copies], logits[copies]
    new = [[t] for t in _next_tokens(logits, temperature, top_p, generator).tolist()]
    outputs: list[list[int]] = [[] for _ in range(batch)]
    alive = list(range(batch))  # original index of each row still in the batch
    while True:
        keep = []
        for slot, (row, tokens) in enumerate(zip(alive, new)):
            room = max_new_tokens - len(outputs[row])
            stop = next((i + 1 for i, t in enumerate(tokens) if t in eos), None)
            outputs[row].extend(tokens[:min(room, stop or room)])
            if stop is None and len(tokens) < room:
                keep.append(slot)
        if not keep:
            return outputs
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask = mask[index]
            alive, new = [alive[s] for s in keep], [new[s] for s in keep]
        last = [tokens[-1] for tokens in new]
        k = min(MAX_DRAFT, DRAFT_TOKENS_PER_STEP // len(alive) - 1) if temperature == 0 else 0
        drafts = [_draft(rows[row] + outputs[row], k) if k > 0 else [] for row in alive]
        k = max(map(len, drafts))
        inputs = torch.tensor([[t] + d + [t] * (k - len(d)) for t, d in zip(last, drafts)],
                              device=device)
        step = torch.arange(k + 1, device=device)
        # a row's next position is the number of tokens it has in the cache (mask = 1), which
        # leaves out padding and rejected guesses
        positions = mask.sum(1, keepdim=True) + step
        logits = model(input_ids=inputs,
                       attention_mask=torch.cat([mask, mask.new_ones(len(alive), k + 1)], 1),
                       position_ids=positions, past_key_values=cache, use_cache=True,
                       logits_to_keep=k + 1).logits
        if k == 0:
            new = [[t] for t in _next_tokens(logits[:, -1], temperature, top_p, generator).tolist()]
            accepted = [0] * len(alive)
        else:
            predicted = logits.argmax(-1).tolist()
            accepted = [_accepted(d, p) for d, p in zip(drafts, predicted)]
            new = [p[:a + 1] for p, a in zip(predicted, accepted)]
        kept = torch.tensor(accepted, device=device)
        mask = torch.cat([mask, (step[None, :] <= kept[:, None]).long()], 1)


def eos_ids(model, tokenizer) -> list[int]:
    """The token ids that end a completion: the model's generation config's, plus the
    tokenizer's end-of-sequence token when the config leaves it out."""
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _to_completion(tokenizer, tokens: list[int], eos_ids: list[int]) -> Completion:
    stop = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    kept = tokens if stop is None else tokens[:stop]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    return Completion(text=text, num_tokens=len(kept) + (stop is not None), finished=stop is not None)


@torch.inference_mode()
def plain_generate_tokens(model, tokenizer, prompts: Sequence[Prompt],
                          max_new_tokens: int) -> list[list[int]]:
    """Greedy tokens from plain ``model.generate`` on one left-padded batch, each row cut after
    its first end-of-sequence: the reference that :func:`generate` must reproduce exactly
    (tests) and beat on speed (``benchmarks/generation.py``)."""
    tokenizer.padding_side = "left"
    eos = eos_ids(model, tokenizer)
    batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt",
                      padding=True, add_special_tokens=False)
    output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
    rows = []
    for row in output[:, batch["input_ids"].shape[1]:].tolist():
        stop = next((i for i, token in enumerate(row) if token in eos), None)
        rows.append(row if stop is None else row[:stop + 1])
    return rows
