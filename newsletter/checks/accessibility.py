"""Accessibility of the rendered email: link text, heading levels and text contrast (WCAG 2.1 AA).

One pass of the standard library's ``html.parser`` over the email as readers get it (after
premailer inlined the CSS). Colours come from inline ``style`` attributes and the ``bgcolor``
and ``color`` attributes: each text's colour is its element's or inherited, its background the
nearest ancestor's (white when none says). ``@media`` rules (dark mode) are not inline and not
judged; text hidden from readers (``display:none``, the preheader) is skipped; a half-transparent
``rgba()`` colour counts as opaque.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from newsletter.values.linktext import link_text_problem

NORMAL_RATIO = 4.5  # WCAG 2.1 AA, success criterion 1.4.3
LARGE_RATIO = 3.0  # text of 24px and more, or 18.66px (14pt) and more in bold
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_BOLD_TAGS = frozenset({"b", "strong", "th", "h1", "h2", "h3", "h4", "h5", "h6"})
_SKIPPED = frozenset({"head", "style", "script", "title"})
_WHITE, _BLACK, _LINK_BLUE = (255, 255, 255), (0, 0, 0), (0, 0, 238)

RGB = tuple[int, int, int]


# --- colours -------------------------------------------------------------------------------------

_NAMED: dict[str, RGB] = {
    "black": _BLACK,
    "white": _WHITE,
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "darkgray": (169, 169, 169),
    "darkgrey": (169, 169, 169),
    "lightgray": (211, 211, 211),
    "lightgrey": (211, 211, 211),
    "gainsboro": (220, 220, 220),
    "whitesmoke": (245, 245, 245),
    "maroon": (128, 0, 0),
    "navy": (0, 0, 128),
    "teal": (0, 128, 128),
    "olive": (128, 128, 0),
    "purple": (128, 0, 128),
    "orange": (255, 165, 0),
    "yellow": (255, 255, 0),
    "lime": (0, 255, 0),
    "aqua": (0, 255, 255),
    "cyan": (0, 255, 255),
    "fuchsia": (255, 0, 255),
    "magenta": (255, 0, 255),
}
_HEX_RE = re.compile(r"#([0-9a-f]{3,8})\b")
_RGB_RE = re.compile(
    r"rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)"
)


def parse_color(value: str) -> RGB | None:
    """The colour a CSS value names (#rgb, #rrggbb, rgb(), a common name); None if none/clear."""
    value = value.strip().lower().replace("!important", "").strip()
    hexa = _HEX_RE.fullmatch(value)
    if hexa and len(hexa.group(1)) in (3, 4, 6, 8):
        digits = hexa.group(1)
        if len(digits) in (3, 4):
            digits = "".join(char * 2 for char in digits)
        if len(digits) == 8 and digits[6:] == "00":
            return None  # fully transparent
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    rgb = _RGB_RE.fullmatch(value)
    if rgb:
        alpha = rgb.group(4)
        if alpha is not None and float(alpha.rstrip("%")) == 0:
            return None
        red, green, blue = (min(255, round(float(rgb.group(n)))) for n in (1, 2, 3))
        return (red, green, blue)
    return _NAMED.get(value)


def _background(value: str) -> RGB | None:
    """The colour of a ``background`` shorthand: the first of its words that is a colour."""
    for word in re.findall(r"rgba?\([^)]*\)|#[0-9a-fA-F]+|[a-zA-Z]+", value):
        color = parse_color(word)
        if color is not None:
            return color
    return None


def luminance(color: RGB) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(value) for value in color)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: RGB, second: RGB) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def hex_color(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


# --- one pass over the email ---------------------------------------------------------------------


@dataclass
class _Box:
    """What an open element passes on to its content."""

    tag: str
    color: RGB
    background: RGB
    size: float  # font size in px
    bold: bool
    hidden: bool


@dataclass(frozen=True)
class LowContrast:
    line: int
    text: str
    color: RGB
    background: RGB
    ratio: float
    needed: float


@dataclass(frozen=True)
class BadLink:
    line: int
    text: str
    href: str
    problem: str


@dataclass(frozen=True)
class SkippedHeading:
    line: int
    level: int
    previous: int


@dataclass
class Report:
    """The accessibility problems of one email, in document order."""

    contrast: list[LowContrast] = field(default_factory=list)
    links: list[BadLink] = field(default_factory=list)
    headings: list[SkippedHeading] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [_Box("#root", _BLACK, _WHITE, 16.0, False, False)]
        self.report = Report()
        self.skipping = 0  # inside <head>, <style>, <script>
        self.link: tuple[int, str, list[str]] | None = None  # line, href, text parts
        self.level = 0  # the last heading's level
        self.seen: set[tuple[RGB, RGB]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in _SKIPPED:
            self.skipping += tag not in _VOID
            return
        if self.skipping:
            return
        line = self.getpos()[0]
        box = self._box(tag, values)
        if tag == "a":
            self.link = (line, values.get("href", ""), [])
        elif tag == "img" and self.link is not None:
            self.link[2].append(values.get("alt", ""))
        if re.fullmatch(r"h[1-6]", tag) and not box.hidden:
            self._heading(int(tag[1]), line)
        if tag not in _VOID:
            self.stack.append(box)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and not self.skipping:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping:
            return
        if tag == "a" and self.link is not None:
            line, href, parts = self.link
            problem = link_text_problem(" ".join(parts), href)
            if problem:
                self.report.links.append(
                    BadLink(line, " ".join(" ".join(parts).split()), href, problem)
                )
            self.link = None
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                break

    def handle_data(self, data: str) -> None:
        if self.skipping or not data.strip():
            return
        if self.link is not None:
            self.link[2].append(data)
        box = self.stack[-1]
        if box.hidden or box.size <= 1:  # font-size 0 also hides: MJML sets it on columns
            return
        large = box.size >= 24 or (box.size >= 18.66 and box.bold)
        needed = LARGE_RATIO if large else NORMAL_RATIO
        ratio = contrast(box.color, box.background)
        if ratio < needed and (box.color, box.background) not in self.seen:
            self.seen.add((box.color, box.background))
            text = " ".join(data.split())
            line = self.getpos()[0] + data[: len(data) - len(data.lstrip())].count("\n")
            self.report.contrast.append(
                LowContrast(line, text, box.color, box.background, ratio, needed)
            )

    def _heading(self, level: int, line: int) -> None:
        if self.level and level > self.level + 1:
            self.report.headings.append(SkippedHeading(line, level, self.level))
        self.level = level

    def _box(self, tag: str, values: dict[str, str]) -> _Box:
        """The element's colours, size and visibility: its own where given, else inherited."""
        parent = self.stack[-1]
        style = _style(values.get("style", ""))
        own = style.get("color") or values.get("color")
        color = parse_color(own) if own else None
        if color is None:
            color = _LINK_BLUE if tag == "a" else parent.color  # a browser's unvisited link
        background = (
            parse_color(style.get("background-color", ""))
            or _background(style.get("background", ""))
            or parse_color(values.get("bgcolor", ""))
            or parent.background
        )
        size = _font_size(style.get("font-size", ""), parent.size, tag)
        weight = style.get("font-weight", "")
        if weight:
            bold = weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 700)
        else:
            bold = parent.bold or tag in _BOLD_TAGS
        return _Box(tag, color, background, size, bold, parent.hidden or _hides(style))


def _style(text: str) -> dict[str, str]:
    """An inline style attribute as {property: value}, lower-case, without ``!important``."""
    declarations: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition(":")
        if value:
            declarations[name.strip().lower()] = value.replace("!important", "").strip().lower()
    return declarations


def _hides(style: dict[str, str]) -> bool:
    """True for the ways emails hide text (the preheader): it is not read, so not judged."""
    return (
        style.get("display") == "none"
        or style.get("visibility") == "hidden"
        or style.get("opacity") in ("0", "0.0")
        or style.get("mso-hide") == "all"
        or (style.get("max-height") in ("0", "0px") and style.get("overflow") == "hidden")
    )


_HEADING_SIZES = {"h1": 32.0, "h2": 24.0, "h3": 18.72, "h4": 16.0, "h5": 13.28, "h6": 10.72}


def _font_size(value: str, inherited: float, tag: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*(px|pt|em|rem|%)?", value.strip())
    if found is None:
        return _HEADING_SIZES.get(tag, inherited)
    number, unit = float(found.group(1)), found.group(2) or "px"
    factor = {"px": 1.0, "pt": 4 / 3, "em": inherited, "rem": 16.0, "%": inherited / 100}[unit]
    return number * factor


def read(html: str) -> Report:
    """The accessibility problems of a rendered email."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.report
