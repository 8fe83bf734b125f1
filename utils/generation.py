"""Batched, left-padded Hugging Face generation for chat prompts.

Used wherever the course samples outside the GRPO trainer: the reward lab's groups, the
before/after answers of training, and the CPU path of the GSM8K evaluation.

Why left padding: a decoder-only model continues from the *last* position of each row, so the
prompts must end at the same column; right padding would put pad tokens between prompt and answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

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
) -> list[list[Completion]]:
    """``n`` completions for each prompt, in prompt order: ``result[i][j]`` is sample j of prompt i.

    ``temperature=0`` is greedy decoding (then ``n`` must be 1: greedy copies are identical).
    ``batch_size`` counts prompts per forward batch; each batch is seeded with ``seed + index``
    so that a rerun, or a resumed evaluation, samples the same text for the same batch.
    Decoding runs in :func:`decode` (a loop of our own, several times faster on CPU than
    ``model.generate``, with the same greedy tokens).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1; got {temperature}, {top_p}")
    if temperature == 0 and n > 1:
        raise ValueError("greedy decoding (temperature=0) gives n identical samples; use n=1")
    texts = [render_prompt(tokenizer, p) for p in prompts]
    eos_ids = _eos_ids(model, tokenizer)
    results: list[list[Completion]] = []
    starts = range(0, len(texts), batch_size)
    for index, start in enumerate(tqdm(starts, desc="generating", disable=not progress)):
        rows = [tokenizer(text, add_special_tokens=False)["input_ids"]
                for text in texts[start:start + batch_size] for _ in range(n)]
        generator = torch.Generator().manual_seed(seed + index)
        new_tokens = decode(model, rows, max_new_tokens, eos_ids, temperature, top_p, generator)
        completions = [_to_completion(tokenizer, row, eos_ids) for row in new_tokens]
        results.extend(completions[i:i + n] for i in range(0, len(completions), n))
    return results


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the token prefix every row shares (the system prompt and chat header)."""
    shortest = min(len(row) for row in rows)
    for position in range(shortest):
        token = rows[0][position]
        if any(row[position] != token for row in rows):
            return position
    return shortest - 1  # keep at least one token per row for the second stage


def _next_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Greedy argmax, or a sample from the temperature-scaled, top-p-filtered distribution."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_p < 1:
        # Nucleus: drop the least likely tokens whose total probability stays below 1 - top_p.
        sorted_logits, order = logits.sort(dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - top_p
        drop[:, -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


@torch.inference_mode()
def decode(model, rows: list[list[int]], max_new_tokens: int, eos_ids: Sequence[int],
           temperature: float = 0.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> list[list[int]]:
    """New token ids for each prompt (lists of ids), stopping at end-of-sequence.

    Three savings over ``model.generate``, none of which changes the arithmetic of a row:

    1. The prefix all rows share (the long system prompt) goes through the model once; its keys
       and values are copied to every row. The rest of each prompt follows, left-padded.
    2. A row that has finished leaves the batch: later steps compute only rows still writing.
    3. One forward call and one argmax per step, no logits processors, and only the last
       position's logits are computed.
    Positions and the attention mask are what ``model.generate`` uses for a left-padded batch,
    so greedy decoding gives the same tokens (up to float rounding across batch shapes).
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    generator = generator or torch.Generator().manual_seed(0)
    eos = torch.tensor(list(eos_ids), device=device)
    batch = len(rows)
    shared = _common_prefix(rows)
    cache = DynamicCache(config=getattr(model, "config", None))
    if shared > 0:
        prefix = torch.tensor([rows[0][:shared]], device=device)
        model(input_ids=prefix, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(batch)
    suffixes = [row[shared:] for row in rows]
    width = max(len(s) for s in suffixes)
    pad = eos[0].item()
    input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in suffixes], device=device)
    suffix_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes],
                               device=device)
    mask = torch.cat([torch.ones(batch, shared, dtype=torch.long, device=device), suffix_mask], 1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
    outputs: list[list[int]] = [[] for _ in range(batch)]
    alive = torch.arange(batch, device=device)  # original index of each row still in the batch
    for _ in range(max_new_tokens):
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        tokens = _next_tokens(logits, temperature, top_p, generator)
        for row, token in zip(alive.tolist(), tokens.tolist()):
            outputs[row].append(token)
        done = torch.isin(tokens, eos)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, tokens, mask = alive[keep], tokens[keep], mask[keep]
            positions = positions[keep]
        input_ids = tokens.unsqueeze(1)
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], dim=1)
        positions = positions[:, -1:] + 1
    return outputs


def _eos_ids(model, tokenizer) -> list[int]:
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
    eos_ids = _eos_ids(model, tokenizer)
    batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt",
                      padding=True, add_special_tokens=False)
    output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids)
    rows = []
    for row in output[:, batch["input_ids"].shape[1]:].tolist():
        stop = next((i for i, token in enumerate(row) if token in eos_ids), None)
        rows.append(row if stop is None else row[:stop + 1])
    return rows
