"""The instruction to think in <think> tags and answer in <answer> tags, in two forms.

- ``SYSTEM_PROMPT`` + :func:`build_messages`: what the course trains with. TRL applies the chat
  model's template (Qwen2.5-Instruct, SmolLM2-Instruct) to the ``prompt`` column.
- ``R1_ZERO_TEMPLATE`` + :func:`build_r1_zero_prompt`: the plain-text template of DeepSeek-R1-Zero
  (DeepSeek-AI, 2025, Table 1), for base models without a chat template, with one addition: the
  paper's template ends with "User: prompt. Assistant:"; ours appends an opening ``<think>`` after
  "Assistant:", a prefill so that the completion starts inside the reasoning. Completions of this
  template therefore have no opening ``<think>`` (see :mod:`utils.rewards`).

The two differ on purpose. R1-Zero's template is content-free: it fixes the format and nothing
else, so that whatever reasoning behaviour appears (longer chains, re-checking) comes from RL, not
from the prompt. The course's system prompt adds content: a persona ("careful math tutor"), "step
by step", and "only the final numeric answer, with no units". The course trains small *instruct*
models for a few hundred steps, not a base model for thousands: asking for the format and for
step-by-step work gets well-formed, gradable completions from the first step (otherwise most
groups score 0 everywhere and carry no signal), and a bare number is what the grader reads most
reliably. The price: the step-by-step reasoning seen in training is prompted, so this course can
not claim, as the R1 paper does, that such behaviour emerged from RL alone.

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
    """The R1-Zero template around ``question``; the model continues after the opening ``<think>``
    that this course appends to the paper's template (which ends with "Assistant:")."""
    return R1_ZERO_TEMPLATE.format(question=question.strip())
