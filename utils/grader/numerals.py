"""Number reading: the exact value of one number as a model writes it.

:func:`parse_number` and :func:`read_quantity` read digits with their dressing (``1,234``,
``$18.00``, ``\\frac{36}{2}``, ``9.3 \\times 10^{4}``, ``2.5 million``, ``eighteen``) into a
``Fraction`` and the words around it that the unit rules need. Which number of a completion is its
answer is :mod:`utils.grader.locate`'s job; this module reads one number and refuses several.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, NamedTuple

_MAX_DIGITS = 300  # longer digit strings are not GSM8K answers, and int() refuses > 4300 digits
_MAX_EXPONENT = 300  # 1e999999999 would take minutes to build exactly
_MAX_SLOT_CHARS = 10_000  # an answer slot longer than this is rambling, not a final answer

# Dashes used as minus signs and spaces used as thousands separators, mapped to "-" and " ".
_MINUS_CHARS = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_SPACE_CHARS = "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f"
_ODD_CHARS_RE = re.compile(f"[{_MINUS_CHARS}{_SPACE_CHARS}]")
_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
_SUPERSCRIPT_MAP = str.maketrans(_SUPERSCRIPTS + "\u207b", "0123456789-")
_SUPERSCRIPT_RE = re.compile(f"10([\u207b]?[{_SUPERSCRIPTS}]+)")
_CHAR_MAP = str.maketrans({**dict.fromkeys(_MINUS_CHARS, "-"), **dict.fromkeys(_SPACE_CHARS, " ")})

_SCALE_FACTORS = {
    "hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12,
    "dozen": 12, "k": 10**3, "m": 10**6, "mn": 10**6, "bn": 10**9,
}
# A magnitude word after the number, or k/M/bn glued to it (``14k``; not ``14 km``, not ``5m``).
_SCALE = (r"(?:\s*(?:hundred|thousand|million|billion|trillion|dozen)s?\b"
          r"|(?:k|K|M|mn|bn)(?![A-Za-z]))")
_TIMES_TEN = r"\s*(?:\\times|\\cdot|\u00d7|\u00b7|\*|x)\s*10\s*\^\s*\{?\s*[-+]?\d+\s*\}?"

# One number as written in a completion: sign, currency, digits (thousands commas or spaces only
# in groups of three), decimals, exponent or "x 10^n", a/b or \frac{a}{b}, magnitude, percent.
# No nested quantifiers: linear time.
_NUMBER = (
    r"(?:(?<![\w)\]}])-(?=[$\u00a3\u20ac\d.\\]))?[$\u00a3\u20ac]?"
    r"(?:\\[dt]?frac\{\s*\d+\s*\}\{\s*\d+\s*\}|\d{1,6} \d{1,6}/\d{1,6}(?![\d.])"
    r"|(?:\d{1,3}(?:,\d{3}(?!\d))+|\d{1,3}(?: \d{3}(?!\d))+|\d+)(?:\.\d+)?"
    r"(?:[eE][-+]?\d+|" + _TIMES_TEN + r")?(?:/\d+(?![\d.]))?"
    r"|\.\d+)" + _SCALE + r"?(?:\s*(?:%|percent\b|per cent\b))?"
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
    r"\s*+(?P<pct>%|percent\b|per cent\b)?(?P<rest>[^\d<>{}\\=]*)"
)
# "18 dollars and 50 cents", "$18 and 0 cents": the cents are part of the amount.
_DOLLARS_CENTS_RE = re.compile(
    r"(?P<sign>-)?\s*\$?\s*(?P<dollars>\d{1,3}(?:,\d{3})+|\d+)\s*(?:dollars?|bucks?)?\s*"
    r"(?:and\s+|,\s*)?(?P<cents>\d{1,2})\s*cents?\b[\s.]*",
    re.IGNORECASE,
)
_SIGN_WORD_RE = re.compile(r"(?:negative|minus)\s+(?=[$\u00a3\u20ac\d.\\])", re.IGNORECASE)
_BELOW_ZERO_RE = re.compile(r"\bbelow (?:zero|0)\b", re.IGNORECASE)
_LATEX_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|textit)\{([^{}]*)\}")
_CURRENCY_WORD_RE = re.compile(r"\s*(?:dollars?|cents?|usd|bucks?)\b|\s*\$", re.IGNORECASE)

_WORD_UNITS = {
    word: value
    for value, word in enumerate([
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen",
    ])
}
_WORD_TENS = {
    word: 10 * value
    for value, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2
    )
}
_WORD_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_NUMBER_WORDS = set(_WORD_UNITS) | set(_WORD_TENS) | set(_WORD_SCALES) | {"hundred"}
_NEGATIVE_WORDS = {"minus", "negative"}


class Quantity(NamedTuple):
    """A number as written: its exact value and what is written around it (for the unit rules)."""

    value: Fraction
    unscaled: Fraction  # the value before a magnitude word: 2.5 for "2.5 million"
    scale: str  # the magnitude word, lower-cased and singular ("million", "k"), or ""
    percent: bool  # written with % or "percent"
    currency: bool  # written with $, £, € or followed by "dollars", "cents"
    unit: str  # the first word after the number, lower-cased ("minutes"), or ""


def _normalise(text: str) -> str:
    """Dashes used as minus signs become ``-``; no-break and thin spaces become spaces;
    superscript powers of ten (``10\u2074``) become ``10^4``."""
    if text.isascii():
        return text
    if _ODD_CHARS_RE.search(text):
        text = text.translate(_CHAR_MAP)
    if "10" in text and _SUPERSCRIPT_RE.search(text):
        text = _SUPERSCRIPT_RE.sub(lambda m: "10^" + m[1].translate(_SUPERSCRIPT_MAP), text)
    return text


def _clean_number_text(text: str) -> str:
    """Undo LaTeX and markdown dressing: ``\\$18``, ``18\\%``, ``\\text{ dollars}``, ``**18**``."""
    if "\\" in text:
        text = _LATEX_WRAPPER_RE.sub(r"\1", text)
    for old, new in (("\\$", "$"), ("\\%", "%"), ("{,}", ","), ("\\,", ""), ("\\!", ""),
                     ("\\left", ""), ("\\right", ""), ("\\ ", " "),
                     ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", "")):
        if old in text:
            text = text.replace(old, new)
    text = text.strip().strip("*`_ ").rstrip(".").strip()
    if len(text) > 2 and text[0] == text[-1] == "$":  # LaTeX inline maths, not dollars: $18$
        text = text[1:-1].strip()
    return text


def _words_to_number(text: str) -> Fraction | None:
    """``eighteen`` -> 18, ``minus ten`` -> -10, ``one hundred and five dollars`` -> 105.

    Trailing words that are not number words (units) are allowed; a second number is not.
    """
    words = [w for w in re.split(r"[\s\-]+", text.lower().strip(" .,!")) if w]
    negative = bool(words) and words[0] in _NEGATIVE_WORDS
    words = words[1:] if negative else words
    total = current = 0
    used = 0  # how many leading words belong to the number
    for index, word in enumerate(words):
        if word in _WORD_UNITS:
            current += _WORD_UNITS[word]
        elif word in _WORD_TENS:
            current += _WORD_TENS[word]
        elif word == "hundred" and used:
            current *= 100
        elif word in _WORD_SCALES and used:
            total += current * _WORD_SCALES[word]
            current = 0
        elif word == "and" and used:
            continue
        else:
            break
        used = index + 1
    if not used:
        return None
    rest = words[used:]
    if rest[:2] == ["below", "zero"]:
        if negative:
            return None
        negative, rest = True, rest[2:]
    if any(w in _NUMBER_WORDS or any(ch.isdigit() for ch in w) for w in rest):
        return None
    value = Fraction(total + current)
    return -value if negative else value


_FIRST_WORD_RE = re.compile(r"\s*([a-zA-Z]+)")
_LOWER_WORD_RE = re.compile(r"[a-z]+")


def _first_word(text: str) -> str:
    match = _FIRST_WORD_RE.match(text)
    return match.group(1).lower() if match else ""


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
    negative = False
    sign_word = _SIGN_WORD_RE.match(cleaned) if cleaned[:1] in "nmNM" else None
    if sign_word:
        negative, cleaned = True, cleaned[sign_word.end():]
    match = _FULL_NUMBER_RE.fullmatch(cleaned)
    if match is None or not (match["fn"] or match["mw"] or match["int"] or match["dec"]):
        cents = _DOLLARS_CENTS_RE.fullmatch(cleaned)
        if cents:
            return _dollars_and_cents(cents, negative)
        value = None if negative else _words_to_number(cleaned)
        return None if value is None else Quantity(value, value, "", False, False, "")
    rest = match["rest"]
    below_zero = _BELOW_ZERO_RE.search(rest) if "below" in rest else None
    if below_zero:
        rest = rest[:below_zero.start()] + rest[below_zero.end():]
    if rest.strip() and any(w in _NUMBER_WORDS for w in _LOWER_WORD_RE.findall(rest.lower())):
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

    Reads ``1,234``, ``276 000`` (also with no-break or thin spaces), ``$18.00``, ``18.``, ``-3``,
    ``\u22123`` and ``\u20133``, ``negative 3``, ``3 below zero``, ``20%`` (as 20: no rescaling),
    ``18 dollars``, ``18 dollars and 0 cents``, ``018``, ``36/2``, ``\\frac{36}{2}``, ``1.8e1``,
    ``9.3 \\times 10^{4}``, ``2.5 million``, ``14k``, ``eighteen``, ``minus ten``.
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

