"""The front matter of an issue file: the YAML between the first two '---' lines."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from newsletter.issues.common import Report, has_line_break, short, yaml_line, yaml_problem
from newsletter.models import IssueStatus

KEYS = ("subject", "preheader", "status")
SUBJECT_MAX = 78  # longer subjects are cut off by most inboxes
PREHEADER_MAX = 140


@dataclass
class FrontMatter:
    subject: str = ""
    preheader: str | None = None
    status: IssueStatus = IssueStatus.DRAFT


def split_front_matter(
    lines: list[str], report: Report
) -> tuple[int, list[str] | None, int | None]:
    """Index of the opening '---', the front matter's lines (None if missing), first body line."""
    opening = next((index for index, line in enumerate(lines) if line.strip()), 0)
    if lines[opening].rstrip() != "---":
        report.error(1, "the file must start with front matter: a line '---', 'subject: …', '---'")
        return 0, None, 0
    if opening:
        report.error(1, "the front matter must start on line 1: remove the blank lines above it")
    for index in range(opening + 1, len(lines)):
        if lines[index].rstrip() == "---":
            return opening, lines[opening + 1 : index], index + 1
    report.error(opening + 1, "the front matter opened here is never closed: add a '---' line")
    return opening, None, None


def parse_front_matter(lines: list[str], opening: int, report: Report) -> FrontMatter:
    """Subject, preheader and status from the front matter that opens at line index ``opening``."""
    front = FrontMatter()
    node = _compose_front_matter(lines, opening, report)
    if node is None:
        return front
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        if _has_custom_tag(key_node, report):
            continue
        key = _front_matter_key(key_node, seen, report)
        if key is not None and not _has_custom_tag(value_node, report):
            _set_front_matter(front, key, value_node, report)
    if "subject" not in seen:
        report.error(
            opening + 1, "the front matter has no subject: add 'subject: …' (the email's subject)"
        )
    if front.preheader is None:
        report.warning(
            opening + 1, "no preheader: the inbox preview will show the email's first words"
        )
    return front


def _compose_front_matter(
    lines: list[str], opening: int, report: Report
) -> yaml.MappingNode | None:
    # blank lines in place of everything above make YAML's marks count the file's lines
    source = "\n" * (opening + 1) + "\n".join(lines)
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as err:
        line = max(yaml_line(err, 1, opening + 1 + len(lines)), opening + 2)
        report.error(line, f"the front matter is not valid YAML: {yaml_problem(err, 1)}")
        return None
    if node is None:
        report.error(opening + 1, "the front matter is empty: it needs at least 'subject: …'")
        return None
    if not isinstance(node, yaml.MappingNode):
        report.error(1 + node.start_mark.line, "the front matter must be 'key: value' lines")
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
        1 + node.start_mark.line,
        f"the YAML tag {short(tag)} is not understood in the front matter; remove it",
    )
    return True


def _front_matter_key(node: yaml.Node, seen: dict[str, int], report: Report) -> str | None:
    """The key of one front-matter entry, or None (reported) when unknown, repeated or odd."""
    line = 1 + node.start_mark.line
    if not isinstance(node, yaml.ScalarNode):
        report.error(line, "front matter keys are plain names: subject, preheader, status")
        return None
    key = str(node.value)
    if key in seen:
        report.error(line, f'"{key}" appears twice in the front matter (first on line {seen[key]})')
        return None
    seen[key] = line
    if key not in KEYS:
        report.error(line, f'unknown front matter key "{short(key)}"{report.hint(key, KEYS)}')
        return None
    return key


def _set_front_matter(front: FrontMatter, key: str, node: yaml.Node, report: Report) -> None:
    line = 1 + node.start_mark.line
    if not isinstance(node, yaml.ScalarNode):
        report.error(line, f'"{key}" must be text, not a list or a mapping')
        return
    text = "" if node.style is None and node.value in ("~", "null", "Null", "NULL") else node.value
    if key == "subject":
        front.subject = _subject(text, node, line, report)
    elif key == "preheader":
        front.preheader = _preheader(text, line, report)
    else:
        front.status = _status(text, line, report)


def _subject(text: str, node: yaml.ScalarNode, line: int, report: Report) -> str:
    subject = text.strip()
    if not subject:
        report.error(line, "the subject is empty")
    elif node.end_mark.line > node.start_mark.line or has_line_break(subject):
        report.error(
            line, "the subject must be a single line (no line breaks or control characters)"
        )
    elif len(subject) > SUBJECT_MAX:
        report.warning(
            line,
            f"the subject has {len(subject)} characters; inboxes cut it after about {SUBJECT_MAX}",
        )
    return subject


def _preheader(text: str, line: int, report: Report) -> str | None:
    preheader = " ".join(text.split())
    if len(preheader) > PREHEADER_MAX:
        report.warning(
            line,
            f"the preheader has {len(preheader)} characters; inboxes show about {PREHEADER_MAX}",
        )
    return preheader or None


def _status(text: str, line: int, report: Report) -> IssueStatus:
    value = text.strip().lower()
    if value not in tuple(IssueStatus):
        report.error(line, f'status must be "draft" or "ready", not "{short(text)}"')
        return IssueStatus.DRAFT
    return IssueStatus(value)
