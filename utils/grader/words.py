"""Spelled-out numbers become digits: English, Spanish, French, German, Italian, Portuguese words
and Chinese numerals.

:func:`spelled_to_digits` rewrites ``forty dollars`` as ``40 dollars``, ``cuarenta y dos`` as
``42``, ``zweiundvierzig`` as ``42``, ``quatre-vingt-dix`` as ``90``, ``十八`` as ``18``, ``零下五度``
as ``-5度`` and ``三分之一`` as ``1/3``, so that the rest of the grader reads digits only. Words
that are also ordinary words (``one``, the articles ``un``/``ein``/``uma``, ``once``, ``due``,
``cent``) count only next to another number word, unless the text is the answer itself
(``whole=True``). Left out on purpose: ordinals, "half", "point five", years read as two numbers.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from fractions import Fraction

# kind: "unit" 0-9, "teen" 10-19 (and Spanish 21-29, one word), "tens" 20-90, "hundreds" 200-900
# in one word (doscientos), "hundred" (multiplies what precedes it, or 1), "scale" (thousand up),
# "zero".
_LEXICON: dict[str, dict[str, tuple[str, int]]] = {}
_CONNECTORS = {"en": "and", "es": "y", "fr": "et", "de": "und", "it": "e", "pt": "e"}
_SCALE_NAMES = {1000: "thousand", 10**6: "million", 10**9: "billion", 10**12: "trillion",
                12: "dozen"}
# Ordinary words that are also number words: a number only next to another number word.
_WEAK = frozenset({"one", "un", "une", "uno", "una", "um", "uma", "ein", "eine", "einen", "einem",
                   "einer", "once", "due", "elf", "otto", "doze", "sept", "sei", "cent", "cents",
                   "null", "dos", "mil", "mila", "ore"})
_ARTICLES = frozenset({"a", "an"})  # "a hundred", "a million", "a dozen"


def _strip_accents(word: str) -> str:
    if word.isascii():
        return word
    word = word.replace("\u00df", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def _add(lang: str, kind: str, words: str, start: int = 0, step: int = 1) -> None:
    for i, word in enumerate(words.split()):
        for variant in word.split("/"):
            _LEXICON.setdefault(_strip_accents(variant), {})[lang] = (kind, start + i * step)


for _lang, _units, _teens, _tens, _hundred, _hundreds in (
    ("en", "zero one two three four five six seven eight nine",
     "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen",
     "twenty thirty forty fifty sixty seventy eighty ninety", "hundred", ""),
    ("es", "cero uno/un/una dos tres cuatro cinco seis siete ocho nueve",
     "diez once doce trece catorce quince dieciséis diecisiete dieciocho diecinueve",
     "veinte treinta cuarenta cincuenta sesenta setenta ochenta noventa", "cien ciento",
     ("doscientos/doscientas trescientos/trescientas cuatrocientos/cuatrocientas "
      "quinientos/quinientas seiscientos/seiscientas setecientos/setecientas "
      "ochocientos/ochocientas novecientos/novecientas")),
    ("fr", "zéro un/une deux trois quatre cinq six sept huit neuf",
     "dix onze douze treize quatorze quinze seize", "vingt trente quarante cinquante soixante",
     "cent cents", ""),
    ("de", "null eins/ein/eine/einen/einem/einer zwei/zwo drei vier fünf sechs sieben acht neun",
     "zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn",
     "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig", "hundert", ""),
    ("it", "zero uno/un/una due tre quattro cinque sei sette otto nove",
     "dieci undici dodici tredici quattordici quindici sedici diciassette diciotto diciannove",
     "venti trenta quaranta cinquanta sessanta settanta ottanta novanta", "cento", ""),
    ("pt", "zero um/uma dois/duas três quatro cinco seis sete oito nove",
     ("dez onze doze treze catorze/quatorze quinze dezesseis/dezasseis dezessete/dezassete "
      "dezoito dezenove/dezanove"),
     "vinte trinta quarenta cinquenta sessenta setenta oitenta noventa", "cem cento",
     ("duzentos/duzentas trezentos/trezentas quatrocentos/quatrocentas quinhentos/quinhentas "
      "seiscentos/seiscentas setecentos/setecentas oitocentos/oitocentas novecentos/novecentas")),
):
    _units_list = _units.split()
    _add(_lang, "zero", _units_list[0])
    _add(_lang, "unit", " ".join(_units_list[1:]), start=1)
    _add(_lang, "teen", _teens, start=10)
    _add(_lang, "tens", _tens, start=20, step=10)
    for _word in _hundred.split():
        _add(_lang, "hundred", _word, start=100)
    if _hundreds:
        _add(_lang, "hundreds", _hundreds, start=200, step=100)
_add("es", "teen", "veintiuno/veintiún/veintiuna veintidós veintitrés veinticuatro veinticinco "
     "veintiséis veintisiete veintiocho veintinueve", start=21)
for _lang, _words in (
    ("en", "thousand/thousands:3 million/millions:6 billion/billions:9 trillion:12 dozen:d"),
    ("es", "mil:3 millón/millones:6"),
    ("fr", "mille:3 million/millions:6 milliard/milliards:9"),
    ("de", "tausend:3 million/millionen:6 milliarde/milliarden:9"),
    ("it", "mille/mila:3 milione/milioni:6 miliardo/miliardi:9"),
    ("pt", "mil:3 milhão/milhões:6 bilhão/bilhões:9"),
):
    for _entry in _words.split():
        _names, _power = _entry.split(":")
        for _name in _names.split("/"):
            _LEXICON.setdefault(_strip_accents(_name), {})[_lang] = (
                "scale", 12 if _power == "d" else 10 ** int(_power))
_LEXICON["quatrevingt"] = _LEXICON["quatrevingts"] = {"fr": ("tens", 80)}

# German and Italian write a number as one word: zweiundvierzig, duecentocinquanta, ventotto.
_MORPHEMES = {
    "de": {w: e["de"] for w, e in _LEXICON.items() if "de" in e} | {"und": ("and", 0)},
    "it": {w: e["it"] for w, e in _LEXICON.items() if "it" in e}
    | {w: ("tens", v) for w, v in (("vent", 20), ("trent", 30), ("quarant", 40), ("cinquant", 50),
                                   ("sessant", 60), ("settant", 70), ("ottant", 80),
                                   ("novant", 90))}
    | {"cent": ("hundred", 100)},
}


@functools.lru_cache(maxsize=8192)
def _segment(word: str, lang: str) -> tuple[tuple[str, int], ...] | None:
    """``zweiundvierzig`` -> ((unit, 2), (and, 0), (tens, 40)): the word as number morphemes,
    longest first; None when it is not one number word of ``lang``."""
    morphemes = _MORPHEMES[lang]
    best: dict[int, tuple | None] = {len(word): ()}
    for start in range(len(word) - 1, -1, -1):
        best[start] = None
        for end in range(len(word), start, -1):
            piece = word[start:end]
            if piece in morphemes and best[end] is not None:
                best[start] = (morphemes[piece], *best[end])
                break
    return best[0] if best[0] and len(best[0]) > 1 else None


@functools.lru_cache(maxsize=8192)
def _lookup(word: str) -> tuple[dict[str, tuple[str, int]], ...] | None:
    """The number tokens of one word (one per morpheme), each as {language: (kind, value)}."""
    key = _strip_accents(word.lower())
    if key in _LEXICON:
        return (_LEXICON[key],)
    if len(key) < 6 or len(key) > 60:
        return None
    for lang in ("de", "it"):
        parts = _segment(key, lang)
        if parts is None:
            continue
        if lang == "de":  # "fünfundzwanzig": the unit before "und" comes after the tens
            ordered: list[tuple[str, int]] = []
            i = 0
            while i < len(parts):
                if i + 2 < len(parts) and parts[i + 1][0] == "and" and parts[i + 2][0] == "tens":
                    ordered += [parts[i + 2], parts[i]]
                    i += 3
                elif parts[i][0] == "and":
                    return None
                else:
                    ordered.append(parts[i])
                    i += 1
            parts = tuple(ordered)
        return tuple({lang: part} for part in parts)
    return None


def is_number_word(word: str) -> bool:
    """Whether ``word`` is a number word (or one written number) of one of the six languages,
    and not also an ordinary word (``one``, ``cents``, ``once``)."""
    return _strip_accents(word.lower()) not in _WEAK and _lookup(word) is not None


def _parse_run(tokens: list[tuple[str, int]], lang: str) -> tuple[int, int, int | None]:
    """``(value, tokens used, scale)``: the longest prefix of ``tokens`` that is one well-formed
    number (units after tens after hundreds, scales descending). ``scale`` is set when the number
    is a plain count followed by one magnitude word (``two million``): it is kept as a word."""
    total, chunk, order, previous_scale, used = 0, 0, 3, None, 0
    last = ("", 0)
    scales = 0
    for index, (kind, value) in enumerate(tokens):
        if kind == "and":
            if index + 1 < len(tokens) and used == index and chunk + total > 0:
                continue  # only between two number words; judged with the next one
            break
        if kind == "zero":
            if index:
                break
            return 0, 1, None
        if kind == "unit":
            french_teen = lang == "fr" and last == ("teen", 10)  # dix-sept
            if not (order > 0 or french_teen):
                break
            chunk, order = chunk + value, 0
        elif kind == "teen":
            french_seventy = lang == "fr" and last[0] == "tens" and last[1] in (60, 80)
            if not (order > 1 or french_seventy):
                break
            chunk, order = chunk + value, 0
        elif kind == "tens":
            if order <= 1:
                break
            chunk, order = chunk + value, 1
        elif kind == "hundreds":
            if order <= 2:
                break
            chunk, order = chunk + value, 2
        elif kind == "hundred":
            if order == 2 or chunk >= 100:
                break
            chunk, order = (chunk or 1) * 100, 2
        elif kind == "scale":
            if previous_scale is not None and value >= previous_scale:
                break
            total, chunk, order, previous_scale = total + (chunk or 1) * value, 0, 3, value
            scales += 1
        last = (kind, value)
        used = index + 1
    if not used:
        return 0, 0, None
    if scales == 1 and tokens[used - 1][0] == "scale" and chunk == 0:
        scale = tokens[used - 1][1]
        return total // scale, used, scale
    return total + chunk, used, None


_LETTERS_RE = re.compile(r"[^\W\d_]+")
_GAP_RE = re.compile(r"[\s\-]*")
_QUATRE_VINGT_RE = re.compile(r"\bquatre[\s-]+vingts?\b", re.IGNORECASE)
_DIGIT_BEFORE_RE = re.compile(r"\d\s*$")
_MAX_RUN = 24  # words in one written number, at most (keeps long word lists linear)
# In a text that also has digits, a number in words right after a determiner or a preposition
# describes ("to fill the two tanks", "in two boxes", "\u8fd9\u4e24\u4e2a"), unless a result word
# comes right before it ("a total of forty", "is forty").
_DESCRIBES_BEFORE_RE = re.compile(
    r"\b(?:the|these|those|both|all|next|first|last|other|another|each|every|in|into|for|with"
    r"|among|between|across|over|per|from|after|before|on|at|by|within|during|of|than|los|las"
    r"|les|des|die|den|der|das|dem|gli|le|os|as|en|dans|pour|avec|para|por|con|mit|f\u00fcr|di"
    r"|da|dos|do)\s+$", re.IGNORECASE)
_CUE_BEFORE_RE = re.compile(r"\b(?:total|sum|is|was|are|were)\s+(?:of\s+)?$", re.IGNORECASE)
_HAN_DESCRIBES_BEFORE_RE = re.compile(r"(?:\u8fd9|\u90a3|\u524d|\u540e|\u5f8c|\u6bcf|\u7b2c)\s*$")
_BELOW_RE = re.compile(r"\bbelow\s+$", re.IGNORECASE)
# "bajo cero", "sous z\u00e9ro", "unter null", "sotto zero", "abaixo de zero": below zero
_BELOW_ZERO_RE = re.compile(r"\b(?:bajo|sous|unter|sotto|abaixo de)\s+(?:cero|z[e\u00e9]ro|null)\b",
                            re.IGNORECASE)


def _word_tokens(word: str) -> tuple[dict[str, tuple[str, int]], ...] | None:
    """A word's number tokens ({language: (kind, value)} each), connectors and "a" included."""
    lower = word.lower()
    if lower in _ARTICLES:
        return ({"en": ("article", 1)},)
    langs = {lang: ("and", 0) for lang, connector in _CONNECTORS.items() if connector == lower}
    return (langs,) if langs else _lookup(word)


def _spell_words(text: str, whole: bool, cued: bool = False) -> str:
    if "vingt" in text.lower():
        text = _QUATRE_VINGT_RE.sub("quatrevingt", text)
    words = list(_LETTERS_RE.finditer(text))
    pieces, position, i = [], 0, 0
    while i < len(words):
        # the run: adjacent number words (spaces or hyphens between) sharing a language; a weak
        # word never narrows the language ("six cents" is English money, "deux cents" French 200)
        run, langs, j = [], None, i
        while j < len(words) and j - i < _MAX_RUN:
            if j > i and not _GAP_RE.fullmatch(text, words[j - 1].end(), words[j].start()):
                break
            tokens = _word_tokens(words[j].group())
            if tokens is None or (j > i and tokens[0].get("en", ("",))[0] == "article"):
                break
            shared = set(tokens[0]) if langs is None else langs & set(tokens[0])
            weak = _strip_accents(words[j].group().lower()) in _WEAK
            if not shared or (langs is not None and weak and shared != langs):
                break
            langs = shared
            run.append((j, tokens))
            j += 1
        if not run:
            i += 1
            continue
        lang = "en" if "en" in langs else min(langs)
        flat, owner = [], []
        for word_index, tokens in run:
            for token in tokens:
                kind, value = token[lang]
                flat.append(("unit", 1) if kind == "article" else (kind, value))
                owner.append(word_index)
        value, used, scale = _parse_run(flat, lang)
        while used and used < len(flat) and owner[used] == owner[used - 1]:
            used -= 1  # never stop inside one word (zweiundvierzig read as zwei)
        if used and used < len(flat):
            value, used, scale = _parse_run(flat[:used], lang)
        if not used:
            i += 1
            continue
        last = owner[used - 1]
        if cued and _DESCRIBES_BEFORE_RE.search(text, 0, words[i].start()) and not \
                _CUE_BEFORE_RE.search(text, 0, words[i].start()):
            i = last + 1  # "= 1250 liters to fill the two tanks": "two" describes, 1250 is stated
            continue
        if flat[0][0] == "zero" and _BELOW_RE.search(text, 0, words[i].start()):
            i += 1  # "seven below zero": read by the sign rules, zero is no second number
            continue
        spoken = [_strip_accents(words[k].group().lower()) for k in range(i, last + 1)]
        count = sum(w not in _CONNECTORS.values() for w in spoken)
        if spoken[0] in _ARTICLES and count == 1:
            i += 1
            continue
        lone_scale = used == 1 and scale is not None
        if lone_scale and _DIGIT_BEFORE_RE.search(text, 0, words[i].start()):
            written = _SCALE_NAMES[scale]  # "2 millones" -> "2 million"
        elif count > 1 or (not lone_scale and (spoken[0] not in _WEAK or whole)
                           and spoken[0] not in ("cent", "cents")
                           and _LEXICON.get(spoken[0], {}).get(lang, ("",))[0] != "hundred"):
            written = f"{value} {_SCALE_NAMES[scale]}" if scale is not None else str(value)
        else:
            i = last + 1
            continue
        pieces += [text[position:words[i].start()], written]
        position = words[last].end()
        i = last + 1
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


# ---------------------------------------------------------------------------- Chinese numerals

_HAN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5,
               "六": 6, "七": 7, "八": 8, "九": 9}
_HAN_UNITS = {"十": 10, "百": 100, "千": 1000}
_HAN_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
_HAN = "".join([*_HAN_DIGITS, *_HAN_UNITS, *_HAN_BIG])
_HAN_NUMBER = rf"(?:\d+(?:\.\d+)?)?[{_HAN}][\d{_HAN}]*(?:[点點][\d〇零一二三四五六七八九]+)?"
_HAN_RE = re.compile(  # the digit forms first: 零下5 is minus 5, not 零 then 下5
    rf"(?P<neg2>负|負|零下)(?=\s*\d)|百分之(?P<pct2>\d+(?:\.\d+)?)"
    rf"|(?P<neg>负|負|零下)?(?:(?P<pct>百分之)|(?P<den>{_HAN_NUMBER})分之)?(?P<num>{_HAN_NUMBER})")


def _han_integer(text: str) -> int | None:
    """``十八`` -> 18, ``一百零五`` -> 105, ``3万`` -> 30000, ``两千五`` -> 2500; None if not one."""
    if text and all(c in _HAN_DIGITS for c in text) and len(text) > 1:
        return int("".join(str(_HAN_DIGITS[c]) for c in text))  # 二〇二三: digit by digit
    if not text or text[0] in _HAN_BIG:
        return None
    tokens = re.findall(rf"\d+|[{_HAN}]", text)
    total, section, number, previous_unit = 0, 0, None, None
    for token in tokens:
        if token.isdigit():
            number = int(token)
        elif token in _HAN_DIGITS:
            number = _HAN_DIGITS[token]
            if token in "零〇":
                previous_unit = None
        elif token in _HAN_UNITS:
            unit = _HAN_UNITS[token]
            section += (1 if number is None else number) * unit
            number, previous_unit = None, unit
        else:
            section += number or 0
            if not section:
                return None
            total, section, number, previous_unit = total + section * _HAN_BIG[token], 0, None, \
                _HAN_BIG[token]
    if number is not None and previous_unit and previous_unit >= 100 and tokens[-2] != "零":
        number *= previous_unit // 10  # 两千五: the unit below the last one
    return total + section + (number or 0)


def _han_value(text: str) -> str | None:
    """A Han numeral as digits: ``三点五`` -> ``3.5``, ``1.5万`` -> ``15000``."""
    whole, _, decimals = text.replace("點", "点").partition("点")
    if decimals:
        digits = "".join(c if c.isdigit() else str(_HAN_DIGITS.get(c, "x")) for c in decimals)
        if not digits.isdigit():
            return None
        base = _han_integer(whole) if not whole.isdigit() else int(whole)
        return None if base is None else f"{base}.{digits}"
    match = re.fullmatch(rf"(\d+\.\d+)([{_HAN}]+)", whole)
    if match:  # 1.5万
        scale = _han_integer("一" + match[2])
        return None if scale is None else str(Fraction(match[1]) * scale).split("/")[0]
    value = _han_integer(whole)
    return None if value is None else str(value)


def _spell_han(text: str, whole: bool, cued: bool = False) -> str:
    def replace(match: re.Match) -> str:
        if match["neg2"]:
            return "-"
        if match["pct2"]:
            return match["pct2"] + "%"
        num, start = match["num"], match.start()
        if cued and _HAN_DESCRIBES_BEFORE_RE.search(text, 0, start):
            return match.group()  # with digits around, 这两个 describes
        if text[start - 1:start] == "第":  # an ordinal: 第三天 is the third day
            return match.group()
        following = text[match.end():match.end() + 2]
        plain = not (match["neg"] or match["pct"] or match["den"])
        if plain and not whole and num in ("一", "两", "兩", "零", "〇"):
            return match.group()
        if plain and num == "十" and following[:1] == "分" and following[1:2] not in ("钟", "之"):
            return match.group()  # 十分: "very"
        if num.endswith("千") and following[:1] in ("米", "克"):  # 千米, 千克: km, kg
            num = num[:-1]
            if not num:
                return match.group()
            value = _han_value(num)
            return match.group() if value is None else value + "千"
        value = _han_value(num)
        if value is None:
            return match.group()
        if match["den"]:
            denominator = _han_value(match["den"])
            if denominator is None:
                return match.group()
            value = f"{value}/{denominator}"
        elif match["pct"]:
            value += "%"
        return ("-" if match["neg"] else "") + value

    return _HAN_RE.sub(replace, text)


def spelled_to_digits(text: str, whole: bool = False) -> str:
    """``text`` with its spelled-out numbers written in digits (see the module docstring).

    ``whole=True``: the text is one answer (a slot, a phrase), so a lone ``one`` or ``un`` is a
    number too. Otherwise, in a text that also has digits, a number right after a determiner or
    a preposition is left alone: "= 1250 liters to fill the two tanks" states 1250.
    Text without letters comes back unchanged, at once.
    """
    if not isinstance(text, str) or len(text) > 20_000:
        return text
    cued = not whole and any("0" <= c <= "9" for c in text)
    if not text.isascii() and any(c in _HAN or c in "负負" for c in text):
        text = _spell_han(text, whole, cued)
    if any(c.isalpha() for c in text):
        text = _BELOW_ZERO_RE.sub("below zero", text)
        text = _spell_words(text, whole, cued)
    return text
