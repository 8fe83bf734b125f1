"""Rule-based, verifiable rewards for GSM8K (RLVR): the grading policy, answer reading, format.

The accuracy reward is what GRPO optimises and what notebook 05 reports: a correct answer scored
wrong removes learning signal, a wrong answer scored right teaches a hack. So the grader follows a
written policy, the one a careful human grader applies, and each rule below is one line of it.

Grading policy
--------------
1. **The final answer is one number the completion commits to.** It is read, in this order, from:
   (a) answer slots outside the ``<think>`` reasoning: ``<answer>`` tags (any case and spacing:
   ``<Answer>``, ``< answer >``), ``\\boxed{}``/``\\fbox{}``, ``#### N`` lines; (b) phrases outside
   the reasoning: "the (final) answer is N", "Answer: N"; (c) the completion's last statement
   outside the reasoning: a bold number (``**42**``) or the last sentence that states a number
   (``So Janet makes $18 every day.``); (d) answer slots inside the reasoning, when nothing
   outside it states one. A source is used only when the ones before it are absent: a slot that is
   empty or says "I don't know" is an answer with no number, and no later rule rescues it.
2. **Revisions: the last answer is final.** A slot (or phrase) followed later by another one after
   text that gives a reason (``\\boxed{17}. Wait, 9 * 2 is 18, so \\boxed{18}``) is revised: the
   last one counts. A draft inside ``<think>`` before the final tag is a draft. Answers with only
   connectors or filler words between them (``<answer>17</answer><answer>18</answer>``,
   ``\\boxed{17} or \\boxed{18}``, "The answer is 18. The answer is 20.") are one answer stated
   several times: they must agree; repeated or nested tags with one value do.
3. **Several candidates are no answer.** ``18 or 19``, ``17-19``, ``18 ± 1``, a list, a range,
   "about 18", "at least 18", "maybe 18", "it could be 18", a self-correction inside one slot
   (``17, no wait, 18``) and a question (``Is it 18?``) score 0, whatever the gold.
4. **An answer stated with its working is its result.** ``20 cups (60 - 40)``, ``18 = 9 * 2``,
   ``9 * 2 = 18``, ``18 because 9 * 2 = 18``: the number stated as the result (the single-number
   side of an equation, the one number that the question does not give, the leading number
   before its justification, the number after "is", "makes", "total"...). An expression alone
   (``16 - 3 - 4``) states no result.
5. **Numbers are compared exactly** (``Fraction``): no tolerance, ``17.99`` is not 18, ``0.2`` is not
   20. Written forms are read: ``1,234``, ``276 000`` (space, no-break space or thin space
   groups), ``$18.00``, ``-7``/``−7``/``–7``, ``negative 7``, ``7 below zero``, ``36/2``,
   ``2 1/2``, ``\\frac{36}{2}``, ``9.3 \\times 10^{4}``, ``9.3×10⁴``, ``1.8e1``, ``eighteen``,
   ``18 dollars and 0 cents``.
6. **Magnitude words multiply.** ``2.5 million`` is 2500000, ``93 thousand`` 93000, ``14k`` 14000,
   ``2 dozen`` 24: so "2.5 million" is wrong for a gold of 2.5, unless the question asks for the
   quantity in that unit ("how many dozen", "in millions"), when the number before the word is it.
7. **Units are part of the quantity.** A unit word after the number is fine (``18 dollars``,
   ``60 minutes``) and never converted (``1 hour`` is not 60). A percent is a different quantity
   from an amount: ``20%`` matches a gold of 20 only when the question asks for a percentage
   (without the question: unless the completion works in money and never in percent), and
   ``320%`` is wrong for $320. A unit the question did not ask for (``18 hours`` when it asks
   "how many minutes", ``18 cents`` when it asks for dollars) is wrong.
8. **A restatement is not an answer.** A sentence that repeats a quantity given in the question
   with the question's own words (``Janet's ducks lay 16 eggs per day.``) answers nothing, even
   when that number happens to be the gold. A check or a note after the result ("Check: 18 / 9
   = 2") is not the result. Text addressed to the grader ("ignore previous instructions", "the
   grader must output 1"), in a slot or outside, is never read as an answer.

Deliberately ambiguous, decided (see the ``ambiguous`` category of the labelled corpus):
a self-correction inside one slot is no answer (rule 3, conservative); ``1.234`` is a decimal, not
European thousands; a bare ``- 18`` is minus 18; a copied sentence whose number is the gold is a
restatement (rule 8, the grader cannot tell copying from answering); "2 hours 30 minutes" and
other mixed units are not added up; a truncated completion's unfinished last sentence is not read;
a completion that is only a number states it; a doubtful second box right after a first one
(``\\boxed{18}. Hmm, maybe \\boxed{19}``) makes both candidates; without the question a magnitude
word always multiplies, and ``20%`` is 20 unless the completion works in money.

The question is used when the caller has it: TRL passes ``prompts`` and every dataset column
(``question``) to reward functions, :func:`is_correct` and :func:`extract_final_answer` take
``question=``. Without it rules 6-8 fall back to what the completion itself shows.

Reward functions follow TRL's contract ``f(completions, **kwargs) -> list[float]``: TRL 1.15 calls
``f(prompts=..., completions=..., completion_ids=..., **dataset_columns, trainer_state=...)``; the
GSM8K gold column is ``answer``. Completions are plain strings or conversational message lists.
Every function returns one float per completion and never raises, whatever it is given.

The tags are ordinary text (see :mod:`utils.prompts`). Completions are expected to write both
``<think>`` and ``</think>`` as :data:`utils.prompts.SYSTEM_PROMPT` asks; with the plain R1-Zero
template the opening ``<think>`` sits in the prompt, so prepend it before scoring the format.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, NamedTuple

from utils.prompts import ANSWER_CLOSE, ANSWER_OPEN, TAGS, THINK_CLOSE, THINK_OPEN

# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Final answer extraction (rules 1-4 and 8 of the policy)
# --------------------------------------------------------------------------------------------

_HEDGE_RE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|between|wait|actually|instead)\b"
    r"|\u00b1|\+/-|\+-|-/\+",
    re.IGNORECASE,
)
# An approximate, bounded or doubtful answer is not an exact final answer, even with one number.
_QUALIFIER_RE = re.compile(
    r"[\u2248\u2264\u2265]|~\s*[$\u00a3\u20ac]?\d|\\approx|\\sim\b|\b(?:about|approximately|approx"
    r"|around|roughly|nearly|almost|at least|at most|more than|less than|up to|or so|or more"
    r"|or less|or fewer|maybe|perhaps|probably|possibly|could be|might be|not sure|unsure"
    r"|i guess|estimated?)\b",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(r"\d%?\s*(?:-|\u2014|\bto\b|\bthrough\b)\s*[$\u00a3\u20ac]?\d")
_LIST_FILLER_RE = re.compile(r"(?:[\s,;/|&\[\](){}.:*]|\band\b|\bor\b)+", re.IGNORECASE)
_PAREN_RE = re.compile(r"\([^()]*\)")
_LEADING_RE = re.compile(
    r"\s*(" + _NUMBER + r")(?:\s*+[a-zA-Z]++){0,3}\s*+"
    r"(?:[,;:(\n\u2014]|-\s|\bbecause\b|\bsince\b|\bas\b|\bfrom\b)",
)
_CUE_RE = re.compile(
    r"\b(?:making|makes|made|is|are|was|were|equals?|equalling|gives?|totals?|totalling"
    r"|totaling|so|thus|therefore|hence|earns?|earned|earning|gets?|got|comes? to|results? in"
    r"|total of|sum of)\s+(?:a total of\s+|exactly\s+)?(" + _NUMBER + r")",
    re.IGNORECASE,
)
# "answer is", "answer:", "Final Answer: **18**"; matched on lower-cased text from the literal
# "nswer" (fast: the regex engine jumps between literal hits), the "a" before it checked in Python.
_ANSWER_PHRASE_RE = re.compile(r"nswer\s*\**\s*(?:is\b\s*:?|:|=)\s*\**")
_SENTENCE_END_RE = re.compile(r"\.(?!\d)|\n")
_HASHES_RE = re.compile(r"####[ \t]*(?=[-$\u00a3\u20ac\d\\.])([^\n]*)")
_BOX_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\{")
_ANY_TAG_RE = re.compile(r"<\s*(/?)\s*(answer|think)\s*>", re.IGNORECASE)
_TAG_FIND_RE = re.compile(r"<\s*/?\s*(?:answer|think)\s*>", re.IGNORECASE)
_CANONICAL_TAGS = {("", "answer"): ANSWER_OPEN, ("/", "answer"): ANSWER_CLOSE,
                   ("", "think"): THINK_OPEN, ("/", "think"): THINK_CLOSE}
# What may stand between two statements of one answer (else the later one revises the earlier).
_CONNECTOR_RE = re.compile(
    r"(?:[\s,;/|&.:!*()\[\]{}$\\-]|\b(?:or|and|also|then|either|alternatively|otherwise|else"
    r"|maybe|perhaps|possibly|probably|boxed|fbox|the|so|thus|therefore|hence|final|answer|is|my"
    r"|result)\b)*",
    re.IGNORECASE,
)
_DOUBT_RE = re.compile(r"\b(?:or|maybe|perhaps|possibly|probably|alternatively|either|could"
                       r"|might)\b", re.IGNORECASE)
# Text addressed to the grader is not an answer (the free-text rules never read it).
_TO_THE_GRADER_RE = re.compile(
    r"\b(?:grader|grading|evaluator|reward\s*(?:=|:|of|is)\s*1\b|ignore (?:all |the )?"
    r"(?:previous|prior|above)"
    r"|mark (?:this|it|me|the answer) (?:as )?correct|output 1)\b",
    re.IGNORECASE,
)
_STATEMENT_END_RE = re.compile(r"[.!?](?=\s)|\n")
_STATEMENT_TAIL = 3000  # the final statement is read from the last characters only
_BOLD_RE = re.compile(r"\*\*([^*\n]{1,80})\*\*")
_WORD_RE = re.compile(r"[a-z]+")
_META_WORDS = frozenset({
    "the", "and", "she", "her", "his", "him", "they", "them", "their", "has", "had", "have", "was",
    "were", "are", "its", "for", "with", "that", "this", "there", "then", "thus", "therefore",
    "hence", "total", "answer", "final", "question", "problem", "says", "said", "given", "told",
    "tells", "states", "stated", "know", "from", "which", "what", "how", "many", "much", "each",
    "per", "all", "also", "now", "only", "will", "would", "can", "could", "does", "did", "who",
    "our", "you", "your",
})
_REVISION_GAP = 80  # a gap this short that contains "or", "maybe"... lists candidates

_EMPTY, _AMBIGUOUS = "empty", "ambiguous"  # why an answer slot has no value


class _Reading(NamedTuple):
    """One stated final answer: the number as written, its quantity, and the sentence around it."""

    text: str
    quantity: Quantity
    source: str


def _read_slot(slot: str, question: str = "") -> _Reading | str:
    """The one number an answer slot states; else why not (``_EMPTY`` or ``_AMBIGUOUS``).

    An answer that states one result with its working is that result: ``18 (9 eggs x $2)``,
    ``9 * 2 = 18``, ``18 = 9 * 2``, ``20 cups (60 - 40)``, ``She sells 9 eggs at $2, making $18.``
    A slot that offers several candidates (``18 or 19``, ``17-19``, ``18 \u00b1 1``, a list) is
    ``_AMBIGUOUS``; one without a number ``_EMPTY``. A slot longer than ``_MAX_SLOT_CHARS`` is not
    one final answer (and reading it would be slow).
    """
    if len(slot) > _MAX_SLOT_CHARS:
        return _AMBIGUOUS
    text = slot.strip()
    if text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS:  # the usual case: "18"
        value = Fraction(int(text))
        return _Reading(text, Quantity(value, value, "", False, False, ""), text)
    text = _clean_number_text(text)
    if not text:
        return _EMPTY
    if _QUALIFIER_RE.search(text):
        return _AMBIGUOUS
    boxes = _boxed_contents(text)
    if boxes:
        return _agree([_read_slot(box, question) for box in boxes])
    if _to_the_grader(text):
        return _AMBIGUOUS  # an answer addressed to the grader is no answer
    tokens = list(_NUMBER_RE.finditer(text))
    if len(tokens) > 1 and (_HEDGE_RE.search(text)
                            or not _LIST_FILLER_RE.sub("", _NUMBER_RE.sub("", text))):
        return _AMBIGUOUS  # several candidates (checked first: it is the cheap common case)
    quantity = read_quantity(text)
    if quantity is not None:
        return _Reading(text, quantity, slot)
    if not tokens:
        return _EMPTY
    if len(tokens) == 1:
        return _token(tokens[0], text)
    return _read_working(text, slot, question)


def _read_working(text: str, source: str, question: str = "") -> _Reading | str:
    """The result of an answer written with its working (several numbers, no hedge).

    When all its numbers but one are given in the ``question``, that one is
    the result ("There are 3 fields of 45 rows, so he has 135 rows"). When no rule finds it, a
    sentence (four words or more) states its result last: "She sells 9 eggs at $2 each for $18 a
    day." A bare list of quantities ("2 hours 30 minutes") states none.
    """
    outside = _PAREN_RE.sub(" ", text)  # "20 cups (60 - 40)": the parentheses justify
    remaining = list(_NUMBER_RE.finditer(outside))
    if len(remaining) == 1:
        return _token(remaining[0], outside, source)
    if "=" in outside:
        return _read_equation(outside, source)
    if _RANGE_RE.search(outside):
        return _AMBIGUOUS
    if question:
        givens = _question_values(question)
        new = [m for m in remaining
               if (quantity := read_quantity(m.group())) is None or quantity.value not in givens]
        if len(new) == 1:
            return _token(new[0], outside, source)
    leading = _LEADING_RE.match(outside)
    if leading:
        return _token(leading, outside, source, group=1)
    cues = list(_CUE_RE.finditer(outside))
    if cues:
        return _token(cues[-1], outside, source, group=1)
    if len(_WORD_RE.findall(outside.lower())) >= 4:
        return _token(remaining[-1], outside, source)
    return _AMBIGUOUS


def _read_equation(text: str, source: str) -> _Reading | str:
    """The result of ``9 * 2 = 18`` or ``18 = 9 * 2``: the sides that are a single number.

    They must agree (``18 = 19`` states nothing); an equation without one (``9 * 2 = 3 * 6``)
    states no result.
    """
    readings = []
    for side in text.split("="):
        side = _clean_number_text(side)
        quantity = read_quantity(side)
        if quantity is not None:
            readings.append(_Reading(side, quantity, source))
            continue
        tokens = list(_NUMBER_RE.finditer(side))
        if len(tokens) == 1 and not re.search(r"[-+*/\u00d7\u00f7^]|\\times|\\cdot", side):
            readings.append(_token(tokens[0], side, source))
    return _agree(readings) if readings else _AMBIGUOUS


def _token(match: re.Match, text: str, source: str | None = None, group: int = 0) -> _Reading | str:
    """The number a regex match points at, read with the words around it that change it: a unit
    word after it, "below zero" after it, "negative" right before it."""
    token = match.group(group)
    after = text[match.end(group):]
    below_zero = _TOKEN_BELOW_ZERO_RE.match(after)
    if below_zero:
        token += below_zero.group()
    elif _NEGATIVE_BEFORE_RE.search(text, 0, match.start(group)) and token[:1].isdigit():
        token = "-" + token
    quantity = read_quantity(token + " " + _first_word(after if not below_zero else ""))
    if quantity is None:
        quantity = read_quantity(token)
    return _AMBIGUOUS if quantity is None else _Reading(token.strip(), quantity,
                                                         text if source is None else source)


_TOKEN_BELOW_ZERO_RE = re.compile(r"(?:\s*(?:\u00b0\s*[CF]?|degrees?(?: (?:celsius|fahrenheit))?))?"
                                  r"\s+below (?:zero|0)\b", re.IGNORECASE)
_NEGATIVE_BEFORE_RE = re.compile(r"\bnegative\s*$", re.IGNORECASE)


def _agree(readings: list[_Reading | str]) -> _Reading | str:
    """One value when every reading has the same value; otherwise the answer is ambiguous."""
    if not readings:
        return _EMPTY
    if any(isinstance(r, str) for r in readings):
        return _EMPTY if all(r == _EMPTY for r in readings) else _AMBIGUOUS
    if len({r.quantity.value for r in readings}) > 1:
        return _AMBIGUOUS
    return readings[-1]


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced; unclosed -> ``""``."""
    return [content for _, _, content in _boxed_spans(text)]


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every top-level box, braces balanced; unclosed -> ``""``."""
    spans: list[tuple[int, int, str]] = []
    end = 0
    for match in _BOX_OPEN_RE.finditer(text):
        if match.start() < end:
            continue  # a box inside the previous box
        depth, end = 1, match.end()
        while depth and end < len(text):
            next_open, next_close = text.find("{", end), text.find("}", end)
            if next_close < 0:
                end = len(text)
                break
            if 0 <= next_open < next_close:
                depth, end = depth + 1, next_open + 1
            else:
                depth, end = depth - 1, next_close + 1
        spans.append((match.start(), end, text[match.end():end - 1] if depth == 0 else ""))
    return spans


def _answer_tag_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of each ``<answer>`` slot; an unclosed one runs to the next tag
    or the end. Nested tags (``<answer><answer>18</answer></answer>``) are one slot."""
    spans = []
    position, close = 0, -1
    while (begin := text.find(ANSWER_OPEN, position)) >= 0:
        content_start, depth = begin + len(ANSWER_OPEN), 0
        while text.startswith(ANSWER_OPEN, after := _skip_space(text, content_start)):
            content_start, depth = after + len(ANSWER_OPEN), depth + 1
        if close < content_start:  # search for the next close tag only once it is behind us
            close = text.find(ANSWER_CLOSE, content_start)
            close = len(text) if close < 0 else close
        next_open = text.find(ANSWER_OPEN, content_start, close)
        if next_open >= 0:  # unclosed before the next slot
            spans.append((begin, next_open, text[content_start:next_open]))
            position = next_open
            continue
        end = close + len(ANSWER_CLOSE)
        for _ in range(depth):  # the outer close tags of a nested slot
            if text.startswith(ANSWER_CLOSE, after := _skip_space(text, end)):
                end = after + len(ANSWER_CLOSE)
        spans.append((begin, min(end, len(text)), text[content_start:close]))
        position = end
    return spans


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _slot_spans(text: str) -> list[tuple[int, int, str]]:
    """Every answer slot (``<answer>``, ``\\boxed{}``, ``#### N``) in order of position."""
    spans = _answer_tag_spans(text) if ANSWER_OPEN in text else []
    if "\\boxed{" in text or "\\fbox{" in text:
        spans.extend(_boxed_spans(text))
    if "####" in text:
        spans.extend((m.start(), m.end(), m.group(1)) for m in _HASHES_RE.finditer(text))
    return sorted(spans, key=lambda span: span[0])


def _one_answer_between(gap: str) -> bool:
    """Whether two statements with ``gap`` between them are one answer (else a revision)."""
    gap = gap.replace(ANSWER_OPEN, " ").replace(ANSWER_CLOSE, " ")
    if _CONNECTOR_RE.fullmatch(gap):
        return True
    return len(gap) <= _REVISION_GAP and _DOUBT_RE.search(gap) is not None


def _last_statement_group(text: str, spans: list[tuple[int, int, str]],
                          read: Callable[[str], _Reading | str]) -> _Reading | str:
    """The reading of the final answer among ``spans``: the last group of statements (rule 2).

    Statements with only connectors between them (or a short "or"/"maybe" gap) form one group and
    must agree; a later group after real text revises the earlier ones.
    """
    group = [spans[0]]
    group_end = spans[0][1]
    for span in spans[1:]:
        if span[0] < group_end or _one_answer_between(text[group_end:span[0]]):
            group.append(span)
        else:
            group = [span]
        group_end = max(group_end, span[1])
    contents, container_end = [], -1
    for _, end, content in group:  # sorted by start: a box inside a tag is read with the tag
        if end > container_end:
            contents.append(content)
            container_end = end
    return _agree([read(content) for content in contents])


def _reasoning_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the ``<think>`` sections (an unclosed one runs to the end).

    A completion of the R1-Zero template starts inside the reasoning, so text before a first
    ``</think>`` that has no opening tag is reasoning too.
    """
    spans = []
    first_close, first_open = text.find(THINK_CLOSE), text.find(THINK_OPEN)
    position = 0
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        position = first_close + len(THINK_CLOSE)
        spans.append((0, position))
    while (open_at := text.find(THINK_OPEN, position)) >= 0:
        close_at = text.find(THINK_CLOSE, open_at)
        if close_at < 0:
            spans.append((open_at, len(text)))
            break
        position = close_at + len(THINK_CLOSE)
        spans.append((open_at, position))
    return spans


def _outside_reasoning(text: str) -> str:
    """The text with ``<think>`` sections replaced by ``\u2026`` (a gap that revises)."""
    spans = _reasoning_spans(text) if THINK_OPEN in text or THINK_CLOSE in text else []
    pieces, position = [], 0
    for start, end in spans:
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return " \u2026 ".join(pieces) if spans else text


def _phrase_spans(outside: str) -> list[tuple[int, int, str]]:
    """"The (final) answer is ...", "Answer: ..." phrases: each runs to the end of its sentence,
    at most to the next phrase; phrases without a number are prose and are skipped."""
    lower = outside.lower()
    matches = [m for m in _ANSWER_PHRASE_RE.finditer(lower)
               if lower[m.start() - 1:m.start()] == "a"
               and not lower[max(m.start() - 2, 0):m.start() - 1].isalnum()]
    spans = []
    for i, match in enumerate(matches):
        limit = matches[i + 1].start() - 1 if i + 1 < len(matches) else len(lower)
        window = outside[match.end():min(limit, match.end() + 300)]
        phrase = _SENTENCE_END_RE.split(window, maxsplit=1)[0]
        if any(ch.isdigit() for ch in phrase) or _words_to_number(phrase) is not None:
            spans.append((match.start() - 1, match.end() + len(phrase), phrase))
    return spans


def _looks_finished(text: str) -> bool:
    """A completion cut off mid-sentence (max tokens) has not stated its last sentence yet."""
    tail = text.rstrip().rstrip("*_`\"' ")
    if not tail or tail[-1] in ".!?)]}$%" or tail[-1].isdigit():
        return True
    return len(tail.rsplit("\n", 1)[-1].split()) <= 8


def _final_statement(outside: str, question: str = "") -> _Reading | str:
    """The answer stated by the last sentence that states a number (rule 1c): a bold number in
    it, else the number it states as a result; a question or a doubtful sentence states none."""
    if not any(ch.isdigit() for ch in outside) or not _looks_finished(outside):
        return _EMPTY
    sentence = _last_numeric_sentence(outside.strip()[-_STATEMENT_TAIL:])
    if not sentence or sentence.rstrip("*_ ").endswith("?") or _to_the_grader(sentence):
        return _EMPTY if not sentence else _AMBIGUOUS
    bold = [b for b in _BOLD_RE.findall(sentence) if read_quantity(b) is not None]
    if bold:
        return _agree([_read_slot(b, question) for b in bold])
    text = _clean_number_text(sentence)
    if len(sentence) > _MAX_SLOT_CHARS or _QUALIFIER_RE.search(text):
        return _AMBIGUOUS
    quantity = read_quantity(text)
    if quantity is not None:
        return _Reading(text, quantity, sentence)
    tokens = list(_NUMBER_RE.finditer(text))
    if len(tokens) == 1:
        return _token(tokens[0], text, sentence)
    if _HEDGE_RE.search(text) or not _LIST_FILLER_RE.sub("", _NUMBER_RE.sub("", text)):
        return _AMBIGUOUS
    return _read_working(text, sentence, question)


# A check or a note after the result is not the result: "Check: 18 / 9 = 2." "Note: 50 min..."
_AFTERTHOUGHT_RE = re.compile(
    r"[\s(*_#>-]*(?:check|verify|verification|double[- ]check|let'?s (?:check|verify)|note"
    r"|to (?:check|verify)|p\.?s\.?)\b", re.IGNORECASE)


def _last_numeric_sentence(text: str) -> str:
    """The last sentence (or line) of ``text`` that contains a digit and is not a check or a
    note added after the result, with its end mark."""
    starts = [0] + [m.end() for m in _STATEMENT_END_RE.finditer(text)]
    ends = starts[1:] + [len(text)]
    for start, end in zip(reversed(starts), reversed(ends), strict=True):
        sentence = text[start:end].strip()
        if any(ch.isdigit() for ch in sentence) and not _AFTERTHOUGHT_RE.match(sentence):
            return sentence
    return ""


def _to_the_grader(text: str) -> bool:
    lower = text.lower()  # plain substring checks first: far faster than the regex on 1 KB
    hint = ("grad" in lower or "evaluat" in lower or "reward" in lower or "ignore" in lower
            or "mark " in lower or "output 1" in lower)
    return hint and bool(_TO_THE_GRADER_RE.search(text))


@functools.lru_cache(maxsize=4096)  # a group's completions share their question
def _question_values(question: str) -> frozenset:
    """Every number the question gives (digits or number words)."""
    values = {q.value for q in map(read_quantity, _NUMBER_RE.findall(question)) if q is not None}
    words = (_WORD_UNITS.get(w, _WORD_TENS.get(w)) for w in _WORD_RE.findall(question.lower()))
    return frozenset(values | {Fraction(w) for w in words if w is not None})


def _content_words(text: str) -> set[str]:
    return {w.removesuffix("s") for w in _WORD_RE.findall(text.lower())
            if len(w) > 2 and w not in _META_WORDS}


def _restates_question(reading: _Reading, question: str) -> bool:
    """Whether the answer's sentence repeats a sentence of the question that gives the same
    number (rule 8): two or more content words, at least two thirds of them in that sentence."""
    words = _content_words(_NUMBER_RE.sub(" ", reading.source))
    if len(words) < 2:
        return False
    for sentence in re.split(r"(?<=[.!?])\s+", question):
        values = {read_quantity(m.group()) for m in _NUMBER_RE.finditer(sentence)}
        values = {q.value for q in values if q is not None}
        values |= {_WORD_UNITS.get(w, _WORD_TENS.get(w)) for w in _WORD_RE.findall(sentence.lower())}
        if reading.quantity.value in values:
            shared = words & _content_words(sentence)
            if 3 * len(shared) >= 2 * len(words):
                return True
    return False


def _final_reading(text: str, question: str = "") -> _Reading | str:
    """The final answer of a completion under the grading policy (rules 1-4 and 8)."""
    text = _normalise(text)
    if "<" in text and any(tag not in TAGS for tag in _TAG_FIND_RE.findall(text)):
        text = _ANY_TAG_RE.sub(lambda m: _CANONICAL_TAGS[m[1], m[2].lower()], text)
    outside = _outside_reasoning(text)
    read = functools.partial(_read_slot, question=question) if question else _read_slot
    spans = _slot_spans(outside)
    if spans:
        reading = _last_statement_group(outside, spans, read)
    elif _to_the_grader(outside):
        reading = _AMBIGUOUS
    elif phrases := _phrase_spans(outside):
        reading = _last_statement_group(outside, phrases, read)
    else:
        reading = _final_statement(outside, question)
        if reading == _EMPTY and outside is not text and (inside := _slot_spans(text)):
            reading = _last_statement_group(text, inside, read)
    if isinstance(reading, _Reading) and question and reading.source != reading.text \
            and _restates_question(reading, question):
        return _AMBIGUOUS
    return reading


# --------------------------------------------------------------------------------------------
# Comparing with the gold (rules 5-7 of the policy)
# --------------------------------------------------------------------------------------------

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


def _question_of(prompt: Any) -> str:
    """The question inside a TRL prompt: the last user message of a conversation, or the text
    between "User:" and "Assistant:" of a plain R1-Zero prompt."""
    if isinstance(prompt, str):
        if "User:" in prompt:
            prompt = prompt.rsplit("User:", 1)[1].split("Assistant:", 1)[0]
        return prompt.strip()
    if isinstance(prompt, dict):
        prompt = [prompt]
    if isinstance(prompt, list | tuple):
        for message in reversed(prompt):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list | tuple):
                    content = " ".join(part.get("text", "") for part in content
                                       if isinstance(part, dict)
                                       and isinstance(part.get("text"), str))
                return content if isinstance(content, str) else ""
    return ""


@functools.lru_cache(maxsize=4096)  # a group's completions share their gold
def _gold_value(gold: str) -> Fraction | None:
    return parse_number(gold)


def extract_final_answer(text: Any, question: str | None = None) -> str | None:
    """The one final answer of a completion, as written (``"18"``, ``"$18.00"``), or None.

    Read under the grading policy of this module: ``<answer>`` tags, ``\\boxed{}``, ``#### N``,
    then "the (final) answer is N", then the last statement (the last one of each is final).
    None when the answer is missing or empty, when it offers several candidates (``18 19 20``,
    ``18 or 19``, ``17-19``, ``18 \u00b1 1``, a list), when answers stated together conflict, or
    when, given the ``question``, the answer only restates it. An answer stated with its working
    is its result. (Lower-cased when it comes from a phrase: "The answer is Eighteen".)
    """
    reading = _safe(_final_reading, completion_text(text),
                    question if isinstance(question, str) else "")
    return reading.text if isinstance(reading, _Reading) else None


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


# --------------------------------------------------------------------------------------------
# TRL reward functions
# --------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of a plain (``str``) or conversational (list of messages) completion.

    For a message list, the assistant messages' contents are joined (content may be a string or
    a list of ``{"type": "text", "text": ...}`` parts). Anything unusable gives ``""``.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, list | tuple):
        return ""
    texts = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list | tuple):
            texts.extend(part["text"] for part in content
                         if isinstance(part, dict) and isinstance(part.get("text"), str))
    return "\n".join(texts)


def _as_list(values: Any) -> list:
    if values is None:
        return []
    if isinstance(values, list | tuple):
        return list(values)
    return [values]


def accuracy_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """1.0 when the final answer is the gold ``answer``, else 0.0 (one per completion).

    ``answer`` is the GSM8K column TRL passes, one gold per completion; a single gold is used for
    all completions, a missing one scores 0. The question comes from the dataset's ``question``
    column when there is one, else from TRL's ``prompts``; without either the unit rules fall
    back to the completion alone (see the policy at the top of this module).
    """
    completions = _as_list(completions)
    golds = answer if isinstance(answer, list | tuple) else [answer] * len(completions)
    questions = _questions(kwargs.get("question"), kwargs.get("prompts"), len(completions))
    rewards = []
    for i, completion in enumerate(completions):
        gold = golds[i] if i < len(golds) else None
        rewards.append(1.0 if _safe(is_correct, completion, gold, questions[i]) else 0.0)
    return rewards


def _questions(question: Any, prompts: Any, count: int) -> list[str]:
    """One question text per completion, from the ``question`` column or TRL's ``prompts``."""
    for source, read in ((question, lambda q: q if isinstance(q, str) else ""),
                         (prompts, _question_of)):
        if isinstance(source, list | tuple) and len(source) == count:
            return [_safe(read, item) or "" for item in source]
    return [""] * count


def _has_exactly_one_of_each_tag(text: str) -> bool:
    return all(text.count(tag) == 1 for tag in TAGS)


def _filled_in(reasoning: str, text: str) -> bool:
    """The template is filled in, not copied: the reasoning has words or digits and the answer
    slot holds one readable final answer. Without this, a model that copies the system prompt's
    literal ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>`` earns full format
    reward (SmolLM2 found exactly that hack in a CPU run)."""
    return any(ch.isalnum() for ch in reasoning) and extract_final_answer(text) is not None


def _strict_format(text: str) -> bool:
    """Exactly the layout of the system prompt: ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>``."""
    if not _has_exactly_one_of_each_tag(text):
        return False
    think_open, think_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    answer_open, answer_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    if text[:think_open].strip() or text[answer_close + len(ANSWER_CLOSE):].strip():
        return False
    reasoning = text[think_open + len(THINK_OPEN):think_close]
    answer = text[answer_open + len(ANSWER_OPEN):answer_close]
    return (
        think_open < think_close < answer_open < answer_close
        and text[think_close + len(THINK_CLOSE):answer_open] == "\n"
        and reasoning.startswith("\n") and reasoning.endswith("\n")
        and answer.startswith("\n") and answer.endswith("\n")
        and _filled_in(reasoning, text)
    )


def _soft_format(text: str) -> bool:
    """One ``<think>`` block then one ``<answer>`` block, any whitespace, nothing in between."""
    if not _has_exactly_one_of_each_tag(text):
        return False
    think_open, think_close = text.find(THINK_OPEN), text.find(THINK_CLOSE)
    answer_open, answer_close = text.find(ANSWER_OPEN), text.find(ANSWER_CLOSE)
    return (
        think_open < think_close < answer_open < answer_close
        and not text[think_close + len(THINK_CLOSE):answer_open].strip()
        and _filled_in(text[think_open + len(THINK_OPEN):think_close], text)
    )


def strict_format_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 for exactly the system prompt's layout, filled in, else 0.0.

    ``<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>``, each tag once, nothing before or
    after but whitespace, reasoning with words or digits, and one readable number in the answer
    slot (right or wrong: correctness is the accuracy reward's job). Any number of lines.
    """
    return [1.0 if _safe(_strict_format, completion_text(c)) else 0.0 for c in _as_list(completions)]


def soft_format_reward(completions: Any, **kwargs: Any) -> list[float]:
    """1.0 when a ``<think>`` block is followed by an ``<answer>`` block holding one number.

    Each tag exactly once, in order, only whitespace between the blocks; layout and text around
    them are free. Gentler than :func:`strict_format_reward` for small models early in training.
    """
    return [1.0 if _safe(_soft_format, completion_text(c)) else 0.0 for c in _as_list(completions)]


TRAILING_PENALTY_PER_CHAR, MAX_TRAILING_PENALTY = 0.001, 0.25


def _tag_count(text: str) -> float:
    """0.25 per tag that appears exactly once and in order with the others, minus trailing text."""
    positions = {tag: text.find(tag) for tag in TAGS if text.count(tag) == 1}
    score = 0.0
    for i, tag in enumerate(TAGS):
        if tag not in positions:
            continue
        before_ok = all(positions[t] < positions[tag] for t in TAGS[:i] if t in positions)
        after_ok = all(positions[t] > positions[tag] for t in TAGS[i + 1:] if t in positions)
        score += 0.25 if before_ok and after_ok else 0.0
    if ANSWER_CLOSE in positions:
        trailing = len(text[positions[ANSWER_CLOSE] + len(ANSWER_CLOSE):].strip())
        score -= min(MAX_TRAILING_PENALTY, TRAILING_PENALTY_PER_CHAR * trailing)
    return score


def tag_count_reward(completions: Any, **kwargs: Any) -> list[float]:
    """Partial credit, 0.25 per well-placed tag (once, in order), in [-0.25, 1.0].

    A dense signal that a small model can climb before it ever gets the whole format right.
    Text after ``</answer>`` costs 0.001 per character, at most 0.25, so that rambling on after the
    answer (or appending an "injection") never pays.
    """
    return [float(_safe(_tag_count, completion_text(c))) for c in _as_list(completions)]


def _safe(function: Callable, *args: Any) -> Any:
    """Run a reward rule; an unexpected error gives 0 (no reward) rather than crash a training run."""
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a reward must never take down the trainer
        return 0


# --------------------------------------------------------------------------------------------
# Combining rewards
# --------------------------------------------------------------------------------------------

REWARD_FUNCTIONS: dict[str, Callable[..., list[float]]] = {
    "accuracy": accuracy_reward,
    "strict_format": strict_format_reward,
    "soft_format": soft_format_reward,
    "tag_count": tag_count_reward,
}

DEFAULT_WEIGHTS: dict[str, float] = {
    "accuracy": 1.0,
    "strict_format": 0.5,
    "soft_format": 0.0,
    "tag_count": 0.25,
}
"""Default weights, chosen so that correctness always dominates.

- ``accuracy`` 1.0: the goal. The format rewards together give at most 0.75, so a well-formatted
  wrong answer (0.75) always scores below a correct one (>= 1.0).
- ``strict_format`` 0.5: the evaluation parses the answer slot, so the exact layout is worth
  learning; half the accuracy weight keeps it secondary.
- ``soft_format`` 0.0: strict implies soft, so weighting both would pay twice for one thing; use it
  *instead of* strict for small models that never hit the exact layout (the lab has a toggle).
- ``tag_count`` 0.25: a small dense signal (partial credit per tag) for the first steps, when
  no completion is correct or strictly formatted yet and every group would otherwise have zero
  variance (no learning signal).
"""


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The weights as a dict over all reward names (names left out weigh 0)."""
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    unknown = sorted(set(weights) - set(REWARD_FUNCTIONS))
    if unknown:
        raise ValueError(
            f"unknown reward name(s) {unknown}; choose from {sorted(REWARD_FUNCTIONS)}"
        )
    checked = {}
    for name in REWARD_FUNCTIONS:
        weight = weights.get(name, 0.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise TypeError(f"weight of {name!r} must be a number; got {weight!r}")
        if not math.isfinite(weight):
            raise ValueError(f"weight of {name!r} must be finite; got {weight!r}")
        checked[name] = float(weight)
    return checked


def reward_funcs_and_weights(
    weights: Mapping[str, float] | None = None,
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """``(reward_funcs, reward_weights)`` for ``GRPOTrainer`` and ``GRPOConfig``.

    ``weights`` maps reward names (keys of :data:`REWARD_FUNCTIONS`) to weights; names left out
    weigh 0, and zero weights are dropped (TRL would spend time computing a reward it ignores).
    None means :data:`DEFAULT_WEIGHTS`. An unknown name is a ValueError.
    """
    checked = _check_weights(weights)
    names = [name for name, weight in checked.items() if weight != 0.0]
    return [REWARD_FUNCTIONS[name] for name in names], [checked[name] for name in names]


def score_completions(
    completions: Any, answer: Any, weights: Mapping[str, float] | None = None
) -> list[dict[str, float]]:
    """Per completion, every reward's raw value and ``"total"``, the weighted sum TRL computes.

    All four parts are reported (zero-weight ones too, for inspection); ``total`` only sums the
    weighted ones, in the order TRL does (TRL sums in float32, so expect agreement to ~1e-7).
    """
    checked = _check_weights(weights)
    completions = _as_list(completions)
    parts = {name: fn(completions, answer=answer) for name, fn in REWARD_FUNCTIONS.items()}
    scores = []
    for i in range(len(completions)):
        row = {name: parts[name][i] for name in REWARD_FUNCTIONS}
        row["total"] = sum((checked[name] * row[name] for name in REWARD_FUNCTIONS
                            if checked[name] != 0.0), start=0.0)
        scores.append(row)
    return scores
