"""A topic's slug: the path segment of its archive page (``/archive/topics/SLUG/``) and feed."""

from __future__ import annotations

import re
import unicodedata


def topic_slug(topic: str) -> str:
    """``"Attendance, Attrition, and Drop-Out"`` → ``"attendance-attrition-and-drop-out"``."""
    ascii_text = unicodedata.normalize("NFKD", topic).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "topic"
