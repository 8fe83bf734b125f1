from utils.prompts import (
    R1_ZERO_TEMPLATE,
    SYSTEM_PROMPT,
    TAGS,
    build_messages,
    build_r1_zero_prompt,
)


def test_system_prompt_names_every_tag():
    for tag in TAGS:
        assert tag in SYSTEM_PROMPT
        assert tag in R1_ZERO_TEMPLATE


def test_build_messages_is_a_trl_conversation():
    messages = build_messages("  What is 2+3?\n")
    assert messages == [{"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": "What is 2+3?"}]


def test_r1_zero_prompt_ends_inside_think():
    prompt = build_r1_zero_prompt("What is 2+3?")
    assert "User: What is 2+3? Assistant: <think>" in prompt
    assert prompt.endswith("<think>")
