"""Which articles of an issue a reader gets, and in what order: the issue's variants.

A reader with topics reads in one of two modes (``TopicMode``): ``all`` gets every article,
those with one of their topics first (in the author's order) and marked as theirs, then the
rest; ``only`` gets just the articles with one of their topics, and nothing (the issue is
skipped for them) in a month that has none. A reader without topics gets every article in the
author's order, none marked: the *default* variant, which renders exactly as the issue always
has.

A variant is named by a short stable key listing 1-based article numbers in the order sent,
each followed by ``*`` when marked as the reader's: ``"2*,1"``, ``"1,2"``. The key is what the
ledger stores (``deliveries.variant``) and what the send groups readers by: readers with the
same key share one rendering. Working out a key is plain Python over the reader's stored
``topics`` (JSON) and ``topic_mode``, memoised per distinct pair, so a send of a million
readers does a dictionary look-up per reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from newsletter.models import Article, Issue, TopicMode

SKIP = ""  # the key of the empty variant: an ``only`` reader with none of their topics
MEMO_MAX = 65_536  # distinct topic choices remembered by a run (more: forgotten, then relearnt)


@dataclass(frozen=True)
class Variant:
    """An ordered selection of an issue's articles, some marked as the reader's."""

    key: str
    order: tuple[int, ...]  # 0-based article indexes, in the order sent
    marked: frozenset[int]  # those of ``order`` marked as the reader's

    @property
    def is_empty(self) -> bool:
        return not self.order

    @classmethod
    def parse(cls, key: str, count: int) -> Variant:
        """The variant named ``key`` of an issue with ``count`` articles; ``ValueError`` if bad."""
        if key == SKIP:
            return cls(SKIP, (), frozenset())
        order: list[int] = []
        marked: set[int] = set()
        for part in key.split(","):
            number = part.strip()
            star = number.endswith("*")
            number = number.rstrip("*").strip()
            if not number.isdigit() or not 1 <= int(number) <= count:
                raise ValueError(f"variant {key!r}: {part!r} is not an article number 1–{count}")
            index = int(number) - 1
            if index in order:
                raise ValueError(f"variant {key!r}: article {number} twice")
            order.append(index)
            if star:
                marked.add(index)
        return cls(make_key(order, marked), tuple(order), frozenset(marked))

    def articles(self, issue: Issue) -> tuple[Article, ...]:
        return tuple(issue.articles[index] for index in self.order)

    def describe(self, issue: Issue) -> str:
        """One line: the articles in order, the reader's marked with ``*``."""
        if self.is_empty:
            return "(skipped: none of their topics)"
        return "; ".join(
            issue.articles[i].title + (" *" if i in self.marked else "") for i in self.order
        )


def make_key(order: Sequence[int], marked: frozenset[int] | set[int]) -> str:
    return ",".join(f"{index + 1}{'*' if index in marked else ''}" for index in order)


def default_key(issue: Issue) -> str:
    """Every article in the author's order, none marked."""
    return make_key(range(len(issue.articles)), frozenset())


class Variants:
    """The variant of one issue for any (topics, mode): memoised, safe to share between threads."""

    def __init__(self, issue: Issue) -> None:
        self.issue = issue
        self.count = len(issue.articles)
        self.default = default_key(issue)
        self._by_topic: dict[str, frozenset[int]] = {}
        for index, article in enumerate(issue.articles):
            for topic in article.topics:
                key = topic.casefold()
                self._by_topic[key] = self._by_topic.get(key, frozenset()) | {index}
        # choice (mode + topics JSON) → key, for the distinct choices met (at most MEMO_MAX).
        self._memo: dict[str, str] = {}
        self._keys: dict[str, str] = {}
        self._parsed: dict[str, Variant] = {}

    def key_for_choice(self, choice: str | None) -> str:
        """The key for a reader's choice as the ledger reads it: ``topic_mode`` + ``topics``
        JSON in one string (``'only["Attachment"]'``), None for a reader without topics."""
        if choice is None:
            return self.default
        found = self._memo.get(choice)
        if found is None:
            start = choice.find("[")
            key = self.key_for_row(choice[start:], choice[:start])
            found = self._keys.setdefault(key, key)  # one string per variant, however many choices
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()  # bounded whatever the list holds
            self._memo[choice] = found
        return found

    def key_for_row(self, topics_json: str | None, mode: str | None) -> str:
        """The key for a reader's stored ``topics`` column and ``topic_mode`` column."""
        try:
            topics = [str(t) for t in json.loads(topics_json or "[]") or ()]
        except (ValueError, TypeError):
            topics = []  # a damaged column reads as no topics: the reader gets everything
        return self.key_for(topics, _mode(mode or TopicMode.ALL.value))

    def key_for(self, topics: Sequence[str], mode: TopicMode) -> str:
        """The key for a reader's topics (any case) and mode."""
        if not topics:
            return self.default
        mine: set[int] = set()
        for topic in topics:
            mine |= self._by_topic.get(" ".join(topic.split()).casefold(), frozenset())
        rest = [i for i in range(self.count) if i not in mine]
        theirs = sorted(mine)
        if mode is TopicMode.ONLY:
            # Every article sent is theirs: no marks needed (all of them: the default rendering).
            return make_key(theirs, frozenset())
        return make_key(theirs + rest, mine)

    def variant(self, key: str) -> Variant:
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = Variant.parse(key, self.count)
        return found

    def count_keys(self, groups: Sequence[tuple[str | None, int]]) -> dict[str, int]:
        """Readers per key from ``(choice, readers)`` groups (``send --dry-run``)."""
        counts: dict[str, int] = {}
        for choice, readers in groups:
            key = self.key_for_choice(choice)
            counts[key] = counts.get(key, 0) + readers
        return counts


def _mode(value: str) -> TopicMode:
    try:
        return TopicMode(value)
    except ValueError:
        return TopicMode.ALL


def ordered_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Most readers first, then by key: how reports list variants."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
