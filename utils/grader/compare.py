"""Comparing the final answer with the gold (step 3 of ``POLICY.md``: ``percent``,
``asked-not-mentioned``, ``units``, ``compound-quantities``), with the question where the caller
has it."""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Any

from utils.grader import units
from utils.grader.locate import _WORD_RE, _final_reading, _Reading, completion_text, never_raise
from utils.grader.numerals import Quantity, parse_number

_PERCENT_RE = re.compile(r"%|\bpercent|\bper cent|\bpor ciento|\bpour cent|\bper cento"
                         r"|\bpor cento|\bprozent", re.IGNORECASE)
# The question asks FOR a percentage ("what percent", "as a percentage"), not merely mentions one
# ("if he pays 10% less, how much..."): only then is a money answer the wrong quantity.
_ASKS_PERCENT_RE = re.compile(
    r"\b(?:what|which)\s+(?:[a-z']+\s+){0,3}?(?:percent|per cent|percentage)"
    r"|\bhow many (?:percent|per cent)|\bhow much percent"
    r"|\b(?:in|as an?|as|into)\s+(?:a\s+)?(?:percent|per cent|percentage)s?\b|\bin\s*%"
    r"|\b(?:find|calculate|compute|determine|express|give)\s+(?:[a-z']+\s+){0,3}?"
    r"(?:percent|per cent|percentage)", re.IGNORECASE)
_MONEY_RE = re.compile(r"[$\u00a3\u20ac]|\b(?:dollars?|cents?|money|cost|costs|price|pay|paid"
                       r"|spend|spent|earn|earns|earned|profit|budget|d[o\u00f3]lar(?:es)?|euros?"
                       r"|reais|pesos)\b|\u7f8e\u5143|\u5143|\u94b1", re.IGNORECASE)
# LaTeX maths is not money: "$10\\%$" is ten percent, "$$...$$" a display.
_LATEX_MATHS_RE = re.compile(r"\$\$.*?\$\$|(?<!\\)\$(?=[^$\n]*\\)[^$\n]*(?<!\\)\$", re.DOTALL)
_SCALE_WORDS = {"k": "thousand", "m": "million", "mn": "million", "bn": "billion"}


@functools.lru_cache(maxsize=4096)  # a group's completions share their question
def _asked_sentence(question: str) -> str:
    """The part of the question that asks (its last sentence with a question mark, else its
    last sentence), lower-cased: "how many minutes", "what percentage" are read from it."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", question.strip()) if s]
    asking = [s for s in sentences if "?" in s]
    return (asking[-1] if asking else sentences[-1] if sentences else "").lower()


def _asked_units(asked: str) -> set[str]:
    """The unit names among the asked sentence's words (no one-letter word: "Cara's" is no "s")."""
    return {units.unit_name(w) for w in _WORD_RE.findall(asked) if len(w) > 1}


def _same_compound(answer: Quantity, gold: Fraction, asked: str) -> bool:
    """A quantity stated in several units (``2 hours 40 minutes``, ``60 minutes (1 hour)``) is
    the gold when it is, in the unit the question asks for; when it asks for none of its family,
    in any unit it names."""
    named = dict(answer.readings)
    wanted = {u for u in _asked_units(asked) if any(units.same_family(u, n) for n in named)}
    if wanted:
        return any(named.get(unit) == gold for unit in wanted)
    return gold in named.values()


def _money_in(completion: str) -> bool:
    if "$" in completion and "\\" in completion:
        completion = _LATEX_MATHS_RE.sub(" ", completion)
    return _MONEY_RE.search(completion) is not None


def _same_quantity(answer: Quantity, gold: Fraction, completion: str, question: str) -> bool:
    """Whether the stated answer is the gold quantity: value, magnitude, percent and unit."""
    if not (answer.scale or answer.percent or answer.currency or answer.unit):
        return answer.value == gold  # a bare number: no unit rule applies
    asked = _asked_sentence(question) if question else ""
    if answer.readings:
        return _same_compound(answer, gold, asked)
    value = answer.value
    if answer.scale and asked:
        word = _SCALE_WORDS.get(answer.scale, answer.scale)
        if re.search(rf"\b{word}s?\b", asked):  # "how many dozen", "in millions": a unit here
            value = answer.unscaled
    if value != gold:
        return False
    asks_percent = bool(asked) and _ASKS_PERCENT_RE.search(asked) is not None
    if answer.percent:
        if question:
            return asks_percent or (not _MONEY_RE.search(asked)
                                    and _PERCENT_RE.search(question) is not None)
        mentions = len(_PERCENT_RE.findall(completion))
        return mentions > 1 or not _money_in(completion)
    if asks_percent and answer.currency:
        return False
    unit = "dollar" if answer.currency and not answer.unit.startswith("cent") else answer.unit
    if asked and unit:
        unit = units.unit_name(unit)
        asked_units = _asked_units(asked)
        if unit not in asked_units and any(units.same_family(unit, u) for u in asked_units):
            return False
    return True


@functools.lru_cache(maxsize=4096)  # a group's completions share their gold
def _gold_value(gold: str) -> Fraction | None:
    return parse_number(gold)


def is_correct(completion: Any, gold: Any, question: str | None = None) -> bool:
    """Whether the completion's final answer is the ``gold`` quantity, compared exactly.

    No tolerance and no percent rescaling: ``0.2`` is not ``20``, ``17.99`` is not ``18``. With the
    ``question`` the unit rules of the policy use it ("how many minutes", "what percent").
    """
    gold_value = (never_raise(_gold_value, gold) if isinstance(gold, str)
                  else never_raise(parse_number, gold))
    if not isinstance(gold_value, Fraction):  # None, or 0 from a failed parse
        return False
    text = completion_text(completion)
    question = question if isinstance(question, str) else ""
    reading = never_raise(_final_reading, text, question)
    if not isinstance(reading, _Reading):
        return False
    return never_raise(_same_quantity, reading.quantity, gold_value, text, question) is True

