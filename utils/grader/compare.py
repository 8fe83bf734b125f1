"""Comparing the final answer with the gold (rules 5-7 of ``POLICY.md``): value, magnitude,
percent and unit, with the question where the caller has it."""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Any

from utils.grader.locate import _WORD_RE, _final_reading, _Reading, _safe, completion_text
from utils.grader.numerals import Quantity, parse_number

_PERCENT_RE = re.compile(r"%|\bpercent|\bper cent", re.IGNORECASE)
_MONEY_RE = re.compile(r"[$\u00a3\u20ac]|\b(?:dollars?|cents?|money|cost|costs|price|pay|paid"
                       r"|spend|spent|earn|earns|earned|profit|budget)\b", re.IGNORECASE)
_SCALE_WORDS = {"k": "thousand", "m": "million", "mn": "million", "bn": "billion"}
_UNIT_FAMILIES = (
    frozenset({"second", "minute", "hour", "day", "week", "month", "year"}),
    frozenset({"inch", "foot", "yard", "mile", "millimeter", "centimeter", "meter", "kilometer"}),
    frozenset({"gram", "kilogram", "ounce", "pound", "ton"}),
    frozenset({"milliliter", "liter", "gallon", "quart", "pint", "cup"}),
    frozenset({"dollar", "cent"}),
)
_UNIT_ALIASES = {
    "sec": "second", "min": "minute", "hr": "hour", "ft": "foot", "feet": "foot", "yd": "yard",
    "mi": "mile", "mm": "millimeter", "cm": "centimeter", "meter": "meter", "metre": "meter",
    "km": "kilometer", "kilometre": "kilometer", "centimetre": "centimeter",
    "millimetre": "millimeter", "g": "gram", "kg": "kilogram", "oz": "ounce", "lb": "pound",
    "ml": "milliliter", "litre": "liter", "millilitre": "milliliter", "usd": "dollar",
    "buck": "dollar",
}


def _unit_name(word: str) -> str:
    """``Minutes`` -> ``minute``, ``feet`` -> ``foot``, ``lbs`` -> ``pound``, ``km`` ->
    ``kilometer``: one name per unit."""
    word = word.lower()
    if word not in _UNIT_ALIASES and len(word) > 2:
        word = word.removesuffix("s")
    return _UNIT_ALIASES.get(word, word)


@functools.lru_cache(maxsize=4096)  # a group's completions share their question
def _asked_sentence(question: str) -> str:
    """The part of the question that asks (its last sentence with a question mark, else its
    last sentence), lower-cased: "how many minutes", "what percentage" are read from it."""
    sentences = [s for s in re.split(r"(?<=[.?!])\s+", question.strip()) if s]
    asking = [s for s in sentences if "?" in s]
    return (asking[-1] if asking else sentences[-1] if sentences else "").lower()


def _same_quantity(answer: Quantity, gold: Fraction, completion: str, question: str) -> bool:
    """Whether the stated answer is the gold quantity: value, magnitude, percent and unit."""
    if not (answer.scale or answer.percent or answer.currency or answer.unit):
        return answer.value == gold  # a bare number: no unit rule applies
    asked = _asked_sentence(question) if question else ""
    value = answer.value
    if answer.scale and asked:
        word = _SCALE_WORDS.get(answer.scale, answer.scale)
        if re.search(rf"\b{word}s?\b", asked):  # "how many dozen", "in millions": a unit here
            value = answer.unscaled
    if value != gold:
        return False
    asks_percent = bool(asked) and _PERCENT_RE.search(asked) is not None
    if answer.percent:
        if question:
            return asks_percent or (not _MONEY_RE.search(asked)
                                    and _PERCENT_RE.search(question) is not None)
        mentions = len(_PERCENT_RE.findall(completion))
        return mentions > 1 or not _MONEY_RE.search(completion)
    if asks_percent and answer.currency:
        return False
    unit = "dollar" if answer.currency and not answer.unit.startswith("cent") else answer.unit
    if asked and unit:
        unit = _unit_name(unit)
        asked_units = {_unit_name(w) for w in _WORD_RE.findall(asked)}
        for family in _UNIT_FAMILIES:
            if unit in family and (asked_units & family) and unit not in asked_units:
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
    gold_value = _safe(_gold_value, gold) if isinstance(gold, str) else _safe(parse_number, gold)
    if not isinstance(gold_value, Fraction):  # None, or 0 from a failed parse
        return False
    text = completion_text(completion)
    question = question if isinstance(question, str) else ""
    reading = _safe(_final_reading, text, question)
    if not isinstance(reading, _Reading):
        return False
    return _safe(_same_quantity, reading.quantity, gold_value, text, question) is True

