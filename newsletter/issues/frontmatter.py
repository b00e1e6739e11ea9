"""The front matter of an issue file: the YAML between the first two '---' lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from newsletter.issues.common import Report, closest, short, yaml_problem
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
    meant: set[str] = set()  # what misspelt keys meant: reported once, as the misspelling
    for key_node, value_node in node.value:
        if _has_custom_tag(key_node, report):
            continue
        key = _front_matter_key(key_node, seen, meant, report)
        if key is None or _has_custom_tag(value_node, report):
            continue
        if _set_front_matter(front, key, value_node, report):
            given.add(key)
            _check_comment(key, value_node, lines[value_node.end_mark.line - opening - 1], report)
    _check_missing(front, {**dict.fromkeys(meant, 0), **seen}, given, opening, report)
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
        line, problem = _explain(err, lines, opening)
        report.error("yaml-syntax", line, f"the front matter is not valid YAML: {problem}")
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


def _explain(err: Exception, lines: list[str], opening: int) -> tuple[int, str]:
    """The line to change and what to do, for the YAML mistakes authors make most often."""
    last = opening + 1 + len(lines)
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    problem_mark = getattr(err, "problem_mark", None)
    opened = context in _OPENED and context_mark is not None  # report where the quote opened
    mark = context_mark if opened else problem_mark
    line = max(min(1 + mark.line, last) if mark is not None else opening + 2, opening + 2)
    entry = _ENTRY_RE.fullmatch(lines[line - opening - 2]) if line <= last else None
    problem = str(getattr(err, "problem", ""))
    if problem == "mapping values are not allowed here" and entry and ": " not in entry.group(2):
        earlier = _not_an_entry(lines, line - opening - 2)
        if earlier is not None:  # YAML read the line above as text running on into this one
            index, message = earlier
            return opening + 2 + index, message
    if context == "while scanning a simple key" and context_mark is not None:
        index = context_mark.line - opening - 1  # the line YAML began to read as a key
        if 0 <= index < len(lines) and not _ENTRY_RE.fullmatch(lines[index]):
            return opening + 2 + index, _shape_problem(lines[index])
    hint = _hint(problem, context or "", entry)
    return line, hint or yaml_problem(err, 1)


def _not_an_entry(lines: list[str], index: int) -> tuple[int, str] | None:
    """The line above ``index`` when it is not `key: value` (no space after the colon, or none)."""
    above = next(
        (n for n in range(index - 1, -1, -1) if lines[n].strip() and lines[n][:1] != "#"), None
    )
    if above is None or _ENTRY_RE.fullmatch(lines[above]) or lines[above][:1].isspace():
        return None
    return above, _shape_problem(lines[above])


def _shape_problem(line: str) -> str:
    """What is wrong with a line that is not `key: value`."""
    text = line.strip()
    glued = re.fullmatch(r"([A-Za-z][\w-]*):(\S.*)", text)
    if glued:
        key, value = glued.groups()
        return f'put a space after the colon: "{short(key)}: {short(value)}"'
    return f'"{short(text)}" is not a `key: value` line: write the key, ": ", then the value'


_OPENED = (
    "while scanning a quoted scalar",
    "while parsing a flow sequence",
    "while parsing a flow mapping",
    "while scanning a block scalar",
)
_ENTRY_RE = re.compile(r"([A-Za-z][\w-]*)[ \t]*:[ \t]+(.*?)[ \t]*")


def _hint(problem: str, context: str, entry: re.Match[str] | None) -> str | None:
    """A message for a known mistake on a `key: value` line; None for any other."""
    if "'\\t'" in problem:
        return "a tab on this line: YAML allows only spaces here; replace the tab with spaces"
    if entry is None:
        return None
    key, value = entry.group(1), entry.group(2)
    fix = f"put the whole value in quotes: {key}: {_quoted(value)}"
    if problem == "mapping values are not allowed here" and ": " in value:
        return f'the value of "{key}" holds ": ", which YAML reads as a second key; {fix}'
    if context == "while scanning a quoted scalar":
        return f'the quote ({value[0]}) that opens the value of "{key}" is never closed; {fix}'
    if value[:1] in ("'", '"') and "but found '<scalar>'" in problem:
        return (
            f'the value of "{key}" starts with a quote ({value[0]}), so YAML expects it to end '
            f"at the next one; {fix}"
        )
    if value[:1] in _INDICATORS:
        return f'a value starting with "{value[0]}" means something else in YAML; {fix}'
    return None


_INDICATORS = ("[", "{", "@", "`", "%", "*", "&", "!", "|", ">", "-", "?", ",")


def _quoted(value: str) -> str:
    """``value`` as a YAML quoted string (an unclosed opening quote dropped)."""
    if value[:1] in ("'", '"') and value.count(value[0]) == 1:
        value = value[1:]
    elif len(value) > 1 and value[0] in ("'", '"') and value[-1] == value[0]:
        value = value[1:-1]
    if '"' in value and "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def _front_matter_key(
    node: yaml.Node, seen: dict[str, int], meant: set[str], report: Report
) -> str | None:
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
        guess = None if report.full else closest(key, KEYS)
        meant.update([guess] if guess else [])
        report.error(
            "unknown-key", line, f'unknown front matter key "{short(key)}"{report.hint(key, KEYS)}'
        )
        return None
    return key


def _check_comment(key: str, node: yaml.Node, line: str, report: Report) -> None:
    """Warn when a " #" cut a text value short: YAML dropped the rest as a comment."""
    plain = (
        isinstance(node, yaml.ScalarNode)
        and node.style is None
        and node.start_mark.line == node.end_mark.line
    )
    rest = line[node.end_mark.column :].strip()
    if key in _CHOICES or not plain or not rest.startswith("#"):
        return
    value = f"{node.value} {rest}"
    report.warning(
        "yaml-comment",
        1 + node.start_mark.line,
        f'"{key}" ends at "{short(str(node.value), 30)}": YAML reads " #" as the start of a '
        f"comment and drops the rest; if it belongs to the {key}, put the whole value in "
        f"quotes: {key}: {_quoted(value)}",
    )


_CHOICES = ("status",)  # a comment after `status: draft` is a comment


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
