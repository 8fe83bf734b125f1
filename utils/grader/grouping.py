"""Digit grouping that a completion itself shows: ``57.500 $`` after ``1.150 $ x 50``.

In general a dot followed by three digits is a decimal point (``1.234`` is 1.234). Many languages
group thousands with dots (``1.150 $``, ``65.960 dólares``) and write decimals with a comma; a
completion that shows it is read that way, as a whole, before anything else (:func:`regroup`).
It shows it when it writes, anywhere:

- a number with two dot groups or a dot group and a decimal comma (``1.150.000``, ``1.150,50``);
- an amount of money with three digits after the dot (``1.150 $``, ``€2.400``): money is never
  written to a tenth of a cent;
- a dotted number that is, grouped, a number the question gives and, as a decimal, not one
  (``1.150`` for the question's ``$1,150``);
- arithmetic that is true only when the dots group (``1.150 + 350 = 1.500``);

and nothing against it: no decimal written with a dot (``2.5``), no comma groups (``1,150``), no
arithmetic true only with decimals, no dotted three-digit number in the question. Left out on
purpose: a completion that shows neither way keeps the general rule.
"""

from __future__ import annotations

import re
from fractions import Fraction

_DOT_GROUPED_RE = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:\.\d{3})+(?:,\d{1,2})?(?!\d|[.,]\d)")
_DOT_HINT_RE = re.compile(r"\.\d{3}(?!\d)")  # a fast first look: a literal first, no lookbehind
_DOT_DECIMAL_RE = re.compile(r"(?<![\d.,])\d+\.(?:\d{1,2}|\d{4,})(?!\d|[.,]\d)")
_COMMA_GROUP_RE = re.compile(r"\d,\d{3}(?!\d)")
_COMMA_DECIMAL_RE = re.compile(r"(?<![\d.,])(\d+),(\d{1,2})(?!\d|[.,]\d)")
_MONEY = (r"(?:[$\u00a3\u20ac]|\b(?:d[o\u00f3]lar(?:es)?|dollars?|dollari|euros?|pesos|reais"
          r"|francs?|franken)\b|\u7f8e\u5143|\u5143)")
_NEXT_TO_MONEY_RE = re.compile(
    rf"{_MONEY}\s*{_DOT_GROUPED_RE.pattern}|{_DOT_GROUPED_RE.pattern}\s*{_MONEY}", re.IGNORECASE)
_AMOUNT = r"(?:[$\u00a3\u20ac]\s*)?\d[\d.,]*(?:\s*[$\u00a3\u20ac])?"
# The two sides of an equation, read around each "=" in a bounded window (linear time).
_LEFT_RE = re.compile(rf"({_AMOUNT}(?:\s*[-+x\u00d7*\u00b7/\u00f7]\s*{_AMOUNT}){{1,8}})\s*$")
_RIGHT_RE = re.compile(rf"\s*({_AMOUNT})")
_WINDOW, _MAX_EQUATIONS = 100, 50
_QUESTION_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _grouped(token: str) -> Fraction | None:
    """A number read with dots grouping thousands and a decimal comma."""
    token = token.strip(" $\u00a3\u20ac").rstrip(".,")
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?", token):
        return Fraction(token.replace(".", "").replace(",", "."))
    return None


def _decimal(token: str) -> Fraction | None:
    """A number read the general way: commas group thousands, the dot is a decimal point."""
    token = token.strip(" $\u00a3\u20ac").rstrip(".,")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", token):
        return Fraction(token.replace(",", ""))
    return None


def _evaluate(expression: str, read) -> Fraction | None:
    """``1.150 x 50`` under one reading of its numbers; multiplication before addition."""
    parts = re.findall(rf"{_AMOUNT}|[-+x\u00d7*\u00b7/\u00f7]", expression)
    values = [read(p) for p in parts[::2]]
    if any(v is None for v in values) or len(parts) % 2 == 0:
        return None
    terms, signs = [values[0]], []
    for op, value in zip(parts[1::2], values[1:], strict=True):
        if op in "x\u00d7*\u00b7":
            terms[-1] *= value
        elif op in "/\u00f7":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            terms.append(value)
            signs.append(op)
    total = terms[0]
    for sign, term in zip(signs, terms[1:], strict=True):
        total = total + term if sign == "+" else total - term
    return total


def _equations(text: str):
    """``(left side, right side)`` of the equations with a dot-grouped number, the first few."""
    position, found = text.find("="), 0
    while position >= 0 and found < _MAX_EQUATIONS:
        start = max(0, position - _WINDOW)
        if _DOT_HINT_RE.search(text, start, position + _WINDOW):
            left = _LEFT_RE.search(text, start, position)
            right = _RIGHT_RE.match(text, position + 1, position + _WINDOW)
            if left and right and _DOT_GROUPED_RE.search(left.group(1) + " = " + right.group(1)):
                found += 1
                yield left.group(1), right.group(1)
        position = text.find("=", position + 1)


def _arithmetic(text: str) -> tuple[bool, bool]:
    """(an equation true only with grouping dots, one true only with decimal dots)."""
    grouped = decimal = False
    for left, right in _equations(text):
        as_groups = _evaluate(left, _grouped)
        as_decimals = _evaluate(left, _decimal)
        true_grouped = as_groups is not None and as_groups == _grouped(right)
        true_decimal = as_decimals is not None and as_decimals == _decimal(right)
        grouped |= true_grouped and not true_decimal
        decimal |= true_decimal and not true_grouped
    return grouped, decimal


def shows_dot_grouping(text: str, question: str = "") -> bool:
    """Whether the completion ``text`` shows that its dots group thousands (module docstring)."""
    candidates = [m.group() for m in _DOT_GROUPED_RE.finditer(text)]
    if not candidates or _DOT_DECIMAL_RE.search(text) or _COMMA_GROUP_RE.search(text):
        return False
    if question and _DOT_GROUPED_RE.search(question):
        return False
    grouped, decimal = _arithmetic(text)
    if decimal:
        return False
    if grouped or any(c.count(".") > 1 or "," in c for c in candidates):
        return True
    if _NEXT_TO_MONEY_RE.search(text):
        return True
    if question:
        given = {_decimal(n) for n in _QUESTION_NUMBER_RE.findall(question)}
        return any(_grouped(c) in given and _decimal(c) not in given for c in candidates)
    return False


def regroup(text: str, question: str = "") -> str:
    """``text`` with dot-grouped numbers rewritten plainly (``57.500`` -> ``57500``, ``2,5`` ->
    ``2.5``) when it shows dot grouping; otherwise unchanged."""
    if "." not in text or not _DOT_HINT_RE.search(text) or not _DOT_GROUPED_RE.search(text):
        return text
    if not shows_dot_grouping(text, question):
        return text
    text = _DOT_GROUPED_RE.sub(lambda m: m.group().replace(".", "").replace(",", "."), text)
    return _COMMA_DECIMAL_RE.sub(r"\1.\2", text)
