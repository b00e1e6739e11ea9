"""The one rule for a person's display name: literal text on one line, at most 200 characters.

Every entry point (CLI, CSV import, web forms, the store) and the message builders ask
``name_problem``, so a name is refused in the same words wherever it comes from.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 200  # subscribers.name is String(200)
# A name goes in a header as one RFC 2047 encoded word on one line (998 characters at most):
# 735 bytes of UTF-8 are 980 base64 characters. Only 200 characters nearly all emoji are longer.
MAX_NAME_BYTES = 735

# Every character of the Unicode categories Cc (C0 incl. tab/CR/LF, DEL, C1 incl. NEL), Zl, Zp
# (U+2028, U+2029) and Cs (lone surrogates), and the bidi embeddings, overrides and isolates,
# which reorder the text around them (spoofing). Other format characters stay allowed: ZWJ/ZWNJ
# are part of Persian, Indic and emoji spellings, LRM/RLM of mixed-direction names, tag
# characters of flag emoji. A character class, not a category lookup: imports check every name.
_REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
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
    """True for a character no name may contain (see ``_REFUSED``)."""
    return _REFUSED.match(char) is not None


def has_refused_character(text: str) -> bool:
    """True when ``text`` contains any character no name may contain (one pass, for batches)."""
    return _REFUSED.search(text) is not None


def character_problem(name: str) -> str | None:
    """The first refused character of ``name``, named and located ("contains a tab …"), or None.

    Like every problem here, a predicate for "the name …": callers add where it came from.
    """
    found = _REFUSED.search(name)
    if found is None:
        return None
    char = found.group()
    what = _CONTROL_NAMES.get(char) or _describe(char)
    return (
        f"contains {what}, U+{ord(char):04X}, at character {found.start() + 1}; "
        "a name is one line of plain text"
    )


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
