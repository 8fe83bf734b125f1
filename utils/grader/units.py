"""Units: one name per unit, its family, and the exact factors used to read a compound quantity.

``unit_name("Minutes")`` is ``"minute"``; ``unit_name("horas")`` is ``"hour"``. The families say
which units compete for one answer (``18 hours`` is wrong when the question asks "how many
minutes"). Factors are exact and only where they are fixed (no months in days): they are used to
read ``2 hours 40 minutes`` or ``60 minutes (1 hour)``, never to convert a single stated quantity.
"""

from __future__ import annotations

import functools
from fractions import Fraction

# family -> {unit: factor in the family's smallest unit}; None: no fixed factor (never converted)
FAMILIES: dict[str, dict[str, int | None]] = {
    "time": {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
             "month": None, "year": None},
    "length": {"millimeter": 1, "centimeter": 10, "meter": 1000, "kilometer": 1_000_000,
               "inch": None, "foot": None, "yard": None, "mile": None},
    "imperial_length": {"inch": 1, "foot": 12, "yard": 36, "mile": 63360},
    "weight": {"gram": 1, "kilogram": 1000, "ounce": None, "pound": None, "ton": None},
    "imperial_weight": {"ounce": 1, "pound": 16},
    "volume": {"milliliter": 1, "liter": 1000, "gallon": None, "quart": None, "pint": None,
               "cup": None},
    "money": {"cent": None, "dollar": None},
    "calendar": {"month": 1, "year": 12},
}
# The families the unit rule compares in (``_same_family``): metric and imperial lengths compete.
_RULE_FAMILIES = ("time", "length", "weight", "volume", "money")

_ALIASES = {
    # English abbreviations and irregular plurals
    "sec": "second", "secs": "second", "s": "second", "min": "minute", "mins": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "ft": "foot", "feet": "foot", "yd": "yard",
    "yds": "yard", "mi": "mile", "mm": "millimeter", "cm": "centimeter", "m": "meter",
    "metre": "meter", "km": "kilometer", "kilometre": "kilometer", "centimetre": "centimeter",
    "millimetre": "millimeter", "g": "gram", "kg": "kilogram", "oz": "ounce", "lb": "pound",
    "lbs": "pound", "ml": "milliliter", "l": "liter", "litre": "liter",
    "millilitre": "milliliter", "usd": "dollar", "buck": "dollar",
    # Spanish, French, German, Italian, Portuguese (plurals listed: their endings vary)
    "segundo": "second", "segundos": "second", "seconde": "second", "secondes": "second",
    "sekunde": "second", "sekunden": "second", "secondo": "second", "secondi": "second",
    "minuto": "minute", "minutos": "minute", "minuten": "minute", "minuti": "minute",
    "hora": "hour", "horas": "hour", "heure": "hour", "heures": "hour", "stunde": "hour",
    "stunden": "hour", "ora": "hour", "ore": "hour",
    "dia": "day", "día": "day", "dias": "day", "días": "day", "jour": "day", "jours": "day",
    "tage": "day", "tagen": "day", "giorno": "day", "giorni": "day",
    "semana": "week", "semanas": "week", "semaine": "week", "semaines": "week",
    "woche": "week", "wochen": "week", "settimana": "week", "settimane": "week",
    "mes": "month", "meses": "month", "mois": "month", "monat": "month", "monate": "month",
    "mese": "month", "mesi": "month", "año": "year", "años": "year", "ano": "year",
    "anos": "year", "ans": "year", "année": "year", "années": "year",
    "jahr": "year", "jahre": "year", "jahren": "year", "anno": "year", "anni": "year",
    "metro": "meter", "metros": "meter", "mètre": "meter", "mètres": "meter",
    "kilómetro": "kilometer", "kilómetros": "kilometer", "quilômetro": "kilometer",
    "quilômetros": "kilometer", "kilomètre": "kilometer", "kilomètres": "kilometer",
    "kilogramo": "kilogram", "kilogramos": "kilogram", "quilo": "kilogram", "quilos": "kilogram",
    "gramo": "gram", "gramos": "gram", "grama": "gram", "gramas": "gram",
    "litro": "liter", "litros": "liter", "dólar": "dollar", "dólares": "dollar",
    "dolar": "dollar", "dolares": "dollar", "dollari": "dollar", "dollaro": "dollar",
    # Chinese
    "秒": "second", "秒钟": "second", "分钟": "minute", "小时": "hour", "个小时": "hour",
    "天": "day", "周": "week", "星期": "week", "个月": "month", "月": "month", "年": "year",
    "毫米": "millimeter", "厘米": "centimeter", "米": "meter", "公里": "kilometer",
    "千米": "kilometer", "克": "gram", "千克": "kilogram", "公斤": "kilogram", "升": "liter",
    "毫升": "milliliter", "美元": "dollar", "元": "dollar", "块": "dollar", "块钱": "dollar",
}
_NAMES = frozenset(name for table in FAMILIES.values() for name in table)
# Every word that names a unit with a fixed factor, lower-cased, plural or not (a fast first look).
UNIT_WORDS = frozenset(
    [w for w, name in _ALIASES.items() if any(FAMILIES[f].get(name) for f in FAMILIES)]
    + [n + end for table in FAMILIES.values() for n, f in table.items() if f for end in ("", "s")]
    + ["feet", "inches", "hrs", "mins", "secs", "lbs"])
# Chinese unit words longest first, to read the unit glued to a number ("2小时40分钟").
CJK_UNITS = tuple(sorted((w for w in _ALIASES if not w.isascii() and "\u4e00" <= w[0] <= "\u9fff"),
                         key=len, reverse=True))


@functools.lru_cache(maxsize=4096)
def unit_name(word: str) -> str:
    """One name per unit: ``Minutes`` -> ``minute``, ``feet`` -> ``foot``, ``horas`` -> ``hour``,
    ``小时`` -> ``hour``; a word that is no known unit comes back lower-cased (singular)."""
    word = word.lower()
    forms = [word] + ([word[:-1]] if len(word) > 2 and word.endswith("s") else []) + (
        [word[:-2]] if len(word) > 3 and word.endswith("es") else [])  # inches, horas
    for form in forms:
        if form in _ALIASES:
            return _ALIASES[form]
        if form in _NAMES:
            return form
    return word.removesuffix("s") if len(word) > 2 else word


def same_family(unit: str, other: str) -> bool:
    """Whether two unit names compete for one answer (minutes and hours; miles and km)."""
    return any(unit in FAMILIES[f] and other in FAMILIES[f] for f in _RULE_FAMILIES) or (
        unit in FAMILIES["imperial_length"] and other in FAMILIES["imperial_length"])


def factor(unit: str, family: str) -> int | None:
    return FAMILIES[family].get(unit)


def exact_family(units: list[str]) -> str | None:
    """The family in which all ``units`` have fixed factors (for reading a compound), or None."""
    for family, table in FAMILIES.items():
        if all(table.get(unit) is not None for unit in units):
            return family
    return None


def in_units(amounts: list[tuple[Fraction, str]], family: str) -> Fraction:
    """The sum of ``(amount, unit)`` parts in the family's smallest unit."""
    return sum((amount * FAMILIES[family][unit] for amount, unit in amounts), start=Fraction(0))
