"""The exercise checks: right and wrong answers told apart, answers never printed, never raise."""

import numpy as np
import pytest

from utils.exercises import NOT_ATTEMPTED, check_answer, check_function, check_property, digest


def test_digest_ignores_float_noise_and_sign_of_zero():
    assert digest(0.1 + 0.2) == digest(0.3)
    assert digest(-0.0) == digest(0.0)
    assert digest([1, 2.0]) == digest(np.array([1.0, 2.0]))
    assert digest(0.3) != digest(0.31)
    assert digest(" Forward KL ") == digest("forward kl")


def test_check_answer_right_wrong_and_missing(capsys):
    expected = digest(1.3125)
    assert check_answer("ex", 1.3125, expected)
    assert not check_answer("ex", 1.5, expected, hint="discount every step")
    assert not check_answer("ex", None, expected)
    out = capsys.readouterr().out
    assert "right" in out and "not yet" in out and "discount every step" in out
    assert NOT_ATTEMPTED in out
    assert "1.3125" not in out  # the expected value is never printed


def test_check_answer_survives_unreadable_values(capsys):
    assert not check_answer("ex", object(), digest(1))
    assert "cannot check" in capsys.readouterr().out


def _reference(x, y):
    return x + y


def _unfinished(x, y):
    raise NotImplementedError


def _buggy(x, y):
    return x - y


def _crashing(x, y):
    return x / 0


@pytest.mark.parametrize("candidate, verdict, words", [
    (_reference, True, "3 cases"),
    (_unfinished, False, NOT_ATTEMPTED),
    (_buggy, False, "case 2 of 3 differs"),
    (_crashing, False, "ZeroDivisionError"),
])
def test_check_function(capsys, candidate, verdict, words):
    cases = [(0, 0), (1, 2), (3, 4)]
    assert check_function("ex", candidate, _reference, cases) is verdict
    assert words in capsys.readouterr().out


def test_check_property_says_right_or_not_yet_and_never_raises(capsys):
    assert check_property("Ex", 4, lambda v: v % 2 == 0) is True
    assert check_property("Ex", 3, lambda v: v % 2 == 0, hint="even") is False
    assert check_property("Ex", None, lambda v: True) is False
    assert check_property("Ex", "x", lambda v: 1 / 0) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Ex: right" and out[1] == "Ex: not yet (even)"
    assert "not attempted" in out[2] and "ZeroDivisionError" in out[3]


def test_check_property_counts_an_unwritten_function_as_not_attempted(capsys):
    def unwritten(_):
        raise NotImplementedError

    assert not check_property("Ex", unwritten, lambda f: f(1) == 2)
    assert NOT_ATTEMPTED in capsys.readouterr().out
