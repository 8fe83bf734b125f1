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
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if temperature == 0 and n > 1:
        raise ValueError("greedy decoding (temperature=0) gives n identical samples; use n=1")
    if tokenizer.padding_side != "left":
        tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in prompts]
    eos_ids = _eos_ids(model, tokenizer)
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p}
                if temperature > 0 else {"do_sample": False})
    device = next(model.parameters()).device
    results: list[list[Completion]] = []
    starts = range(0, len(texts), batch_size)
    for index, start in enumerate(tqdm(starts, desc="generating", disable=not progress)):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        torch.manual_seed(seed + index)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, num_return_sequences=n,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids,
                                **sampling)
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        completions = [_to_completion(tokenizer, row, eos_ids) for row in new_tokens]
        results.extend(completions[i:i + n] for i in range(0, len(completions), n))
    return results


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _to_completion(tokenizer, row: torch.Tensor, eos_ids: list[int]) -> Completion:
    tokens = row.tolist()
    stop = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
    kept = tokens if stop is None else tokens[:stop]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    return Completion(text=text, num_tokens=len(kept) + (stop is not None), finished=stop is not None)
