"""Self-checking exercises: a check says right or wrong and never prints the answer.

An exercise cell leaves the learner's slot empty (``answer = None``, or a body that raises
``NotImplementedError``), so Run All passes and the check says "not attempted yet".
:func:`check_answer` compares with a SHA-256 *digest* of the rounded answer, so the source does
not give it away; :func:`check_property` accepts any value with a property (open exercises);
:func:`check_function` runs the learner's function against the course's own on a few inputs and
names the first input where they differ. The solutions notebooks call the same checks with
``assert``, so the suite proves each check accepts its solution. Checks never raise: a
participant who runs all cells gets to the end.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

NOT_ATTEMPTED = "not attempted yet: fill in your answer above and run this cell again"


def _canonical(value: Any, decimals: int) -> str:
    """One string per value: numbers rounded to ``decimals`` places (so float noise does not
    matter), sequences element by element, strings stripped and lower-cased."""
    if hasattr(value, "tolist"):  # numpy arrays and torch tensors
        value = value.tolist()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        number = round(float(value), decimals)
        if number == 0:
            number = 0.0  # -0.0 and 0.0 are the same answer
        return f"{number:.{decimals}f}"
    if isinstance(value, str):
        return " ".join(value.strip().lower().split())
    if isinstance(value, Iterable):
        return "[" + ",".join(_canonical(v, decimals) for v in value) + "]"
    raise TypeError(f"cannot check a value of type {type(value).__name__}")


def digest(value: Any, decimals: int = 3) -> str:
    """The digest an exercise stores instead of its answer (authors call this once)."""
    return hashlib.sha256(_canonical(value, decimals).encode()).hexdigest()[:16]


def _report(exercise: str, right: bool, message: str = "") -> bool:
    mark = "right" if right else "not yet"
    print(f"{exercise}: {mark}" + (f" ({message})" if message else ""))
    return right


def check_answer(exercise: str, answer: Any, expected_digest: str, decimals: int = 3,
                 hint: str = "") -> bool:
    """Whether ``answer`` matches the expected value (given only as its :func:`digest`).

    Prints "right" or "not yet" (with ``hint`` when wrong) and returns the verdict; ``None``
    counts as not attempted. Never raises and never prints the expected value.
    """
    if answer is None or answer is Ellipsis:
        return _report(exercise, False, NOT_ATTEMPTED)
    try:
        right = digest(answer, decimals) == expected_digest
    except TypeError as error:
        return _report(exercise, False, str(error))
    return _report(exercise, right, "" if right else hint)


def _close(a: Any, b: Any, atol: float) -> bool:
    if hasattr(a, "tolist"):
        a = a.tolist()
    if hasattr(b, "tolist"):
        b = b.tolist()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=atol) or (
            math.isnan(float(a)) and math.isnan(float(b)))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, atol) for x, y in zip(a, b))
    return a == b


def check_function(exercise: str, candidate: Callable[..., Any], reference: Callable[..., Any],
                   cases: Sequence[tuple], atol: float = 1e-6, hint: str = "") -> bool:
    """Whether ``candidate(*case) == reference(*case)`` (within ``atol``) for every case.

    A candidate that still raises ``NotImplementedError`` counts as not attempted; any other
    exception is reported by its type and message, with the case that caused it.
    """
    for number, case in enumerate(cases, start=1):
        try:
            got = candidate(*case)
        except NotImplementedError:
            return _report(exercise, False, NOT_ATTEMPTED)
        except Exception as error:  # noqa: BLE001 (a learner's bug must not stop Run All)
            return _report(exercise, False, f"case {number} raised {type(error).__name__}: {error}")
        if not _close(got, reference(*case), atol):
            extra = f"; {hint}" if hint else ""
            return _report(exercise, False, f"case {number} of {len(cases)} differs{extra}")
    return _report(exercise, True, f"{len(cases)} cases")


def check_property(exercise: str, value: Any, holds: Callable[[Any], bool],
                   hint: str = "") -> bool:
    """Whether ``value`` has the property an open exercise asks for (``holds(value)`` is true).

    ``None`` counts as not attempted; an exception inside ``holds`` is reported, not raised.
    """
    if value is None or value is Ellipsis:
        return _report(exercise, False, NOT_ATTEMPTED)
    try:
        right = bool(holds(value))
    except NotImplementedError:  # a function the learner has not written yet
        return _report(exercise, False, NOT_ATTEMPTED)
    except Exception as error:  # noqa: BLE001 (a learner's value must not stop Run All)
        return _report(exercise, False, f"{type(error).__name__}: {error}")
    return _report(exercise, right, "" if right else hint)
