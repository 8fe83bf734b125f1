"""The DeepSeek-R1-Zero style instruction: think in <think> tags, answer in <answer> tags.

Two forms of the same instruction:

- ``SYSTEM_PROMPT`` + :func:`build_messages` for chat models (Qwen2.5-Instruct, SmolLM2-Instruct):
  TRL applies the model's chat template to the ``prompt`` column.
- ``R1_ZERO_TEMPLATE`` + :func:`build_r1_zero_prompt`: the plain-text template of the R1 paper
  (Table 1), for base models without a chat template.

The tags are ordinary text. They must not be tokenizer special tokens: TRL decodes completions with
``skip_special_tokens=True`` and would silently delete them.
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

SYSTEM_PROMPT = (
    "You are a careful math tutor. First think about the problem step by step inside "
    "<think> </think> tags. Then give only the final numeric answer inside <answer> </answer> "
    "tags, with no units and no other text. Format:\n"
    "<think>\n...\n</think>\n<answer>\n...\n</answer>"
)

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {question} Assistant: <think>"
)


def build_messages(question: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """A conversational prompt (system + user) in the format TRL's GRPOTrainer accepts."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question.strip()},
    ]


def build_r1_zero_prompt(question: str) -> str:
    """The plain R1-Zero template; the model continues after the opening ``<think>``."""
    return R1_ZERO_TEMPLATE.format(question=question.strip())
