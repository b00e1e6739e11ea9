"""The one rule for a person's display name: literal text on one line, at most 200 characters.

Every entry point (CLI, CSV import, web forms, the store) and the message builders ask
``name_problem``, so a name is refused in the same words wherever it comes from.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 200  # subscribers.name is String(200)
# A name goes in a header as one RFC 2047 encoded word on one line (998 characters at most):
# 735 bytes of UTF-8 are 980 base64 characters. Only 200 characters nearly all emoji are longer.
MAX_NAME_BYTES = 735

# Controls (C0 incl. tab/CR/LF, DEL, C1 incl. NEL), lone surrogates, line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Bidi embeddings, overrides and isolates reorder the text around them (spoofing). Other format
# characters stay allowed: ZWJ/ZWNJ are part of Persian, Indic and emoji spellings, LRM/RLM of
# mixed-direction names, tag characters of flag emoji.
_REFUSED_FORMAT = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_NAMES = {
    "\x00": "a NUL character",
    "\t": "a tab",
    "\n": "a line break (line feed)",
    "\r": "a line break (carriage return)",
    "\x85": "a line break (next line)",
    "\u2028": "a line break (line separator)",
    "\u2029": "a line break (paragraph separator)",
}


def refused_character(char: str) -> bool:
    """True for a character no name may contain (see the module's rule)."""
    return unicodedata.category(char) in _REFUSED_CATEGORIES or char in _REFUSED_FORMAT


def character_problem(name: str) -> str | None:
    """The first refused character of ``name``, named and located ("contains a tab …"), or None.

    Like every problem here, a predicate for "the name …": callers add where it came from.
    """
    for position, char in enumerate(name, start=1):
        if refused_character(char):
            what = _CONTROL_NAMES.get(char) or _describe(char)
            return (
                f"contains {what}, U+{ord(char):04X}, at character {position}; "
                "a name is one line of plain text"
            )
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a display name, as a predicate ("is 205 characters long …"), or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    problem = character_problem(name)
    if problem is None and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        size = len(name.encode("utf-8"))
        return f"takes {size} bytes as UTF-8; at most {MAX_NAME_BYTES} fit in an email header"
    return problem


def _describe(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cs":
        return "a lone surrogate"
    if category == "Cf":
        return "a text-direction control"
    return "a control character"
