"""Number reading: the exact value of one number as a model writes it.

:func:`parse_number` and :func:`read_quantity` read digits with their dressing (``1,234``,
``$18.00``, ``\\frac{36}{2}``, ``9.3 \\times 10^{4}``, ``2.5 million``, ``1'875``) into a
``Fraction`` and the words around it that the unit rules need; spelled-out numbers in six languages
and Chinese numerals are first written in digits (:mod:`utils.grader.words`). One quantity stated
in several units (``2 hours 40 minutes``, ``60 minutes (1 hour)``) is read as one, with its value
in each unit. Which number of a completion is its answer is :mod:`utils.grader.locate`'s job; this
module reads one number and refuses several.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from typing import Any, NamedTuple

from utils.grader import units
from utils.grader.words import is_number_word, spelled_to_digits

_MAX_DIGITS = 300  # longer digit strings are not GSM8K answers, and int() refuses > 4300 digits
_MAX_EXPONENT = 300  # 1e999999999 would take minutes to build exactly
_MAX_SLOT_CHARS = 10_000  # an answer slot longer than this is rambling, not a final answer

# Dashes used as minus signs and spaces used as thousands separators, mapped to "-" and " ".
_MINUS_CHARS = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_SPACE_CHARS = "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f"
_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
_SUPERSCRIPT_MAP = str.maketrans(_SUPERSCRIPTS + "\u207b", "0123456789-")
_SUPERSCRIPT_RE = re.compile(f"10([\u207b]?[{_SUPERSCRIPTS}]+)")
_FULL_WIDTH = {chr(0xFF10 + i): str(i) for i in range(10)} | {"\uff05": "%", "\uff04": "$"}
_CHAR_MAP = str.maketrans({**dict.fromkeys(_MINUS_CHARS, "-"), **dict.fromkeys(_SPACE_CHARS, " "),
                           **_FULL_WIDTH})
_ODD_CHARS_RE = re.compile(f"[{_MINUS_CHARS}{_SPACE_CHARS}{''.join(_FULL_WIDTH)}]")
# Swiss grouping, 1'875 or 1’875: an apostrophe never marks decimals.
_APOSTROPHE_HINT_RE = re.compile(r"'\d{3}")  # a fast first look: a literal first, no lookbehind
_APOSTROPHE_GROUPS_RE = re.compile(r"(?<![\d'\u2019])\d{1,3}(?:['\u2019]\d{3})+(?![\d'\u2019])")

_SCALE_FACTORS = {
    "hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12,
    "dozen": 12, "k": 10**3, "m": 10**6, "mn": 10**6, "bn": 10**9,
}
# A magnitude word after the number, or k/M/bn glued to it (``14k``; not ``14 km``, not ``5m``).
_SCALE = (r"(?:\s*(?:hundred|thousand|million|billion|trillion|dozen)s?\b"
          r"|(?:k|K|M|mn|bn)(?![A-Za-z]))")
_PERCENT = (r"(?:%|percent\b|per cent\b|por ciento\b|pour cent\b|per cento\b|por cento\b"
            r"|prozent\b)")
_TIMES_TEN = r"\s*(?:\\times|\\cdot|\u00d7|\u00b7|\*|x)\s*10\s*\^\s*\{?\s*[-+]?\d+\s*\}?"

# One number as written in a completion: sign, currency, digits (thousands commas or spaces only
# in groups of three), decimals, exponent or "x 10^n", a/b or \frac{a}{b}, magnitude, percent.
# No nested quantifiers: linear time.
_NUMBER = (
    r"(?:(?<![0-9A-Za-z_)\]}])-(?=[$\u00a3\u20ac\d.\\]))?[$\u00a3\u20ac]?"
    r"(?:\\[dt]?frac\{\s*\d+\s*\}\{\s*\d+\s*\}|\d{1,6} \d{1,6}/\d{1,6}(?![\d.])"
    r"|(?:\d{1,3}(?:,\d{3}(?!\d))+|\d{1,3}(?: \d{3}(?!\d))+|\d+)(?:\.\d+)?"
    r"(?:[eE][-+]?\d+|" + _TIMES_TEN + r")?(?:/\d+(?![\d.]))?"
    r"|\.\d+)" + _SCALE + r"?(?:\s*" + _PERCENT + r")?"
)
_NUMBER_RE = re.compile(_NUMBER)
_FULL_NUMBER_RE = re.compile(
    r"(?P<sign>[-+])?\s*+(?P<cur>[$\u00a3\u20ac])?\s*+(?P<sign2>-)?"
    r"(?:\\[dt]?frac\{\s*(?P<fn>\d+)\s*\}\{\s*(?P<fd>\d+)\s*\}"
    r"|(?P<mw>\d{1,6}) (?P<mn>\d{1,6})/(?P<md>\d{1,6})"
    r"|(?P<int>\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)?(?:\.(?P<dec>\d*))?"
    r"(?:[eE](?P<exp>[-+]?\d+)"
    r"|\s*(?:\\times|\\cdot|\u00d7|\u00b7|\*|x)\s*10\s*\^\s*\{?\s*(?P<exp10>[-+]?\d+)\s*\}?)?"
    r"(?:/(?P<den>\d+))?)"
    r"(?P<scale>" + _SCALE + r")?"
    r"\s*+(?P<pct>" + _PERCENT + r")?(?P<rest>[^\d<>{}\\=]*)"
)
# "18 dollars and 50 cents", "$18 and 0 cents": the cents are part of the amount.
_DOLLARS_CENTS_RE = re.compile(
    r"(?P<sign>-)?\s*\$?\s*(?P<dollars>\d{1,3}(?:,\d{3})+|\d+)\s*(?:dollars?|bucks?)?\s*"
    r"(?:and\s+|,\s*)?(?P<cents>\d{1,2})\s*cents?\b[\s.]*",
    re.IGNORECASE,
)
_SIGN_WORD_RE = re.compile(
    r"(?:negative|minus|menos|moins|meno|negativo)\s+(?=[$\u00a3\u20ac\d.\\])", re.IGNORECASE)
_BELOW_ZERO_RE = re.compile(r"\bbelow (?:zero|0)\b", re.IGNORECASE)
_INLINE_MATHS_RE = re.compile(r"(?<!\\)\$([^$\n]*\\[^$\n]*?)(?<!\\)\$")
_LATEX_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|textit)\{([^{}]*)\}")
_CURRENCY_WORD_RE = re.compile(
    r"\s*(?:dollars?|cents?|usd|bucks?|d[o\u00f3]lar(?:es)?|dollari|euros?|reais|pesos?|yuan)\b"
    r"|\s*(?:[$\u00a3\u20ac]|\u7f8e\u5143|\u5143|\u5757)", re.IGNORECASE)

# English number words of a question ("She buys three apples") for the restatement rules.
_WORD_UNITS = {word: value for value, word in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_WORD_TENS = {word: 10 * value for value, word in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2)}


class Quantity(NamedTuple):
    """A number as written: its exact value and what is written around it (for the unit rules)."""

    value: Fraction
    unscaled: Fraction  # the value before a magnitude word: 2.5 for "2.5 million"
    scale: str  # the magnitude word, lower-cased and singular ("million", "k"), or ""
    percent: bool  # written with % or "percent"
    currency: bool  # written with $, £, € or followed by "dollars", "cents"
    unit: str  # the first word after the number, lower-cased ("minutes"), or ""
    # one quantity in several units ("2 hours 40 minutes"): (unit name, value) for each unit it
    # names, as in (("hour", 8/3), ("minute", 160)); empty for a number in one unit
    readings: tuple[tuple[str, Fraction], ...] = ()


def _normalise(text: str) -> str:
    """Dashes used as minus signs become ``-``; no-break and thin spaces become spaces; full-width
    digits become digits; superscript powers of ten (``10\u2074``) become ``10^4``; Swiss
    ``1'875`` becomes ``1,875``."""
    if ("'" in text and _APOSTROPHE_HINT_RE.search(text)) or "\u2019" in text:
        text = _APOSTROPHE_GROUPS_RE.sub(lambda m: re.sub("['\u2019]", ",", m.group()), text)
    if text.isascii():
        return text
    if _ODD_CHARS_RE.search(text):
        text = text.translate(_CHAR_MAP)
    if "10" in text and _SUPERSCRIPT_RE.search(text):
        text = _SUPERSCRIPT_RE.sub(lambda m: "10^" + m[1].translate(_SUPERSCRIPT_MAP), text)
    return text


def _clean_number_text(text: str) -> str:
    """Undo LaTeX and markdown dressing: ``\\$18``, ``18\\%``, ``\\text{ dollars}``, ``**18**``,
    inline maths ``$15\\%$``."""
    if "\\" in text:
        text = _LATEX_WRAPPER_RE.sub(r"\1", text)
        if "$" in text:
            text = _INLINE_MATHS_RE.sub(r"\1", text)
    for old, new in (("\\$", "$"), ("\\%", "%"), ("{,}", ","), ("\\,", ""), ("\\!", ""),
                     ("\\left", ""), ("\\right", ""), ("\\ ", " "),
                     ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", "")):
        if old in text:
            text = text.replace(old, new)
    text = text.strip().strip("*`_ ").rstrip(".").strip()
    if len(text) > 2 and text[0] == text[-1] == "$":  # LaTeX inline maths, not dollars: $18$
        text = text[1:-1].strip()
    return text


_FIRST_WORD_RE = re.compile(r"\s*([^\W\d_]+)")
_LETTER_WORD_RE = re.compile(r"[^\W\d_]+")


def _first_word(text: str) -> str:
    """The word right after a number, lower-cased: its unit; for Chinese the unit glued to it."""
    match = _FIRST_WORD_RE.match(text)
    if not match:
        return ""
    word = match.group(1)
    if not word.isascii() and "\u4e00" <= word[0] <= "\u9fff":
        return next((unit for unit in units.CJK_UNITS if word.startswith(unit)), word[0])
    return word.lower()


# --------------------------------------------------------------------------- compound quantities

# A number and the word after it; up to four in a row ("2 hours 40 minutes", "5 ft 6 in"), maybe
# restated in other units ("60 minutes (1 hour)", "160 minutes, which is 2 hours 40 minutes").
# Which words are units, and whether the parts agree, is checked in Python (_compound).
_PART = r"\d+(?:\.\d+)?\s*[^\W\d_]{1,15}\.?"
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([^\W\d_]{1,15})")
_SEP = r"(?:\s*,\s*(?:and\s+)?|\s+(?:and|y|et|und|e)\s+|\s*)"
_AMOUNTS = _PART + r"(?:" + _SEP + _PART + r"){0,3}"
_RESTATED = (r"\s*\(\s*(?:(?:or|i\.e\.,?|that is,?|=)\s*)?" + _AMOUNTS + r"\s*\)"
             r"|,?\s*(?:or|i\.e\.,?|that is,?|which is|=)\s*" + _AMOUNTS)
COMPOUND_RE = re.compile(r"(?<![\d.])" + _AMOUNTS + r"(?:" + _RESTATED + r")?", re.IGNORECASE)
_RESTATED_RE = re.compile(r"\(|,?\s*\b(?:or|i\.e\.|that is|which is)\b,?|=", re.IGNORECASE)
_OPERATOR_BEFORE_RE = re.compile(r"(?:[-+*/\u00d7\u00f7\u2013]|(?<![A-Za-z])x)\s*$")
_CONFLICT = "conflict"  # one quantity restated with a different amount: "60 minutes (2 hours)"


def _amounts(text: str) -> tuple[str, dict[str, Fraction]] | None:
    """``2 hours 40 minutes`` -> (family, {hour: 8/3, minute: 160}): the sum of the parts in each
    unit they name; None unless the words are units of one family, largest first, each once."""
    parts = [(Fraction(amount), word) for amount, word in _PART_RE.findall(text)]
    names = [units.unit_name(_first_word(word) or word) for _, word in parts]
    family = units.exact_family(names) if parts else None
    if family is None or len(set(names)) != len(names):
        return None
    factors = [units.factor(name, family) for name in names]
    if any(a <= b for a, b in itertools.pairwise(factors)):
        return None  # "40 minutes 2 hours" is two numbers
    total = units.in_units([(amount, name) for (amount, _), name in zip(parts, names, strict=True)],
                           family)
    return family, {name: total / f for name, f in zip(names, factors, strict=True)}


def _compound(text: str) -> Quantity | str | None:
    """One quantity in several units, ``_CONFLICT`` when its restatement disagrees, else None.

    ``2 hours 40 minutes`` is their sum; ``60 minutes (1 hour)`` one amount said twice. Its value
    is the one in the last unit of its first statement; ``readings`` has it in each unit named.
    """
    match = COMPOUND_RE.match(text)
    if match is None or any(ch.isdigit() for ch in text[match.end():]):
        return None
    written = match.group()
    restated = _RESTATED_RE.search(written)
    sides = [written[:restated.start()], written[restated.end():]] if restated else [written]
    read = [_amounts(side) for side in sides]
    if any(r is None for r in read) or len(_PART_RE.findall(written)) < 2:
        return None
    if restated and set(read[0][1]) == set(read[1][1]):
        return None  # "30 minutes - 15 minutes = 75 minutes" is working, not a restatement
    (family, first), *others = read
    readings = dict(first)
    for other_family, other in others:
        unit, value = next(iter(other.items()))
        base = units.FAMILIES[family]
        if other_family != family and not (unit in base and base[unit] is not None):
            return None
        any_unit = next(iter(first))
        if value * base.get(unit, 0) != first[any_unit] * base[any_unit]:
            return _CONFLICT
        readings |= other
    value = list(first.values())[-1]
    return Quantity(value, value, "", False, False, list(first)[-1], tuple(readings.items()))


def _read_compound(text: str) -> Quantity | None:
    quantity = _compound(text)
    return quantity if isinstance(quantity, Quantity) else None


def compound_spans(text: str, conflicts: bool = False) -> list[tuple[int, int]]:
    """``(start, end)`` of each compound or restated quantity in ``text`` (with ``conflicts``:
    of each restatement that disagrees)."""
    if sum(ch.isdigit() for ch in text[:_MAX_SLOT_CHARS]) < 2:
        return []
    if text.isascii() and not any(w.lower() in units.UNIT_WORDS
                                  for w in _LETTER_WORD_RE.findall(text)):
        return []  # no unit word: no compound (the common case, checked fast)
    spans, position = [], 0
    while (match := COMPOUND_RE.search(text, position)) is not None:
        found = _compound(match.group())
        if found is not None and _OPERATOR_BEFORE_RE.search(text, 0, match.start()):
            found = None  # "2 * 30 minutes = 1 hour": the left side is working
        if (found == _CONFLICT) if conflicts else isinstance(found, Quantity):
            spans.append(match.span())
            position = match.end()
        else:  # a longer candidate can hide a shorter one: "160 minutes, which is 2 hours 40 ..."
            position = match.start() + 1
    return spans


def quantity_tokens(text: str) -> list[re.Match]:
    """The numbers of ``text`` (``_NUMBER_RE`` matches), a compound quantity counted once (by the
    match of its first number)."""
    numbers = list(_NUMBER_RE.finditer(text))
    if len(numbers) < 2:
        return numbers
    spans = compound_spans(text)
    return [n for n in numbers
            if not any(start < n.start() < end for start, end in spans)] if spans else numbers


def read_quantity(text: Any) -> Quantity | None:
    """The :class:`Quantity` one number as a model writes it states, or None (see
    :func:`parse_number`, which returns only its value)."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | Fraction | float):
        if isinstance(text, float) and not math.isfinite(text):
            return None
        value = Fraction(str(text)) if isinstance(text, float) else Fraction(text)
        return Quantity(value, value, "", False, False, "")
    if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
        return None
    cleaned = _clean_number_text(_normalise(text))
    if cleaned.isdigit() and cleaned.isascii() and len(cleaned) <= _MAX_DIGITS:  # the usual case
        value = Fraction(int(cleaned))
        return Quantity(value, value, "", False, False, "")
    if not any(ch.isdigit() for ch in cleaned):  # "eighteen", "cuarenta y dos", "十八"
        spelled = spelled_to_digits(cleaned, whole=True)
        return read_quantity(spelled) if any(ch.isdigit() for ch in spelled) else None
    negative = False
    sign_word = _SIGN_WORD_RE.match(cleaned) if cleaned[:1] in "nmNM" else None
    if sign_word:
        negative, cleaned = True, cleaned[sign_word.end():]
    match = _FULL_NUMBER_RE.fullmatch(cleaned)
    if match is None or not (match["fn"] or match["mw"] or match["int"] or match["dec"]):
        cents = _DOLLARS_CENTS_RE.fullmatch(cleaned)
        if cents:
            return _dollars_and_cents(cents, negative)
        compound = None if negative else _read_compound(cleaned)
        if compound is None and not negative and any(ch.isalpha() for ch in cleaned):
            spelled = spelled_to_digits(cleaned, whole=True)  # "18 or nineteen": two numbers
            return read_quantity(spelled) if spelled != cleaned else None
        return compound
    rest = match["rest"]
    below_zero = _BELOW_ZERO_RE.search(rest) if "below" in rest else None
    if below_zero:
        rest = rest[:below_zero.start()] + rest[below_zero.end():]
    if rest.strip() and any(is_number_word(w) for w in _LETTER_WORD_RE.findall(rest)):
        return None
    signs = [s for s in (match["sign"], match["sign2"]) if s] + ["-"] * negative
    if len(signs) > 1:
        return None
    negative = signs == ["-"]
    if below_zero:
        if negative:
            return None
        negative = True
    try:
        value = _unsigned_value(match)
    except (ValueError, ZeroDivisionError):
        return None
    if value is None:
        return None
    scale = (match["scale"] or "").strip().lower().removesuffix("s") if match["scale"] else ""
    scaled = value * _SCALE_FACTORS[scale] if scale else value
    if negative:
        value, scaled = -value, -scaled
    if not rest:
        return Quantity(scaled, value, scale, bool(match["pct"]), bool(match["cur"]), "")
    currency = bool(match["cur"]) or bool(_CURRENCY_WORD_RE.match(rest))
    return Quantity(scaled, value, scale, bool(match["pct"]), currency, _first_word(rest))


def _unsigned_value(match: re.Match) -> Fraction | None:
    if match["fn"]:
        return _fraction(match["fn"], match["fd"])
    if match["mw"]:  # a mixed number: "2 1/2" is 5/2
        return int(match["mw"]) + _fraction(match["mn"], match["md"])
    whole = (match["int"] or "0").replace(",", "").replace(" ", "")
    decimals = match["dec"] or ""
    if len(whole) + len(decimals) > _MAX_DIGITS:
        return None
    value = Fraction(int(whole + decimals), 10 ** len(decimals))
    exponent = match["exp"] or match["exp10"]
    if exponent:
        if abs(int(exponent)) > _MAX_EXPONENT:
            return None
        value *= Fraction(10) ** int(exponent)
    if match["den"]:
        if match["dec"] is not None or exponent:
            return None
        value = _fraction(whole, match["den"])
    return value


def _dollars_and_cents(match: re.Match, negative: bool) -> Quantity | None:
    if match["sign"] and negative:
        return None
    value = int(match["dollars"].replace(",", "")) + Fraction(int(match["cents"]), 100)
    value = -value if negative or match["sign"] else value
    return Quantity(value, value, "", False, True, "dollars")


def parse_number(text: Any) -> Fraction | None:
    """The exact value of one number as a model writes it, or None.

    Reads ``1,234``, ``276 000`` (also with no-break or thin spaces), ``1'875``, ``$18.00``,
    ``18.``, ``-3``, ``\u22123`` and ``\u20133``, ``negative 3``, ``3 below zero``, ``20%`` (as 20:
    no rescaling), ``18 dollars``, ``18 dollars and 0 cents``, ``018``, ``36/2``,
    ``\\frac{36}{2}``, ``1.8e1``, ``9.3 \\times 10^{4}``, ``2.5 million``, ``14k``, ``eighteen``,
    ``minus ten``, ``cuarenta y dos``, ``十八``, ``2 hours 40 minutes`` (160: the last unit).
    Returns None for NaN, infinity, text it cannot read, and for more than one candidate number
    (``18 19``, ``18 or 19``): a value is only returned when there is exactly one to return.
    ``Fraction`` keeps it exact, so ``0.1 + 0.2`` style float noise can never flip a reward.
    """
    quantity = read_quantity(text)
    return None if quantity is None else quantity.value


def _fraction(numerator: str, denominator: str) -> Fraction:
    if len(numerator) + len(denominator) > _MAX_DIGITS:
        raise ValueError("too many digits")
    return Fraction(int(numerator), int(denominator))

