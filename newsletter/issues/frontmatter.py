"""The front matter of an issue file: the YAML between the first two '---' lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from newsletter.issues.common import Report, short, yaml_line, yaml_problem
from newsletter.issues.fields import FRONT_MATTER, Context, Raw, defaults, names

KEYS = names(FRONT_MATTER)


@dataclass
class FrontMatter:
    """The front matter's values by ``Issue`` attribute (subject, preheader, status)."""

    values: dict[str, Any] = field(default_factory=lambda: defaults(FRONT_MATTER))


def split_front_matter(
    lines: list[str], report: Report
) -> tuple[int, list[str] | None, int | None]:
    """Index of the opening '---', the front matter's lines (None if missing), first body line."""
    opening = next((index for index, line in enumerate(lines) if line.strip()), 0)
    if lines[opening].rstrip() != "---":
        report.error(
            "missing-front-matter",
            1,
            "the file must start with front matter: a line '---', 'subject: …', '---'",
        )
        return 0, None, 0
    if opening:
        report.error(
            "front-matter-position",
            1,
            "the front matter must start on line 1: remove the blank lines above it",
        )
    for index in range(opening + 1, len(lines)):
        if lines[index].rstrip() == "---":
            return opening, lines[opening + 1 : index], index + 1
    report.error(
        "unclosed-front-matter",
        opening + 1,
        "the front matter opened here is never closed: add a '---' line",
    )
    return opening, None, None


def parse_front_matter(lines: list[str], opening: int, report: Report) -> FrontMatter:
    """The values of the front matter that opens at line index ``opening``, by its table."""
    front = FrontMatter()
    node = _compose_front_matter(lines, opening, report)
    if node is None:
        return front
    seen: dict[str, int] = {}
    given: set[str] = set()
    for key_node, value_node in node.value:
        if _has_custom_tag(key_node, report):
            continue
        key = _front_matter_key(key_node, seen, report)
        if key is None or _has_custom_tag(value_node, report):
            continue
        if _set_front_matter(front, key, value_node, report):
            given.add(key)
    _check_missing(front, seen, given, opening, report)
    return front


def _check_missing(
    front: FrontMatter, seen: dict[str, int], given: set[str], opening: int, report: Report
) -> None:
    """Report each key that is absent or empty (not one already reported as no text)."""
    for entry in FRONT_MATTER:
        absent = entry.name not in seen or (
            entry.name in given and front.values[entry.attr] is None
        )
        if entry.missing and absent:
            code, message = entry.missing
            add = report.error if entry.required else report.warning
            add(code, opening + 1, message)


def _compose_front_matter(
    lines: list[str], opening: int, report: Report
) -> yaml.MappingNode | None:
    # blank lines in place of everything above make YAML's marks count the file's lines
    source = "\n" * (opening + 1) + "\n".join(lines)
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as err:
        line = max(yaml_line(err, 1, opening + 1 + len(lines)), opening + 2)
        report.error(
            "yaml-syntax", line, f"the front matter is not valid YAML: {yaml_problem(err, 1)}"
        )
        return None
    if node is None:
        report.error(
            "empty-front-matter",
            opening + 1,
            "the front matter is empty: it needs at least 'subject: …'",
        )
        return None
    if not isinstance(node, yaml.MappingNode):
        report.error(
            "front-matter-shape",
            1 + node.start_mark.line,
            "the front matter must be 'key: value' lines",
        )
        return None
    if _has_custom_tag(node, report):
        return None
    return node


def _has_custom_tag(node: yaml.Node, report: Report) -> bool:
    """Report a tag such as ``!custom``: YAML's own (``!!str``) are fine, others mean nothing here."""
    if node.tag in yaml.SafeLoader.yaml_constructors:
        return False
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!", 1)
    report.error(
        "yaml-tag",
        1 + node.start_mark.line,
        f"the YAML tag {short(tag)} is not understood in the front matter; remove it",
    )
    return True


def _front_matter_key(node: yaml.Node, seen: dict[str, int], report: Report) -> str | None:
    """The key of one front-matter entry, or None (reported) when unknown, repeated or odd."""
    line = 1 + node.start_mark.line
    if not isinstance(node, yaml.ScalarNode):
        report.error(
            "front-matter-shape", line, f"front matter keys are plain names: {', '.join(KEYS)}"
        )
        return None
    key = str(node.value)
    if key in seen:
        report.error(
            "duplicate-key",
            line,
            f'"{key}" appears twice in the front matter (first on line {seen[key]})',
        )
        return None
    seen[key] = line
    if key not in KEYS:
        report.error(
            "unknown-key", line, f'unknown front matter key "{short(key)}"{report.hint(key, KEYS)}'
        )
        return None
    return key


def _set_front_matter(front: FrontMatter, key: str, node: yaml.Node, report: Report) -> bool:
    """Parse one value by its table row; False (reported) when it is not text at all."""
    line = 1 + node.start_mark.line
    if not isinstance(node, yaml.ScalarNode):
        report.error("not-text", line, f'"{key}" must be text, not a list or a mapping')
        return False
    text = "" if node.style is None and node.value in ("~", "null", "Null", "NULL") else node.value
    entry = next(entry for entry in FRONT_MATTER if entry.name == key)
    raw = Raw(text, line, multiline=node.end_mark.line > node.start_mark.line)
    front.values[entry.attr] = entry.parse(raw, Context(report))
    return True
