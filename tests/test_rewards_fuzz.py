"""Property tests: the reward functions never raise and always give one float per completion.

A reward that raises on one odd sample kills a training run hours in; one that returns the wrong
number of values is rejected by TRL. Hypothesis throws None, numbers, dicts, lists, message lists,
tag soup, odd unicode and huge strings at them.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.prompts import TAGS
from utils.rewards import REWARD_FUNCTIONS, extract_final_answer, parse_number, score_completions

PIECES = [*TAGS, "\\boxed{", "}", "{", "####", "the answer is ", "=", "-", "\u2212", "$", "%", ",",
          ".", "/", "\\frac{", "or", " ", "\n", "e", "18", "1,234", "nan", "inf", "\u00b1",
          "\u5341\u516b", "\u96f6\u4e0b", "\u7b54\u6848\u662f", "cuarenta y ", "quatre-vingt",
          "zweiundvierzig", "1'875", "1.150 $", " = ", " x ", " hours ", " minutes", "(", ")",
          "\\%", "forty ", "million ", "La respuesta es "]
tag_soup = st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=60).map("".join)
odd_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)
huge_text = st.builds(lambda piece, n: piece * n, st.sampled_from(PIECES), st.integers(0, 200_000))
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["assistant", "user", None, 3]),
                           "content": st.one_of(st.none(), tag_soup, st.integers(),
                                                st.lists(st.dictionaries(st.text(max_size=5),
                                                                         tag_soup, max_size=2)))}),
    max_size=3,
)
completion = st.one_of(
    st.none(), st.integers(), st.floats(), st.booleans(), tag_soup, odd_text, huge_text, messages,
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.lists(st.integers(), max_size=3), st.binary(max_size=10),
)
gold = st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=10),
                 st.sampled_from(["18", "-3", "0.5", "1,234"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions=st.lists(completion, max_size=6), golds=st.lists(gold, max_size=8))
def test_rewards_never_raise_and_return_one_float_each(completions, golds):
    for name, function in REWARD_FUNCTIONS.items():
        rewards = function(completions, answer=golds)
        assert len(rewards) == len(completions), name
        assert all(type(r) is float and math.isfinite(r) for r in rewards), name
    rows = score_completions(completions, golds)
    assert len(rows) == len(completions)
    assert all(type(value) is float for row in rows for value in row.values())


@settings(max_examples=300, deadline=None)
@given(completions=st.one_of(completion, st.tuples(completion, completion)))
def test_rewards_accept_any_completions_argument(completions):
    for function in REWARD_FUNCTIONS.values():
        rewards = function(completions)
        assert all(type(r) is float for r in rewards)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(tag_soup, odd_text, completion))
def test_extraction_never_raises_and_returns_a_readable_answer(text):
    answer = extract_final_answer(text)
    assert answer is None or parse_number(answer) is not None
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)
