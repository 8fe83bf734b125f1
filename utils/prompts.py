"""The instruction to think in <think> tags and answer in <answer> tags, in two forms.

``SYSTEM_PROMPT`` + :func:`build_messages` is what the course trains with (TRL applies the chat
template); ``R1_ZERO_TEMPLATE`` + :func:`build_r1_zero_prompt` is DeepSeek-R1-Zero's content-free
template (DeepSeek-AI, 2025, Table 1) plus our ``<think>`` prefill. Why: taught in 03 §2.
The tags are ordinary text, not special tokens: TRL decodes with ``skip_special_tokens=True``.
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
    """A system + user prompt in the format TRL's GRPOTrainer accepts. Taught in 03 §2."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question.strip()},
    ]


def build_r1_zero_prompt(question: str) -> str:
    """The R1-Zero template around ``question``, ending in our ``<think>`` prefill."""
    return R1_ZERO_TEMPLATE.format(question=question.strip())
