"""Rule-based, verifiable rewards for GSM8K (RLVR): answer extraction, exact checking, format.

Why these are strict:

- A reward function is the only thing GRPO optimises. Any slack in it is a reward hack waiting to
  be found: a reward that accepts ``18 or 19`` teaches hedging, one that falls back to the last
  number of the reasoning teaches the model to skip the answer, one that matches its format regex
  without ``re.DOTALL`` scores every multi-line reasoning 0 and the model learns nothing.
- So the final answer is read from the answer slot only (``<answer>`` tags, ``\\boxed{}``,
  ``#### N``, or "the (final) answer is N" when there is no slot), it must be one number, final
  answers that disagree cancel each other, and numbers are compared exactly (``Fraction``).

Reward functions follow TRL's contract ``f(completions, **kwargs) -> list[float]``: TRL 1.15 calls
``f(prompts=..., completions=..., completion_ids=..., **dataset_columns, trainer_state=...)``; the
GSM8K gold column is ``answer``. Completions are plain strings or conversational message lists.
Every function returns one float per completion and never raises, whatever it is given.

The tags are ordinary text (see :mod:`utils.prompts`). Completions are expected to write both
``<think>`` and ``</think>`` as :data:`utils.prompts.SYSTEM_PROMPT` asks; with the plain R1-Zero
template the opening ``<think>`` sits in the prompt, so prepend it before scoring the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from utils.prompts import ANSWER_CLOSE, ANSWER_OPEN, TAGS, THINK_CLOSE, THINK_OPEN

# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

_MAX_DIGITS = 300  # longer digit strings are not GSM8K answers, and int() refuses > 4300 digits
_MAX_EXPONENT = 300  # 1e999999999 would take minutes to build exactly
_MAX_SLOT_CHARS = 10_000  # an answer slot longer than this is rambling, not a final answer

# One number as written in a completion: sign, currency, digits (thousands commas only in groups
# of three), decimals, exponent, a/b or \frac{a}{b}, percent. No nested quantifiers: linear time.
_NUMBER = (
    r"(?:(?<![\w)\]}])[-\u2212](?=[$\u00a3\u20ac\d.\\]))?[$\u00a3\u20ac]?"
    r"(?:\\[dt]?frac\{\s*\d+\s*\}\{\s*\d+\s*\}"
    r"|(?:\d{1,3}(?:,\d{3}(?!\d))+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+(?![\d.]))?"
    r"|\.\d+)"
    r"%?"
)
_NUMBER_RE = re.compile(_NUMBER)
_FULL_NUMBER_RE = re.compile(
    r"(?P<sign>[-\u2212+])?\s*+(?P<cur>[$\u00a3\u20ac])?\s*+(?P<sign2>[-\u2212])?"
    r"(?:\\[dt]?frac\{\s*(?P<fn>\d+)\s*\}\{\s*(?P<fd>\d+)\s*\}"
    r"|(?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?:\.(?P<dec>\d*))?(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?:/(?P<den>\d+))?)"
    r"\s*+(?:%|percent\b)?(?P<rest>[^\d<>{}\\=]*)"
)
_LATEX_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|textit)\{([^{}]*)\}")

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


def _clean_number_text(text: str) -> str:
    """Undo LaTeX and markdown dressing: ``\\$18``, ``18\\%``, ``\\text{ dollars}``, ``**18**``."""
    text = _LATEX_WRAPPER_RE.sub(r"\1", text)
    for old, new in (("\\$", "$"), ("\\%", "%"), ("{,}", ","), ("\\,", ""), ("\\!", ""),
                     ("\\left", ""), ("\\right", "")):
        text = text.replace(old, new)
    return text.strip().strip("*`_ ").rstrip(".").strip()


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
    if any(w in _NUMBER_WORDS or any(ch.isdigit() for ch in w) for w in rest):
        return None
    value = Fraction(total + current)
    return -value if negative else value


def parse_number(text: Any) -> Fraction | None:
    """The exact value of one number as a model writes it, or None.

    Reads ``1,234``, ``$18.00``, ``18.``, ``-3`` and ``\u22123``, ``20%`` (as 20: no rescaling),
    ``18 dollars``, ``018``, ``36/2``, ``\\frac{36}{2}``, ``1.8e1``, ``eighteen``, ``minus ten``.
    Returns None for NaN, infinity, text it cannot read, and for more than one candidate number
    (``18 19``, ``18 or 19``): a value is only returned when there is exactly one to return.
    ``Fraction`` keeps it exact, so ``0.1 + 0.2`` style float noise can never flip a reward.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int | Fraction):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(str(text)) if math.isfinite(text) else None
    if not isinstance(text, str) or not text.strip() or len(text) > 10_000:
        return None
    cleaned = _clean_number_text(text)
    match = _FULL_NUMBER_RE.fullmatch(cleaned)
    if match is None or not (match["fn"] or match["int"] or match["dec"]):
        return _words_to_number(cleaned)
    rest = match["rest"]
    if rest.strip() and any(w in _NUMBER_WORDS for w in re.findall(r"[a-z]+", rest.lower())):
        return None
    if match["sign"] and match["sign2"]:
        return None
    negative = (match["sign"] or match["sign2"] or "") in ("-", "\u2212")
    try:
        if match["fn"]:
            value = _fraction(match["fn"], match["fd"])
        else:
            whole = (match["int"] or "0").replace(",", "")
            decimals = match["dec"] or ""
            if len(whole) + len(decimals) > _MAX_DIGITS:
                return None
            value = Fraction(int(whole + decimals), 10 ** len(decimals))
            if match["exp"]:
                exponent = int(match["exp"])
                if abs(exponent) > _MAX_EXPONENT:
                    return None
                value *= Fraction(10) ** exponent
            if match["den"]:
                if match["dec"] is not None or match["exp"]:
                    return None
                value = _fraction(whole, match["den"])
    except (ValueError, ZeroDivisionError):
        return None
    return -value if negative else value


def _fraction(numerator: str, denominator: str) -> Fraction:
    if len(numerator) + len(denominator) > _MAX_DIGITS:
        raise ValueError("too many digits")
    return Fraction(int(numerator), int(denominator))


# --------------------------------------------------------------------------------------------
# Final answer extraction
# --------------------------------------------------------------------------------------------

_HEDGE_RE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|between|wait|actually|instead)\b"
    r"|\u00b1|\+/-|\+-|-/\+",
    re.IGNORECASE,
)
# An approximate or bounded answer is not an exact final answer, even with a single number.
_QUALIFIER_RE = re.compile(
    r"[\u2248\u2264\u2265]|~\s*[$\u00a3\u20ac]?\d|\\approx|\\sim\b|\b(?:about|approximately|approx"
    r"|around|roughly|nearly|almost|at least|at most|more than|less than|up to|or so|maybe"
    r"|perhaps|probably|possibly)\b",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(r"\d%?\s*(?:-|\u2013|\u2014|\bto\b|\bthrough\b)\s*[$\u00a3\u20ac]?\d")
_LIST_FILLER_RE = re.compile(r"(?:[\s,;/|&\[\](){}.:*]|\band\b|\bor\b)+", re.IGNORECASE)
_PAREN_RE = re.compile(r"\([^()]*\)")
_LEADING_RE = re.compile(
    r"\s*(" + _NUMBER + r")(?:\s*+[a-zA-Z]++){0,3}\s*+"
    r"(?:[,;:(\n\u2014]|-\s|\bbecause\b|\bsince\b|\bas\b|\bfrom\b)",
)
_CUE_RE = re.compile(
    r"\b(?:making|makes|made|is|are|was|were|equals?|equalling|gives?|giving|totals?|totalling"
    r"|totaling|so|thus|therefore|hence|earns?|earned|earning|gets?|got|comes? to|results? in"
    r"|total of|sum of)\s+(?:a total of\s+|about\s+|exactly\s+)?(" + _NUMBER + r")",
    re.IGNORECASE,
)
# "answer is", "answer:", "Final Answer: **18**"; matched on lower-cased text from the literal
# "nswer" (fast: the regex engine jumps between literal hits), the "a" before it checked in Python.
_ANSWER_PHRASE_RE = re.compile(r"nswer\s*\**\s*(?:is\b\s*:?|:|=)\s*\**")
_SENTENCE_END_RE = re.compile(r"\.(?!\d)|\n")
_HASHES_RE = re.compile(r"####[ \t]*(?=[-\u2212$\u00a3\u20ac\d\\.])([^\n]*)")

_BOX_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\{")
_ANSWER_OPEN_RE = re.compile(re.escape(ANSWER_OPEN))

_EMPTY, _AMBIGUOUS = "empty", "ambiguous"  # why an answer slot has no value


def _read_slot(slot: str) -> tuple[str, Fraction] | str:
    """The one number an answer slot states, as ``(text, value)``; else why not.

    An answer that states one result with its working is that result: ``18 (9 eggs x $2)``,
    ``9 * 2 = 18``, ``She sells 9 eggs at $2, making $18.`` A slot that offers several candidates
    (``18 or 19``, ``17-19``, ``18 \u00b1 1``, a list) is ``_AMBIGUOUS``; one without a number ``_EMPTY``.
    A slot longer than ``_MAX_SLOT_CHARS`` is not one final answer (and reading it would be slow).
    """
    if len(slot) > _MAX_SLOT_CHARS:
        return _AMBIGUOUS
    text = _clean_number_text(slot)
    if not text:
        return _EMPTY
    if _QUALIFIER_RE.search(text):
        return _AMBIGUOUS
    boxes = _boxed_contents(text)
    if boxes:
        return _agree([_read_slot(box) for box in boxes])
    value = parse_number(text)
    if value is not None:
        return text, value
    tokens = _NUMBER_RE.findall(text)
    if not tokens:
        return _EMPTY
    if len(tokens) == 1:
        return _token(tokens[0])
    if _HEDGE_RE.search(text) or not _LIST_FILLER_RE.sub("", _NUMBER_RE.sub("", text)):
        return _AMBIGUOUS
    if "=" in text:
        return _read_result(text.rsplit("=", 1)[1])
    if _RANGE_RE.search(text):
        return _AMBIGUOUS
    outside = _PAREN_RE.sub(" ", text)
    remaining = _NUMBER_RE.findall(outside)
    if len(remaining) == 1:
        return _token(remaining[0])
    leading = _LEADING_RE.match(outside)
    if leading:
        return _token(leading.group(1))
    cues = _CUE_RE.findall(outside)
    if cues:
        return _token(cues[-1])
    return _AMBIGUOUS


def _read_result(text: str) -> tuple[str, Fraction] | str:
    """The right-hand side of an equation must hold exactly one number."""
    text = _clean_number_text(text)
    value = parse_number(text)
    if value is not None:
        return text, value
    tokens = _NUMBER_RE.findall(_PAREN_RE.sub(" ", text))
    return _token(tokens[0]) if len(tokens) == 1 else _AMBIGUOUS


def _token(token: str) -> tuple[str, Fraction] | str:
    value = parse_number(token)
    return (token, value) if value is not None else _AMBIGUOUS


def _agree(readings: list[tuple[str, Fraction] | str]) -> tuple[str, Fraction] | str:
    """One value when every reading has the same value; otherwise the answer is ambiguous."""
    if not readings:
        return _EMPTY
    if any(isinstance(r, str) for r in readings):
        return _EMPTY if all(r == _EMPTY for r in readings) else _AMBIGUOUS
    if len({value for _, value in readings}) > 1:
        return _AMBIGUOUS
    return readings[-1]


def _boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced; unclosed -> ``""``."""
    contents: list[str] = []
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
        contents.append(text[match.end():end - 1] if depth == 0 else "")
    return contents


def _answer_tag_slots(text: str) -> list[str]:
    """The text of each ``<answer>`` slot; an unclosed one runs to the next tag or the end."""
    opens = [m.end() for m in _ANSWER_OPEN_RE.finditer(text)]
    slots = []
    close = -1
    for i, begin in enumerate(opens):
        if close < begin:  # search for the next close tag only once it is behind us: linear time
            close = text.find(ANSWER_CLOSE, begin)
            close = len(text) if close < 0 else close
        following = opens[i + 1] - len(ANSWER_OPEN) if i + 1 < len(opens) else len(text)
        slots.append(text[begin:min(close, following)])
    return slots


def _outside_reasoning(text: str) -> str:
    """The text with ``<think>`` sections cut out (an unclosed one runs to the end).

    A completion of the R1-Zero template starts inside the reasoning, so text before a first
    ``</think>`` that has no opening tag is reasoning too.
    """
    first_close = text.find(THINK_CLOSE)
    first_open = text.find(THINK_OPEN)
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        text = text[first_close + len(THINK_CLOSE):]
    pieces = []
    while (open_at := text.find(THINK_OPEN)) >= 0:
        pieces.append(text[:open_at])
        close_at = text.find(THINK_CLOSE, open_at)
        if close_at < 0:
            text = ""
            break
        text = text[close_at + len(THINK_CLOSE):]
    pieces.append(text)
    return " ".join(pieces)


def _final_answer(text: str) -> tuple[str, Fraction] | None:
    """``(answer text, exact value)`` of the one final answer, or None.

    Explicit answer slots come first: every ``<answer>`` tag, ``\\boxed{}`` and ``#### N`` line,
    anywhere in the text. They must all be readable and agree. Only when there is none, the phrase
    "the (final) answer is ..." outside the ``<think>`` reasoning is read (phrases without a number
    are prose and are skipped). Numbers elsewhere in the reasoning are never a fallback.
    """
    slots = _answer_tag_slots(text) if ANSWER_OPEN in text else []
    if "\\boxed{" in text or "\\fbox{" in text:
        slots.extend(_boxed_contents(text))
    if "####" in text:
        slots.extend(_HASHES_RE.findall(text))
    if slots:
        reading = _agree([_read_slot(slot) for slot in slots])
    else:
        outside = _outside_reasoning(text).lower()
        matches = [m for m in _ANSWER_PHRASE_RE.finditer(outside)
                   if outside[m.start() - 1:m.start()] == "a"
                   and not outside[max(m.start() - 2, 0):m.start() - 1].isalnum()]
        starts = [m.end() for m in matches]
        ends = [m.start() for m in matches[1:]] + [len(outside)] * bool(matches)
        phrases = [  # each phrase runs to the end of its sentence, at most to the next phrase
            _SENTENCE_END_RE.split(outside[start:min(end, start + 300)], maxsplit=1)[0]
            for start, end in zip(starts, ends, strict=True)
        ]
        readings = [r for r in map(_read_slot, phrases) if r != _EMPTY]
        reading = _agree(readings)
    return None if isinstance(reading, str) else reading


def extract_final_answer(text: Any) -> str | None:
    """The one final answer of a completion, as written (``"18"``, ``"$18.00"``), or None.

    (Lower-cased when it comes from a phrase: "The answer is Eighteen" gives ``"eighteen"``.)

    Read from ``<answer>`` tags, ``\\boxed{}``, ``#### N`` or "the (final) answer is N". None when
    the answer is missing or empty, when it offers several candidates (``18 19 20``, ``18 or 19``,
    ``17-19``, ``18 \u00b1 1``, a list), or when final answers conflict (two different ``<answer>``
    values, a tag that disagrees with a box). An answer stated with its working is its result.
    """
    found = _safe(_final_answer, completion_text(text))
    return found[0] if found else None


def is_correct(completion: Any, gold: Any) -> bool:
    """Exact numeric equality of the completion's final answer with ``gold``.

    No tolerance and no percent rescaling: ``0.2`` is not ``20``, ``17.99`` is not ``18``.
    """
    gold_value = _safe(parse_number, gold)
    if not isinstance(gold_value, Fraction):  # None, or 0 from a failed parse
        return False
    found = _safe(_final_answer, completion_text(completion))
    return bool(found) and found[1] == gold_value


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
    """1.0 when the final answer equals the gold ``answer`` exactly, else 0.0 (one per completion).

    ``answer`` is the GSM8K column TRL passes, one gold per completion; a single gold is used for
    all completions, a missing one scores 0.
    """
    completions = _as_list(completions)
    golds = answer if isinstance(answer, list | tuple) else [answer] * len(completions)
    rewards = []
    for i, completion in enumerate(completions):
        gold = golds[i] if i < len(golds) else None
        rewards.append(1.0 if _safe(is_correct, completion, gold) else 0.0)
    return rewards


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
