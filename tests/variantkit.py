"""An issue of three articles on distinct topics, and readers who chose topics and modes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.issues import load_topics, read_issue
from newsletter.models import Issue, TopicMode
from newsletter.store.subscribers import SubscriberStore
from tests.dbkit import db

VARIANT_MONTH = "2021-02"
TITLES = ("Attachment Styles in Therapy", "Treating Low Mood Early", "Who the Therapist Is")
TOPICS = ("Attachment", "Depression and Depressive Symptoms", "Therapist Factors")
MARK_TEXT = "* On a topic you follow"
MARK_HTML = "On a topic you follow"


def _article(number: int) -> str:
    return f"""## {TITLES[number]}
Citation: Author, A. ({2020 + number}). A study number {number + 1}. *Journal of Examples*.
DOI: 10.1000/example.{number + 1}
Topics: {TOPICS[number]}

What study {number + 1} found, in a short paragraph that says enough to be a summary.

### Practice Implications
What study {number + 1} means for practice, in another short paragraph.
"""


def write_issue(settings: Settings) -> Issue:
    """``issues/2021-02.md``: article n has only topic n (1 Attachment, 2 Depression, 3 Therapist)."""
    text = (
        "---\nsubject: Three studies for the variant tests\nstatus: ready\n---\n\n"
        "An introduction to the three studies.\n\n" + "\n".join(_article(n) for n in range(3))
    )
    path = settings.issues_dir / f"{VARIANT_MONTH}.md"
    path.write_text(text, encoding="utf-8")
    return read_issue(path, load_topics(settings.topics_file))


@dataclass(frozen=True)
class Reader:
    email: str
    topics: tuple[str, ...]
    mode: TopicMode
    expected: tuple[int, ...]  # article numbers (1-based) in the order they must arrive
    marked: tuple[int, ...]  # those marked as the reader's


READERS = (
    Reader("plain@example.com", (), TopicMode.ALL, (1, 2, 3), ()),
    Reader("plain-only@example.com", (), TopicMode.ONLY, (1, 2, 3), ()),
    Reader("attach@example.com", ("Attachment",), TopicMode.ALL, (1, 2, 3), (1,)),
    Reader("low@example.com", ("depression and depressive symptoms",), TopicMode.ALL, (2, 1, 3), (2,)),
    Reader("two@example.com", ("Therapist Factors", "Depression and Depressive Symptoms"), TopicMode.ALL, (2, 3, 1), (2, 3)),
    Reader("low-only@example.com", ("Depression and Depressive Symptoms",), TopicMode.ONLY, (2,), ()),
    Reader("pair-only@example.com", ("Attachment", "Therapist Factors"), TopicMode.ONLY, (1, 3), ()),
    Reader("none-only@example.com", ("Anxiety Disorders",), TopicMode.ONLY, (), ()),
    Reader("none-all@example.com", ("Anxiety Disorders",), TopicMode.ALL, (1, 2, 3), ()),
)  # fmt: skip


def add_readers(settings: Settings, copies: int = 1) -> dict[str, Reader]:
    """Every reader of ``READERS`` (``copies`` times, numbered), interleaved; address → reader."""
    store = SubscriberStore(db(settings).engine)
    added: dict[str, Reader] = {}
    for copy in range(copies):
        for reader in READERS:
            address = reader.email if copies == 1 else reader.email.replace("@", f"{copy}@")
            store.add(address, topics=reader.topics, topic_mode=reader.mode)
            added[address] = reader
    return added


def articles_in(body: str) -> tuple[int, ...]:
    """The article numbers in ``body``, in order of appearance."""
    found = sorted((body.index(title), n + 1) for n, title in enumerate(TITLES) if title in body)
    return tuple(number for _, number in found)


def marked_in_text(text: str) -> tuple[int, ...]:
    """The article numbers a plain-text body marks as the reader's."""
    marked = []
    for match in re.finditer(re.escape(MARK_TEXT) + r"\n+(.+)\n", text):
        marked.append(TITLES.index(match.group(1).strip()) + 1)
    return tuple(marked)


def marked_in_html(html: str) -> tuple[int, ...]:
    """The article numbers an HTML body marks (the mark comes right before the title)."""
    marked = []
    for start in (m.end() for m in re.finditer(MARK_HTML, html)):
        following = [(html.find(title, start), n + 1) for n, title in enumerate(TITLES)]
        marked.append(min((i, n) for i, n in following if i >= 0)[1])
    return tuple(marked)


def check_body(reader: Reader, text: str, html: str) -> None:
    text, html = text.replace("\r\n", "\n"), html.replace("\r\n", "\n")
    assert articles_in(text) == reader.expected, (reader.email, "text")
    assert articles_in(html) == reader.expected, (reader.email, "html")
    assert marked_in_text(text) == reader.marked, (reader.email, "text marks")
    assert marked_in_html(html) == reader.marked, (reader.email, "html marks")
    partial = len(reader.expected) < len(TITLES)
    assert ("only the articles on the topics you follow" in html) is partial
