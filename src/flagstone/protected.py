"""Attributes Flagstone never uses in detection (GDPR Art. 9 special categories and the like).

Names are checked, never values. Rules naming a special category, or a field the configuration
marks protected, are refused when they load; mappings are refused when they read a source column,
or write a field or attribute, with such a name (``flagstone.ingest._mapping``). A name is compared
by its *skeleton* (:func:`name_parts`), so that case, width, accents, invisible characters and
Latin lookalikes from other scripts (Cyrillic 'е' in 'rеligion') do not hide it.

What a name check cannot see: a column called ``x1`` that holds religion, or a value that reveals
health. The deployment declares such columns (``declared_special_columns``, docs/oversight.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Three ways a special category shows in a name. Long, distinctive stems are found anywhere in the
# name's letters (separators ignored, so 'customer_religion', 'rel-igion' and 'ethnicity' are all
# caught); short or ambiguous ones only as a whole word of the name ('race' but not 'trace_id' or
# 'grace_period'); 'orientation' only as the whole name (a screen has one too).
ANYWHERE: tuple[str, ...] = (
    "ethnic",  # protected: racial or ethnic origin (ethnicity, ethnic_origin)
    "ethnie",  # protected
    "racial",  # protected
    "indigenous",  # protected
    "ancestr",  # protected
    "skincolo",  # protected
    "religio",  # protected: religious or philosophical beliefs (religion, religiös, religione)
    "belief",  # protected
    "konfession",  # protected
    "confession",  # protected
    "churchtax",  # protected
    "kirchensteuer",  # protected
    "atheis",  # protected
    "politic",  # protected: political opinions (political, politics; not politically exposed)
    "politisch",  # protected
    "politiqu",  # protected
    "partymember",  # protected
    "partyaffiliation",  # protected
    "tradeunion",  # protected: trade-union membership
    "labourunion",  # protected
    "laborunion",  # protected
    "unionmember",  # protected
    "unionis",  # protected
    "unioniz",  # protected
    "gewerkschaft",  # protected
    "health",  # protected: health (health_status, healthcare, mental_health)
    "gesundheit",  # protected
    "medical",  # protected
    "medicat",  # protected
    "prescri",  # protected
    "diagnos",  # protected
    "disease",  # protected
    "illness",  # protected
    "symptom",  # protected
    "disabilit",  # protected
    "behinderung",  # protected
    "handicap",  # protected
    "pregnan",  # protected
    "schwanger",  # protected
    "psychiatr",  # protected
    "vaccinat",  # protected
    "bloodtype",  # protected
    "bloodgroup",  # protected
    "sexual",  # protected: sex life or sexual orientation (sexuality, homosexual)
    "sexuel",  # protected
    "sexorient",  # protected
    "sexlife",  # protected
    "lgbt",  # protected
    "transgender",  # protected
    "genderidentity",  # protected
    "biometric",  # protected: biometric data
    "faceprint",  # protected
    "voiceprint",  # protected
    "irisscan",  # protected
    "retina",  # protected
    "genetic",  # protected: genetic data
    "genom",  # protected
)
WORDS: tuple[str, ...] = (
    "race",  # protected
    "races",  # protected
    "rasse",  # protected
    "raza",  # protected
    "caste",  # protected
    "castes",  # protected
    "tribe",  # protected
    "tribes",  # protected
    "tribal",  # protected
    "faith",  # protected
    "faiths",  # protected
    "creed",  # protected
    "creeds",  # protected
    "church",  # protected
    "union",  # protected (not credit union, European Union, UnionPay: see _INNOCENT)
    "unions",  # protected
    "gay",  # protected
    "lesbian",  # protected
    "hiv",  # protected
    "icd",  # protected (ICD-10 diagnosis codes)
    "dna",  # protected
)
ALONE: tuple[str, ...] = ("orientation",)  # protected
PROTECTED_STEMS: tuple[str, ...] = ANYWHERE + WORDS + ALONE
# Phrases that contain a stem but are not a special category. A politically exposed person (PEP)
# is an AML duty, not a political opinion; a credit union is a bank. Taken out before matching.
_INNOCENT_JOINED = ("politicallyexposed", "politicalexposure")
_INNOCENT_WORDS = re.compile(r"_(?:credit_unions?|european_union|union_?pay)(?=_)")

PROTECTED_REFUSAL = (
    "rules may not use protected attributes: ethnicity, religion, political opinion, health, "  # protected
    "sexual orientation or trade-union membership"  # protected
)

# Latin lookalikes (after NFKC and before case folding, so that Greek capital Eta reads as H,
# not as the n its small letter resembles). Unicode's confusables.txt has thousands; these are
# the letters of Latin-like scripts a keyboard or a copy-paste can give.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M",
        "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "Ү": "Y", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
        "Ӏ": "I", "Ѵ": "V",
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "һ": "h", "н": "h", "і": "i", "ј": "j",
        "к": "k", "ӏ": "l", "м": "m", "п": "n", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s",
        "т": "t", "у": "y", "ү": "y", "х": "x", "ԝ": "w", "ѡ": "w", "ѵ": "v", "ь": "b",
        # Greek
        "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
        "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C", "Ϳ": "J",
        "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j", "ς": "c",
        # Armenian
        "օ": "o", "ս": "u", "հ": "h", "ո": "n", "զ": "q", "ց": "g",
        # Latin letters that look like others (small capitals, dotless i, script g, ...)
        "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ɪ": "i", "ʀ": "r", "ʏ": "y", "ʜ": "h",
        "ʟ": "l", "ɴ": "n", "ɢ": "g", "ʙ": "b", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ᴊ": "j",
        "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
        "ꜱ": "s",
    }
)  # fmt: skip
# Invisible characters that are not format characters (category Cf) or marks: fillers and the
# Mongolian vowel separator, which fonts draw as nothing.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u180e\u2800")
_CAMEL = re.compile(r"(?<=[^\W\d_])(?=[A-Z][a-z])|(?<=[a-z])(?=[A-Z])")
_PART = re.compile(r"[a-z]+|[0-9]+")


@lru_cache(maxsize=4096)
def _folded(name: str) -> str:
    """NFKC; marks, format and invisible characters removed; lookalikes read as Latin letters."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", name))
    kept = (c for c in text if unicodedata.category(c) not in ("Mn", "Me", "Cf", "Cc") and c not in _INVISIBLE)
    return "".join(kept).translate(_LOOKALIKES)


@lru_cache(maxsize=4096)
def name_parts(name: str) -> tuple[tuple[str, ...], ...]:
    """The words of ``name`` as plain lower-case ASCII, in two readings: split at case changes
    ('clientRace' -> client, race) and not ('rAcE' -> race). Letters other than Latin ones and
    their lookalikes separate words, as '_', '-', '.' and spaces do."""
    text = _folded(name)
    readings = [tuple(_PART.findall(reading.casefold())) for reading in (_CAMEL.sub("_", text), text)]
    return tuple(dict.fromkeys(readings))


def skeleton(name: str) -> str:
    """``name`` for comparing with another name: folded as above, case-folded, only its letters and
    digits (of any script, so that two names in another script do not both come out empty)."""
    return "".join(c for c in _folded(name).casefold() if c.isalnum())


def protected_match(name: str) -> str | None:
    """The special-category stem that ``name`` shows (however written), if any."""
    for parts in name_parts(name):
        joined = "".join(parts)
        for phrase in _INNOCENT_JOINED:
            joined = joined.replace(phrase, "_")
        for stem in ANYWHERE:
            if stem in joined:
                return stem
        words = _INNOCENT_WORDS.sub("", "_" + "_".join(parts) + "_")
        for stem in WORDS:
            if f"_{stem}_" in words:
                return stem
        if len(parts) == 1 and parts[0] in ALONE:
            return parts[0]
    return None


def configured_match(reference: str, configured: Iterable[str]) -> str | None:
    """The configured protected field that ``reference`` (``amount``, ``attrs.x``, ``actor.country``)
    names: the same dotted name, or the same last part when the configuration gives a bare name.
    Each part is compared by its skeleton, so 'attrs.Nаtionality' (Cyrillic а) is 'attrs.nationality'."""
    ref = [skeleton(p) for p in reference.split(".")]
    for name in configured:
        want = [skeleton(p) for p in name.split(".")]
        if want == ref or (len(want) == 1 and want[0] == ref[-1]):
            return name
    return None
