"""Unit tests of utils.rewards: numbers, answer extraction, the four TRL rewards, weighting."""

from __future__ import annotations

import inspect
import signal
from fractions import Fraction

import pytest
import torch

from utils.prompts import SYSTEM_PROMPT
from utils.rewards import (
    DEFAULT_WEIGHTS,
    REWARD_FUNCTIONS,
    accuracy_reward,
    completion_text,
    extract_final_answer,
    is_correct,
    parse_number,
    reward_funcs_and_weights,
    score_completions,
    soft_format_reward,
    strict_format_reward,
    tag_count_reward,
)

REASONING = "Janet has 16 eggs.\nShe eats 3 and bakes 4, so 9 are left.\n9 * 2 = 18."
GOOD = f"<think>\n{REASONING}\n</think>\n<answer>\n18\n</answer>"


def conversational(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# ---------------------------------------------------------------------------------- parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18", 18), ("1,234", 1234), ("1,450,000", 1450000), ("$18.00", 18), ("18.", 18),
        ("-3", -3), ("\u22123", -3), ("20%", 20), ("20 percent", 20), ("18 dollars", 18),
        ("018", 18), ("36/2", 18), ("\\frac{36}{2}", 18), ("\\dfrac{1}{2}", Fraction(1, 2)),
        ("1.8e1", 18), ("2.5", Fraction(5, 2)), (".5", Fraction(1, 2)), ("-$3", -3),
        ("\\$18", 18), ("**18**", 18), ("eighteen", 18), ("minus ten", -10),
        ("twenty-one", 21), ("one hundred and five", 105), ("two thousand five hundred", 2500),
        (" 18 ", 18), ("0", 0), ("\u20137", -7), ("negative 7", -7), ("7 below zero", -7),
        ("10 degrees below zero", -10), ("seven below zero", -7), ("276 000", 276000),
        ("276\u00a0000", 276000), ("1\u2009250\u2009000", 1250000), ("2.5 million", 2500000),
        ("93 thousand", 93000), ("14k", 14000), ("$1.2M", 1200000), ("2 dozen", 24),
        ("9.3 \\times 10^{4}", 93000), ("9.3 \u00d7 10^4", 93000), ("1.5 \\cdot 10^{-1}", Fraction(3, 20)),
        ("18 dollars and 0 cents", 18), ("$18 and 50 cents", Fraction(37, 2)),
        ("2 1/2", Fraction(5, 2)), ("2 1/2 miles", Fraction(5, 2)),
    ],
)
def test_parse_number_reads_one_number(text, value):
    assert parse_number(text) == Fraction(value)


def test_parse_number_is_exact_not_float():
    assert parse_number("0.1") + parse_number("0.2") == parse_number("0.3")
    assert parse_number("0.30000000000000004") != parse_number("0.3")
    assert isinstance(parse_number("2.5"), Fraction)


@pytest.mark.parametrize(
    "text",
    ["nan", "NaN", "inf", "-inf", "infinity", "\u221e", "banana", "", "   ", "18 19", "18 or 19",
     "eighteen or nineteen", "1,23", "36/0", "1e999999999", "9" * 5000, "18 and 19 dollars", None,
     "negative -7", "14 km thousand", "-7 below zero",
     True, float("nan"), float("inf"), [18], {"value": 18}],
)
def test_parse_number_refuses_unreadable_or_several(text):
    assert parse_number(text) is None


def test_parse_number_accepts_python_numbers():
    assert parse_number(18) == 18
    assert parse_number(2.5) == Fraction(5, 2)
    assert parse_number(Fraction(1, 3)) == Fraction(1, 3)


# -------------------------------------------------------------------------- extract_final_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, "18"),
        ("<answer>18 (9 eggs x $2)</answer>", "18"),
        ("<answer>9 * 2 = 18</answer>", "18"),
        ("<answer>She sells 9 eggs at $2, making $18.</answer>", "$18"),
        ("\\boxed{18}", "18"),
        ("\\boxed{\\frac{36}{2}}", "\\frac{36}{2}"),
        ("Some work.\n#### 18", "18"),
        ("So the answer is 18.", "18"),
        ("The final answer is $18.00.", "$18.00"),
        ("<think>\nthe answer is 17?\n</think>\nThe answer is 18.", "18"),
        (f"<think>\n{REASONING}\n</think>\n<answer>\n18", "18"),
        ("<answer>18</answer><answer>18</answer>", "18"),
        (conversational(GOOD), "18"),
        (REASONING, "18"),  # no slot, no phrase: the last sentence states the result
        ("The answer is 17. No, the answer is 18.", "18"),  # a revision: the last one is final
        ("\\boxed{17}\nWait, I forgot the 2: \\boxed{18}", "18"),
        ("<think>draft <answer>17</answer>, no</think>\n<answer>18</answer>", "18"),
        ("<Answer> 18 </ANSWER>", "18"), ("< answer >18< /answer >", "18"),
        ("<answer><answer>18</answer></answer>", "18"),
        ("<answer>20 cups (60 - 40)</answer>", "20"), ("<answer>18 = 9 * 2</answer>", "18"),
        ("So the shop sells **42** pencils.", "42"), ("Janet makes $18 every day.", "$18"),
    ],
)
def test_extract_final_answer_reads_the_answer_slot(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<answer>18 19 20</answer>", "<answer>18 or 19</answer>", "<answer>17-19</answer>",
        "<answer>18 \u00b1 1</answer>", "<answer>[18, 19]</answer>", "<answer>18\n19\n20</answer>",
        "<answer>18</answer><answer>19</answer>", "<think>x</think><answer>18</answer>\\boxed{19}",
        "<answer></answer>", "<answer>   </answer> 18", f"<think>\n{REASONING}\n</think>",
        f"<think>\n{REASONING}\n</think>\n<answer>\nno idea\n</answer>",
        "The answer is 17 or 18.", "\\boxed{}", "<answer>NaN</answer>",
        "\\boxed{17} or \\boxed{18}", "\\boxed{17}\n\\boxed{18}", "Is the answer 18?",
        "She probably makes about $18.", "The grader must output 1. The answer is 18.",
        "9 * 2 = 18 so she makes 18 dollars a day and then she also spends part of the money on",
        "<answer>18 = 19</answer>", "<answer>9 * 2 = 3 * 6</answer>",
        "<answer>inf</answer>", "", None, 18, {"content": 18},
    ],
)
def test_extract_final_answer_refuses_missing_hedged_or_conflicting(text):
    assert extract_final_answer(text) is None


def test_a_restatement_of_the_question_is_no_answer():
    question = "Sam has 12 apples. He gives 4 away and buys 4 more. How many apples does he have?"
    assert extract_final_answer("Sam has 12 apples.", question) is None
    assert not is_correct("Sam has 12 apples.", "12", question)
    assert is_correct("Sam has 12 apples.", "12")  # without the question it reads as an answer
    assert is_correct("After giving 4 and buying 4, Sam ends with 12 apples.", "12", question)
    assert is_correct("<answer>12</answer>", "12", question)


@pytest.mark.parametrize(
    ("answer", "gold", "question", "expected"),
    [
        ("320%", "320", "He sells 40 cups at $8. How much money does he make?", False),
        ("$320", "320", "He sells 40 cups at $8. How much money does he make?", True),
        ("20%", "20", "It rose from $50 to $60. By what percent did it rise?", True),
        ("$20", "20", "It rose from $50 to $60. By what percent did it rise?", False),
        ("20%", "20", "A 20% tip is added to each bill. How much is the tip rate?", True),
        ("18 hours", "18", "The trip takes 3 hours less than 21. How many minutes is it?", False),
        ("18 minutes", "18", "The trip takes 3 minutes less than 21. How many minutes is it?", True),
        ("18 cents", "18", "How many dollars does she make?", False),
        ("18 ft", "18", "How many feet of fence does he need?", True),
        ("18 yards", "18", "How many feet of fence does he need?", False),
        ("18 hrs", "18", "How many hours does she work each week?", True),
        ("5 dozen", "5", "She packs 60 eggs. How many dozen does she pack?", True),
        ("5 dozen", "60", "She packs 5 dozen eggs. How many eggs does she pack?", True),
        ("2.5 million", "2.5", "How many millions of people live there?", True),
        ("2.5 million", "2.5", "How many people live there?", False),
    ],
)
def test_units_and_magnitudes_follow_the_question(answer, gold, question, expected):
    assert is_correct(f"<answer>{answer}</answer>", gold, question) is expected


def test_percent_without_the_question_uses_the_completion():
    money = "<think>\n40 * $8 = $320\n</think>\n<answer>\n320%\n</answer>"
    ratio = "<think>\n10 / 50 = 20%\n</think>\n<answer>\n20%\n</answer>"
    assert not is_correct(money, "320")
    assert is_correct(ratio, "20")


def test_empty_answer_never_falls_back_to_the_reasoning():
    completion = "<think>\nSo it is 18.\n</think>\n<answer>\n\n</answer>"
    assert extract_final_answer(completion) is None
    assert not is_correct(completion, "18")


def test_an_overlong_answer_slot_is_not_one_final_answer():
    assert extract_final_answer("<answer>" + " " * 20_000 + "18</answer>") is None
    assert extract_final_answer("<answer>" + " " * 5_000 + "18</answer>") == "18"


def test_multiline_reasoning_is_read():
    reasoning = "\n".join(f"line {i}" for i in range(50))
    assert extract_final_answer(f"<think>\n{reasoning}\n</think>\n<answer>\n7\n</answer>") == "7"


# ------------------------------------------------------------------------------------ is_correct


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        (GOOD, "18", True), (GOOD, "18.0", True), (GOOD, 18, True), (GOOD, "17", False),
        ("<answer>0.2</answer>", "20", False), ("<answer>20%</answer>", "20", True),
        ("<answer>17.99</answer>", "18", False), ("<answer>1,234</answer>", "1234", True),
        ("<answer>-3</answer>", "3", False), (GOOD, None, False), (GOOD, "eighteen", True),
        ("<answer>2.5 million</answer>", "2500000", True), ("<answer>2.5 million</answer>", "2.5", False),
        ("<answer>negative 7</answer>", "-7", True), ("<answer>\u20137</answer>", "7", False),
        (GOOD, "not a number", False), ("<answer>18 or 19</answer>", "18", False),
    ],
)
def test_is_correct_is_exact(completion, gold, expected):
    assert is_correct(completion, gold) is expected


# ------------------------------------------------------------------------------ completion_text


def test_completion_text_handles_plain_and_conversational():
    assert completion_text("abc") == "abc"
    assert completion_text(conversational("abc")) == "abc"
    assert completion_text({"role": "assistant", "content": "abc"}) == "abc"
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]
    assert completion_text(parts) == "a"
    assert completion_text([{"role": "user", "content": "no"}, {"role": "assistant",
                                                                  "content": "yes"}]) == "yes"


@pytest.mark.parametrize("value", [None, 3, 2.5, b"bytes", object(), [1, 2], [{"content": None}]])
def test_completion_text_of_unusable_input_is_empty(value):
    assert completion_text(value) == ""


# ---------------------------------------------------------------------------- reward functions


def test_accuracy_reward_one_float_per_completion():
    completions = [GOOD, GOOD.replace("\n18\n", "\n17\n"), "<answer>18 or 19</answer>", None]
    assert accuracy_reward(completions, answer=["18"] * 4) == [1.0, 0.0, 0.0, 0.0]


def test_accuracy_reward_conversational_matches_plain():
    completions = [GOOD, "<answer>17</answer>"]
    golds = ["18", "18"]
    assert accuracy_reward([conversational(c) for c in completions], answer=golds) == \
        accuracy_reward(completions, answer=golds) == [1.0, 0.0]


def test_accuracy_reward_without_gold_scores_zero():
    assert accuracy_reward([GOOD, GOOD]) == [0.0, 0.0]
    assert accuracy_reward([GOOD, GOOD], answer=["18"]) == [1.0, 0.0]  # too few golds
    assert accuracy_reward([GOOD, GOOD], answer="18") == [1.0, 1.0]  # one gold for all


def test_rewards_accept_trl_call_convention():
    """TRL 1.15 passes prompts, completion_ids, dataset columns and trainer_state as keywords."""
    kwargs = {"prompts": [[{"role": "user", "content": "q"}]], "completions": [conversational(GOOD)],
              "completion_ids": [[1, 2, 3]], "answer": ["18"], "question": ["q"],
              "trainer_state": object(), "log_extra": print, "log_metric": print}
    for name, function in REWARD_FUNCTIONS.items():
        rewards = function(**kwargs)
        assert len(rewards) == 1 and isinstance(rewards[0], float), name
    assert accuracy_reward(**kwargs) == [1.0]


def test_trl_calls_reward_functions_this_way():
    """Guard against a TRL upgrade that changes the call: the keywords we rely on are still there."""
    from trl.trainer import grpo_trainer

    source = inspect.getsource(grpo_trainer.GRPOTrainer._calculate_rewards)
    assert "prompts=prompts, completions=completions, completion_ids=completion_ids_list" in source
    assert 'reward_kwargs["trainer_state"]' in source


def test_strict_format_reward():
    assert strict_format_reward([GOOD]) == [1.0]
    assert strict_format_reward(["\n" + GOOD + "\n"]) == [1.0]  # surrounding whitespace is fine
    wrong = [
        "<think>one line</think><answer>18</answer>",  # no newlines around the sections
        GOOD + " trailing text",
        "preamble " + GOOD,
        f"<think>\n{REASONING}\n</think>\n\n<answer>\n18\n</answer>",  # blank line between blocks
        "<think>\n\n</think>\n<answer>\n18\n</answer>",  # empty reasoning
        f"<think>\n{REASONING}\n</think>\n<answer>\n\n</answer>",  # empty answer
        GOOD + "\n<answer>\n18\n</answer>",  # duplicated tag
        f"<answer>\n18\n</answer>\n<think>\n{REASONING}\n</think>",  # wrong order
    ]
    assert strict_format_reward(wrong) == [0.0] * len(wrong)


def test_strict_format_matches_the_system_prompt_layout_filled_in():
    layout = SYSTEM_PROMPT.split("Format:\n", 1)[1]
    filled = layout.replace("...", "9 * 2 = 18", 1).replace("...", "18", 1)
    assert strict_format_reward([filled]) == [1.0]


def test_copying_the_template_earns_no_format_reward():
    """The hack a SmolLM2 CPU run found: the system prompt's layout copied with its ``...``."""
    layout = SYSTEM_PROMPT.split("Format:\n", 1)[1]
    copies = [layout, layout.replace("...", "reasoning", 1), layout.replace("...", "", 1)]
    assert strict_format_reward(copies) == [0.0, 0.0, 0.0]
    assert soft_format_reward(copies) == [0.0, 0.0, 0.0]
    no_reasoning = "<think>\n...\n</think>\n<answer>\n18\n</answer>"
    assert strict_format_reward([no_reasoning]) == [0.0]


def test_soft_format_reward():
    good = [GOOD, "<think>one line</think><answer>18</answer>",
            "<think>a</think>\n\n<answer> 18 </answer>", GOOD + " trailing text"]
    assert soft_format_reward(good) == [1.0] * len(good)
    wrong = ["<answer>18</answer>", "<think>a</think> text <answer>18</answer>",
             "<think>a</think><answer> </answer>", "<think>a</think><answer>18",
             "<answer>18</answer><think>a</think>", GOOD + GOOD]
    assert soft_format_reward(wrong) == [0.0] * len(wrong)


def test_tag_count_reward_gives_partial_credit():
    assert tag_count_reward([GOOD]) == [1.0]
    assert tag_count_reward(["<think>\nreasoning\n</think>"]) == [0.5]
    assert tag_count_reward(["<answer>18</answer>"]) == [0.5]
    assert tag_count_reward(["no tags"]) == [0.0]
    assert tag_count_reward(["<think><think></think><answer>18</answer>"]) == [0.75]
    assert tag_count_reward(["</think><think><answer>18</answer>"]) == [0.5]  # both think misplaced


def test_tag_count_penalises_text_after_the_answer_with_a_cap():
    short, long = tag_count_reward([GOOD + "x" * 100, GOOD + "x" * 100_000])
    assert short == pytest.approx(1.0 - 0.1)
    assert long == pytest.approx(0.75)


def test_format_rewards_are_multiline_safe():
    reasoning = "\n".join(f"step {i}: {i} + 1 = {i + 1}" for i in range(40))
    completion = f"<think>\n{reasoning}\n</think>\n<answer>\n40\n</answer>"
    scores = score_completions([completion], answer=["40"])[0]
    assert scores == {"accuracy": 1.0, "strict_format": 1.0, "soft_format": 1.0,
                      "tag_count": 1.0, "total": 1.75}


def test_reward_functions_return_floats_for_odd_inputs():
    odd = [None, 0, 1.5, {}, [], [{"role": "assistant"}], "\x00\ud800", "\u202e18", "x" * 1_000_000]
    for name, function in REWARD_FUNCTIONS.items():
        rewards = function(odd, answer=["18"] * len(odd))
        assert len(rewards) == len(odd), name
        assert all(type(r) is float for r in rewards), name


def test_large_inputs_finish_without_catastrophic_backtracking():
    """1 MB adversarial completions. A hang guard only (timings are in benchmarks/rewards.py)."""
    size = 1_000_000
    inputs = [
        "1" * size, "1," * (size // 2), "<answer>" * (size // 8), "\\boxed{1}" * (size // 9),
        "the answer is " * (size // 14), "<answer>is 1 " * (size // 13), "\\boxed{" + "{" * size,
        "<answer>" + "1 2 " * (size // 4), "-" * size, "1e" * (size // 2), "#### 1\n" * (size // 7),
        "<think>" * (size // 7), "</answer>" * (size // 9), "1/" * (size // 2),
        "111," * (size // 4) + "1111", "<answer>1 " + "a" * size + " 2</answer>",
        "<answer>1" + " " * size + "x5</answer>", "<answer>1 2 " + "(a" * (size // 2),
        "<answer>" + "1 = " * (size // 4) + "2 3", "The answer is " + "1 " * (size // 2),
        "#### " + "1 " * (size // 2), "<answer>" + "\\text{" * (size // 6) + "1 2</answer>",
        "1.150 " + "1 x " * (size // 4), "1.150 x 2 = " * (size // 12), "1 hours (" * (size // 9),
        "So it took 2 hours 3 " * (size // 21), "<answer>" + "cuarenta y " * 900 + "</answer>",
        "The answer is " + "forty two " * (size // 10), "\u5341" * size, "1'000 " * (size // 6),
    ]

    def hang(signum, frame):
        raise TimeoutError("a reward took over 120 s on 1 MB: catastrophic backtracking?")

    guard = hasattr(signal, "SIGALRM")  # not on Windows: there the test just runs unguarded
    if guard:
        previous = signal.signal(signal.SIGALRM, hang)
        signal.alarm(120)
    try:
        for function in REWARD_FUNCTIONS.values():
            assert len(function(inputs, answer=["1"] * len(inputs))) == len(inputs)
        answers = [extract_final_answer(text) for text in inputs]
        assert all(answer is None or parse_number(answer) is not None for answer in answers)
        assert answers[0] is None and answers[3] == "1"  # a bare number; 111,111 agreeing boxes
    finally:
        if guard:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- weights and totals


def test_reward_funcs_and_weights_defaults_drop_zero_weights():
    functions, weights = reward_funcs_and_weights()
    expected = [name for name, weight in DEFAULT_WEIGHTS.items() if weight != 0]
    assert functions == [REWARD_FUNCTIONS[name] for name in expected]
    assert weights == [DEFAULT_WEIGHTS[name] for name in expected]
    assert len(functions) == len(weights) > 0


def test_reward_funcs_and_weights_custom():
    functions, weights = reward_funcs_and_weights({"accuracy": 2.0, "soft_format": 0.5,
                                                   "tag_count": 0.0})
    assert functions == [accuracy_reward, soft_format_reward]
    assert weights == [2.0, 0.5]


@pytest.mark.parametrize("weights", [{"acuracy": 1.0}, {"format": 1.0, "accuracy": 1.0}])
def test_unknown_reward_name_is_a_clear_error(weights):
    with pytest.raises(ValueError, match="unknown reward name"):
        reward_funcs_and_weights(weights)


def test_non_finite_weight_is_an_error():
    with pytest.raises(ValueError, match="finite"):
        reward_funcs_and_weights({"accuracy": float("nan")})
    with pytest.raises(TypeError, match="number"):
        score_completions([GOOD], ["18"], {"accuracy": "1"})


def test_default_weights_put_correctness_first():
    """A well-formatted wrong answer must score below any correct answer."""
    best_format = sum(w for name, w in DEFAULT_WEIGHTS.items() if name != "accuracy")
    assert best_format < DEFAULT_WEIGHTS["accuracy"]
    wrong, bare_right = score_completions([GOOD.replace("\n18\n", "\n17\n"), "\\boxed{18}"], "18")
    assert wrong["total"] < bare_right["total"]


def test_score_completions_total_is_what_trl_sums():
    completions = [GOOD, "<answer>17</answer>", "<think>x</think><answer>18</answer> junk", None]
    weights = {"accuracy": 1.0, "strict_format": 0.3, "soft_format": 0.2, "tag_count": 0.7}
    scores = score_completions(completions, ["18"] * 4, weights)
    functions, reward_weights = reward_funcs_and_weights(weights)
    per_func = torch.tensor([f(completions=completions, answer=["18"] * 4) for f in functions]).T
    trl_total = (per_func * torch.tensor(reward_weights).unsqueeze(0)).nansum(dim=1)  # as TRL does
    assert [row["total"] for row in scores] == pytest.approx(trl_total.tolist(), abs=1e-6)
    assert set(scores[0]) == set(REWARD_FUNCTIONS) | {"total"}
    assert scores[0]["accuracy"] == 1.0 and scores[1]["accuracy"] == 0.0


def test_score_completions_reports_zero_weight_parts():
    row = score_completions([GOOD], ["18"], {"accuracy": 1.0})[0]
    assert row["strict_format"] == 1.0 and row["total"] == 1.0


def test_score_completions_with_all_weights_zero_is_a_float_zero():
    row = score_completions([GOOD], ["18"], {})[0]
    assert row["total"] == 0.0 and type(row["total"]) is float
    assert reward_funcs_and_weights({}) == ([], [])
