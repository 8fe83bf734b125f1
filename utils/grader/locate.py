"""Answer location: which one number a completion commits to as its final answer.

Step 1 of ``POLICY.md`` (its rules ``answer-sources`` to ``to-the-grader``): answer slots outside
the reasoning, then answer phrases, then the last statement, then slots inside the reasoning;
revisions, candidates, working and restatements. Numbers themselves are read by
:mod:`utils.grader.numerals`; whether the answer is the gold is :mod:`utils.grader.compare`'s job.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

from utils.grader import grouping
from utils.grader.numerals import (
    _MAX_DIGITS,
    _MAX_SLOT_CHARS,
    _NUMBER,
    _NUMBER_RE,
    _WORD_TENS,
    _WORD_UNITS,
    COMPOUND_RE,
    Quantity,
    _clean_number_text,
    _first_word,
    _normalise,
    _read_compound,
    compound_spans,
    quantity_tokens,
    read_quantity,
)
from utils.grader.units import unit_name
from utils.grader.words import spelled_to_digits
from utils.prompts import ANSWER_CLOSE, ANSWER_OPEN, TAGS, THINK_CLOSE, THINK_OPEN

_HEDGE_RE = re.compile(
    r"\b(?:or|either|maybe|perhaps|possibly|probably|between|wait|actually|instead|oder|ou"
    r"|oppure|quiz[a\u00e1]s|peut-\u00eatre|vielleicht|forse|talvez|entre|zwischen)\b"
    r"|\u00b1|\+/-|\+-|-/\+|\u6216|\u4e5f\u8bb8|\u53ef\u80fd",
    re.IGNORECASE,
)
# An approximate, bounded or doubtful answer is not an exact final answer, even with one number.
_QUALIFIER_RE = re.compile(
    r"[\u2248\u2264\u2265]|~\s*[$\u00a3\u20ac]?\d|\\approx|\\sim\b|\b(?:about|approximately|approx"
    r"|around|roughly|nearly|almost|at least|at most|more than|less than|up to|or so|or more"
    r"|or less|or fewer|maybe|perhaps|probably|possibly|could be|might be|not sure|unsure"
    r"|i guess|estimated?|aproximadamente|alrededor de|environ|\u00e0 peu pr\u00e8s|etwa"
    r"|ungef\u00e4hr|circa|cerca de|quase|casi|presque)\b"
    r"|\u5927\u7ea6|\u5927\u6982|\u5de6\u53f3|\u81f3\u5c11|\u6700\u591a|\u5dee\u4e0d\u591a",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(r"\d%?\s*(?:-|\u2014|\bto\b|\bthrough\b)\s*[$\u00a3\u20ac]?\d")
_LIST_FILLER_RE = re.compile(r"(?:[\s,;/|&\[\](){}.:*]|\band\b|\bor\b)+", re.IGNORECASE)
_PAREN_RE = re.compile(r"\([^()]*\)")
_LEADING_RE = re.compile(
    r"\s*(" + _NUMBER + r")(?:\s*+[a-zA-Z]++){0,3}\s*+"
    r"(?:[,;:(\n\u2014]|-\s++(?![\d$(])|\bbecause\b|\bsince\b|\bas\b|\bfrom\b)",
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
# The same in Spanish, French, German, Italian, Portuguese ("la respuesta es", "Antwort:") and
# Chinese (答案是, 答案：); only looked for when one of these words is in the text.
_FOREIGN_PHRASE_RE = re.compile(
    r"\b(?:respuesta|r[e\u00e9]ponse|antwort|risposta|resposta)(?:\s+(?:final(?:e|mente)?|correcta"
    r"|correcte|corretta|correta))?\s*\**\s*(?:es|est|ist|lautet|\u00e8|\u00e9|e|:|=)\s*:?\s*\**"
    r"|(?:\u6700\u7ec8|\u6700\u540e\u7684?)?\u7b54\u6848\s*"
    r"(?:\u662f|\u4e3a|\u70ba|:|\uff1a)\s*:?\s*"
    r"|\u7b54\s*[:\uff1a]\s*",
    re.IGNORECASE,
)
_FOREIGN_HINTS = ("respuesta", "ponse", "antwort", "risposta", "resposta", "\u7b54")
_SENTENCE_END_RE = re.compile(r"\.(?!\d)|\n|[\u3002\uff01\uff1f\uff1b]")
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
# Text that says why an answer changes: an answer phrase after it revises an answer slot.
_REVISION_CUE_RE = re.compile(
    r"\b(?:wait|actually|mistake|mis[- ]?(?:added|read|calculated|counted|took)|wrong|re-?check"
    r"|re-?do|re-?calculat\w*|recomput\w*|correction|corrected|correcting|sorry|oops|on second"
    r" thought|double[- ]check|espera|en realidad|error|attends|en fait|erreur|warte|eigentlich"
    r"|fehler|aspetta|in realt\u00e0|errore|espere|na verdade|erro)\b"
    r"|\u7b49\u7b49|\u4e0d\u5bf9|\u9519\u4e86|\u5176\u5b9e|\u66f4\u6b63", re.IGNORECASE)
_DOUBT_RE = re.compile(r"\b(?:or|maybe|perhaps|possibly|probably|alternatively|either|could"
                       r"|might)\b", re.IGNORECASE)
# Text addressed to the grader is not an answer (the free-text rules never read it).
_TO_THE_GRADER_RE = re.compile(
    r"\b(?:grader|grading|evaluator|reward\s*(?:=|:|of|is)\s*1\b|ignore (?:all |the )?"
    r"(?:previous|prior|above)"
    r"|mark (?:this|it|me|the answer) (?:as )?correct|output 1)\b",
    re.IGNORECASE,
)
_STATEMENT_END_RE = re.compile(r"[.!?](?=\s)|\n|[\u3002\uff01\uff1f]")
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
_PHRASE_REACH = 300  # answer phrases this far before the first slot may state the same answer

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
    spelled = spelled_to_digits(text)  # "forty dollars" -> "40 dollars"
    tokens = quantity_tokens(spelled)
    if len(tokens) > 1 and (_HEDGE_RE.search(spelled)
                            or not _LIST_FILLER_RE.sub("", _NUMBER_RE.sub("", spelled))):
        return _AMBIGUOUS  # several candidates (checked first: it is the cheap common case)
    quantity = read_quantity(text)
    if quantity is not None:
        return _Reading(text, quantity, slot)
    if not tokens:
        return _EMPTY
    if len(tokens) == 1:
        return _token(tokens[0], spelled)
    return _read_working(spelled, slot, question)


def _read_working(text: str, source: str, question: str = "") -> _Reading | str:
    """The result of an answer written with its working (several numbers, no hedge).

    When all its numbers but one are given in the ``question``, that one is
    the result ("There are 3 fields of 45 rows, so he has 135 rows"). When no rule finds it, a
    sentence (four words or more) states its result last: "She sells 9 eggs at $2 each for $18 a
    day." A bare list of quantities (``2 hours 30 minutes``) states none.
    """
    kept = compound_spans(text) if "(" in text else []  # "60 minutes (1 hour)" is one quantity
    outside = _PAREN_RE.sub(  # "20 cups (60 - 40)": the parentheses justify
        lambda m: m.group() if any(a <= m.start() < b for a, b in kept) else " ", text)
    if compound_spans(text, conflicts=True):
        return _AMBIGUOUS  # "60 minutes (2 hours)": one quantity said two ways that disagree
    remaining = quantity_tokens(outside)
    if len(remaining) == 1:
        return _token(remaining[0], outside, source)
    if "=" in outside:
        reading = _read_equation(outside, source)
        if isinstance(reading, _Reading) or not _word_count(outside):
            return reading  # else a sentence around the working: "3 - 8 = -5, so it is -5"
    if "=" not in outside and _RANGE_RE.search(outside):  # "3 - 8 = -5" is working, not a range
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
    if _word_count(outside) >= 4:
        return _token(remaining[-1], outside, source)
    return _AMBIGUOUS


_LETTERS_RE = re.compile(r"[^\W\d_]+")


def _word_count(text: str) -> int:
    """Words of any script; a Chinese character counts as one."""
    return sum(len(w) if "\u4e00" <= w[0] <= "\u9fff" else 1 for w in _LETTERS_RE.findall(text))


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
    if not readings:
        return _AMBIGUOUS
    # "6/40 = 15%": a fraction and the same percentage agree; the percentage is the result
    values = {r.quantity.value / 100 if r.quantity.percent else r.quantity.value
              for r in readings if isinstance(r, _Reading)}
    if len(readings) > 1 and len(values) == 1 and readings[-1].quantity.percent and all(
            isinstance(r, _Reading) for r in readings):
        return readings[-1]
    return _agree(readings)


def _token(match: re.Match, text: str, source: str | None = None, group: int = 0) -> _Reading | str:
    """The number a regex match points at, read with the words around it that change it: a unit
    word after it, "below zero" after it, "negative" right before it."""
    token = match.group(group)
    if token[:1].isdigit() and (compound := COMPOUND_RE.match(text, match.start(group))):
        quantity = _read_compound(compound.group())
        if quantity is not None:
            return _Reading(compound.group().strip(), quantity, text if source is None else source)
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


_TOKEN_BELOW_ZERO_RE = re.compile(
    r"(?:\s*(?:\u00b0\s*[CF]?|degrees?(?: (?:celsius|fahrenheit))?|grados?|degr[e\u00e9]s?|grad"
    r"|gradi|graus?))?\s+below (?:zero|0)\b", re.IGNORECASE)
_NEGATIVE_BEFORE_RE = re.compile(r"\b(?:negative|negativo|n[e\u00e9]gatif)\s*$"
                                 r"|(?<!\d\s)(?<!\d)\b(?:minus|menos|moins|meno)\s+$",
                                 re.IGNORECASE)


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
                          read: Callable[[str], _Reading | str],
                          anchors: set[int] | None = None) -> _Reading | str:
    """The reading of the final answer among ``spans``: the last group of statements
    (``last-answer-wins``, ``stated-together-agree``).

    Statements with only connectors between them (or a short "or"/"maybe" gap) form one group and
    must agree; a later group after real text revises the earlier ones. With ``anchors`` (the
    starts of the answer slots) answer phrases are among the spans: next to a slot they agree with
    it or contradict it; after it they revise it only when the text between says why ("Wait",
    "I made a mistake"), else the last group holding a slot is final.
    """
    groups = [[spans[0]]]
    group_end = spans[0][1]
    for span in spans[1:]:
        if span[0] < group_end or _one_answer_between(text[group_end:span[0]]):
            groups[-1].append(span)
        else:
            groups.append([span])
        group_end = max(group_end, span[1])
    group = groups[-1]
    if anchors is not None and not any(span[0] in anchors for span in group):
        slotted = next(g for g in reversed(groups) if any(span[0] in anchors for span in g))
        between = text[max(end for _, end, _ in slotted):group[0][0]]
        if (not _REVISION_CUE_RE.search(between) or _to_the_grader(between)
                or not isinstance(_read_group(slotted, read), _Reading)):
            group = slotted  # "...</answer> Question 2: ... The answer is 7" starts a new problem
    return _read_group(group, read)


def _read_group(group: list[tuple[int, int, str]],
                read: Callable[[str], _Reading | str]) -> _Reading | str:
    """The one answer a group of statements states: they must agree."""
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
    matches = [(m.start() - 1, m.end()) for m in _ANSWER_PHRASE_RE.finditer(lower)
               if lower[m.start() - 1:m.start()] == "a"
               and not lower[max(m.start() - 2, 0):m.start() - 1].isalnum()]
    if not lower.isascii() or any(hint in lower for hint in _FOREIGN_HINTS[:-1]):
        matches = sorted(matches + [m.span() for m in _FOREIGN_PHRASE_RE.finditer(outside)])
    spans = []
    for i, (start, end) in enumerate(matches):
        limit = matches[i + 1][0] if i + 1 < len(matches) else len(lower)
        window = outside[end:min(limit, end + 300)]
        phrase = _SENTENCE_END_RE.split(window, maxsplit=1)[0]
        if any(ch.isdigit() for ch in phrase) or any(
                ch.isdigit() for ch in spelled_to_digits(phrase, whole=True)):
            spans.append((start, end + len(phrase), phrase))
    return spans


def _looks_finished(text: str) -> bool:
    """A completion cut off mid-sentence (max tokens) has not stated its last sentence yet."""
    tail = text.rstrip().rstrip("*_`\"' ")
    if not tail or tail[-1] in ".!?)]}$%\u3002\uff01\uff1f" or tail[-1].isdigit():
        return True
    return len(tail.rsplit("\n", 1)[-1].split()) <= 8


def _final_statement(outside: str, question: str = "") -> _Reading | str:
    """The answer stated by the last sentence that states a number (``answer-sources``): a bold
    number in it, else the number it states as a result; a question or a doubtful sentence states
    none."""
    if not _looks_finished(outside):
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
    tokens = quantity_tokens(text)
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
    """The last sentence (or line) of ``text`` that states a number (in digits or in words,
    returned in digits) and is not a check or a note added after the result, with its end mark."""
    starts = [0] + [m.end() for m in _STATEMENT_END_RE.finditer(text)]
    ends = starts[1:] + [len(text)]
    for start, end in zip(reversed(starts), reversed(ends), strict=True):
        sentence = spelled_to_digits(text[start:end].strip())
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
    number (``restatement``): two or more content words, at least two thirds of them in that
    sentence."""
    words = _content_words(_NUMBER_RE.sub(" ", reading.source))
    if len(words) < 2:
        return False
    unit = unit_name(reading.quantity.unit) if reading.quantity.unit else ""
    for sentence in re.split(r"(?<=[.!?])\s+", question):
        found = [(read_quantity(m.group()), _first_word(sentence[m.end():]))
                 for m in _NUMBER_RE.finditer(sentence)]
        same = {unit_name(w) for q, w in found if q and q.value == reading.quantity.value and w}
        if unit and same and unit not in same:
            continue  # "60 minutes" does not repeat the question's "60 pages"
        values = {q.value for q, _ in found if q is not None}
        values |= {_WORD_UNITS.get(w, _WORD_TENS.get(w)) for w in _WORD_RE.findall(sentence.lower())}
        if reading.quantity.value in values:
            shared = words & _content_words(sentence)
            if 3 * len(shared) >= 2 * len(words):
                return True
    return False


def _final_reading(text: str, question: str = "") -> _Reading | str:
    """The final answer of a completion under step 1 of the grading policy."""
    text = grouping.regroup(_normalise(text), question)
    if "<" in text and any(tag not in TAGS for tag in _TAG_FIND_RE.findall(text)):
        text = _ANY_TAG_RE.sub(lambda m: _CANONICAL_TAGS[m[1], m[2].lower()], text)
    outside = _outside_reasoning(text)
    read = functools.partial(_read_slot, question=question) if question else _read_slot
    spans = _slot_spans(outside)
    if spans:  # with the phrases around them: "<answer>14</answer> The answer is 18" conflicts
        near = max(0, spans[0][0] - _PHRASE_REACH)  # a phrase far before every slot is no neighbour
        phrases = [(a + near, b + near, phrase) for a, b, phrase in _phrase_spans(outside[near:])
                   if not any(start < b + near and a + near < end for start, end, _ in spans)]
        reading = _last_statement_group(outside, sorted(spans + phrases), read,
                                        anchors={start for start, _, _ in spans})
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



def extract_final_answer(text: Any, question: str | None = None) -> str | None:
    """The one final answer of a completion, as written (``"18"``, ``"$18.00"``), or None.

    Read under the grading policy of this module: ``<answer>`` tags, ``\\boxed{}``, ``#### N``,
    then "the (final) answer is N", then the last statement (the last one of each is final).
    None when the answer is missing or empty, when it offers several candidates (``18 19 20``,
    ``18 or 19``, ``17-19``, ``18 \u00b1 1``, a list), when answers stated together conflict, or
    when, given the ``question``, the answer only restates it. An answer stated with its working
    is its result. (Lower-cased when it comes from a phrase: "The answer is Eighteen".)
    """
    reading = never_raise(_final_reading, completion_text(text),
                    question if isinstance(question, str) else "")
    return reading.text if isinstance(reading, _Reading) else None


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



def never_raise(function: Callable, *args: Any) -> Any:
    """Run a reward rule; an unexpected error gives 0 (no reward) rather than crash a training run."""
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a reward must never take down the trainer
        return 0


