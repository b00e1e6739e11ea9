"""Load ``schedule.yaml`` and the environment into one frozen, validated ``Settings``.

This is the only module that reads ``schedule.yaml`` or ``os.environ``; everything else receives
values. Every mistake is a ``ConfigError`` naming the file, line, key and what was expected.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from newsletter.delivery import registry
from newsletter.errors import ConfigError
from newsletter.names import name_problem
from newsletter.values.address import normalise_address
from newsletter.values.topic import topic_slug

SETTINGS_FILE = "schedule.yaml"
_DAY_RE = re.compile(
    r"^(?:(?P<dom>[1-9]|[12]\d|3[01])|(?P<last>last)|(?P<nth>[1-5])(?:st|nd|rd|th) (?P<wd>mon|tue|wed|thu|fri|sat|sun)|last (?P<lwd>mon|tue|wed|thu|fri|sat|sun))$"
)
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=366)  # longer is a typo: a year covers every duration here
_STANDARD_TAG = "tag:yaml.org,2002:"  # YAML's own types; a `!custom` tag means nothing here


@dataclass(frozen=True, kw_only=True)
class SendRule:
    """When each month's issue goes out: ``day`` + ``time``, or a ``cron`` line that overrides them."""

    day: str  # "1".."31", "last", "1st tue" … "5th fri", "last fri"
    time: time
    cron: str | None
    misfire_grace: timedelta
    wait_for_ready: timedelta


@dataclass(frozen=True, kw_only=True)
class Sender:
    name: str
    email: str
    reply_to: str | None
    postal_address: str
    list_id: str = "newsletter.invalid"  # RFC 2919 List-Id, without the angle brackets


@dataclass(frozen=True, kw_only=True)
class Links:
    base_url: str  # where `newsletter serve` answers, no trailing slash
    archive_url: str  # no trailing slash
    confirm_max_age: timedelta = timedelta(days=7)  # how long a confirmation link works

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.base_url}/unsubscribe/{token}"

    def preferences_url(self, token: str) -> str:
        return f"{self.base_url}/preferences/{token}"

    def confirm_url(self, token: str) -> str:
        return f"{self.base_url}/confirm/{token}"

    def issue_url(self, month: str) -> str:
        return f"{self.archive_url}/{month}/"

    def topic_url(self, topic: str) -> str:
        """The archive page of one topic's articles (``newsletter/web/archive.py`` serves it)."""
        return f"{self.archive_url}/topics/{topic_slug(topic)}/"

    @property
    def subscribe_url(self) -> str:
        return f"{self.base_url}/subscribe"


DEFAULT_DESCRIPTION = "Psychotherapy research for practice, once a month"
DESCRIPTION_MAX = 300  # search engines cut a meta description long before this
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")  # a BCP 47 tag: "en", "fr-CA"


@dataclass(frozen=True, kw_only=True)
class Site:
    """The public site's own words: its description, the feed's subtitle, the pages' language."""

    description: str = DEFAULT_DESCRIPTION  # meta description and og:description of the archive
    feed_subtitle: str = DEFAULT_DESCRIPTION  # the Atom feed's <subtitle>
    lang: str = "en"  # <html lang> of the web pages


S = TypeVar("S")


@dataclass(frozen=True, kw_only=True)
class DeliverySettings:
    """The chosen transport and each transport's own section, parsed by its provider's parser."""

    transport: str
    sections: Mapping[str, object] = field(default_factory=dict)  # name → its settings object

    def section(self, name: str) -> object:
        """The settings of transport ``name``; ``KeyError`` when it has no section."""
        return self.sections[name]

    def of(self, kind: type[S]) -> S:
        """The one section that is a ``kind`` (e.g. ``delivery.of(SmtpSettings)``), typed."""
        for value in self.sections.values():
            if isinstance(value, kind):
                return value
        raise KeyError(kind.__name__)

    def with_section(self, name: str, value: object) -> DeliverySettings:
        """A copy with transport ``name``'s settings replaced (tests, one-off overrides)."""
        return DeliverySettings(transport=self.transport, sections={**self.sections, name: value})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the commands need, resolved: paths absolute, secrets from the environment."""

    root: Path  # the project folder (holds schedule.yaml, issues/, templates/ …)
    timezone: ZoneInfo
    send: SendRule
    sender: Sender
    links: Links
    database_url: str
    delivery: DeliverySettings
    secret_key: str | None = field(default=None, repr=False)  # NEWSLETTER_SECRET_KEY
    welcome: str = "latest"  # latest | none: what a reader gets on confirming
    site: Site = field(default_factory=Site)  # the site's description, feed subtitle, language

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def topics_file(self) -> Path:
        return self.issues_dir / "topics.yaml"


# --- reading YAML with line numbers -------------------------------------------------------------


class _Located:
    """A YAML mapping node's values with the line (1-based) each key stands on."""

    def __init__(self, file: str, node: yaml.MappingNode, prefix: str = "") -> None:
        self.file = file
        self.prefix = prefix
        self.line = node.start_mark.line + 1
        self.items: dict[str, yaml.Node] = {}
        self.lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in self.items:
                raise self.error_at(key_node.start_mark.line + 1, key, "appears twice")
            self.items[key] = value_node
            self.lines[key] = key_node.start_mark.line + 1

    def path(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error_at(self, line: int, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}:{line}: `{self.path(key)}`: {message}")

    def error(self, key: str, message: str) -> ConfigError:
        return self.error_at(self.lines.get(key, self.line), key, message)

    def section(self, key: str, required: bool = True) -> _Located:
        node = self.items.get(key)
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null")):
            if required:
                raise self.error(key, "missing section")
            empty = yaml.MappingNode("tag:yaml.org,2002:map", [])
            empty.start_mark = yaml.Mark(self.file, 0, self.line - 1, 0, None, None)  # type: ignore[arg-type]
            return _Located(self.file, empty, f"{self.path(key)}.")
        if not isinstance(node, yaml.MappingNode):
            raise self.error(key, "expected a section of `key: value` lines")
        _refuse_tag(self, key, node)
        return _Located(self.file, node, f"{self.path(key)}.")

    def scalar(self, key: str, default: Any = ..., allow_empty: bool = False) -> Any:
        node = self.items.get(key)
        if node is None:
            if default is ...:
                raise self.error(key, "missing; it is required")
            return default
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(key, "expected a single value, not a list or section")
        _refuse_tag(self, key, node)
        try:
            value = _construct(node)
        except (yaml.YAMLError, ValueError, OverflowError) as err:
            problem = getattr(err, "problem", None) or str(err)
            raise self.error(key, f"not a valid value: {' '.join(problem.split())}") from err
        if value is None or (isinstance(value, str) and not value.strip() and not allow_empty):
            if default is ...:
                raise self.error(key, "is empty; it is required")
            return default
        return value

    def text(self, key: str, default: Any = ...) -> Any:
        value = self.scalar(key, default)
        if value is None or value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(key, f"expected text, got {value!r}")
        text = str(value).strip()
        if "\n" in text or "\r" in text:
            raise self.error(key, "must be a single line")
        return text

    def expect(self, *known: str) -> _Located:
        """Refuse any key not in ``known`` (almost always a typo), before reading values."""
        for key in self.items:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"known here: {', '.join(known)}"
                raise self.error(key, f"unknown key ({hint})")
        return self


def _refuse_tag(section: _Located, key: str, node: yaml.Node) -> None:
    """Only YAML's own types (``!!str``, ``!!int`` …); ``!custom`` or ``!!python/…`` mean nothing."""
    if node.tag not in yaml.SafeLoader.yaml_constructors:
        tag = str(node.tag).replace(_STANDARD_TAG, "!!", 1)
        raise section.error_at(
            node.start_mark.line + 1,
            key,
            f"the YAML tag {tag} is not understood here; remove it (write the plain value)",
        )


def _construct(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


T = TypeVar("T")


class OutOfRange(ValueError):
    """A value of the right kind but too large or too small; its text says the limits."""


def _checked(
    section: _Located, key: str, value: Any, check: Callable[[Any], T], expected: str
) -> T:
    try:
        return check(value)
    except OutOfRange as err:
        raise section.error(key, f"{err}, got {value!r}") from err
    except (TypeError, ValueError, OverflowError) as err:
        raise section.error(key, f"expected {expected}, got {value!r}") from err


def parse_duration(text: str) -> timedelta:
    """``"6h"``, ``"7d"``, ``"30m"``, ``"90s"``, ``"2w"`` → timedelta, at most ``MAX_DURATION``."""
    match = _DURATION_RE.match(str(text).strip())
    if not match:
        raise ValueError(text)
    amount, unit = int(match.group(1)), match.group(2)
    limit = MAX_DURATION // timedelta(**{_DURATION_UNITS[unit]: 1})
    if amount > limit:  # checked before timedelta(), which overflows past 999999999 days
        days = "" if unit == "d" else f" ({MAX_DURATION.days} days)"
        raise OutOfRange(f"expected a duration of at most {limit}{unit}{days}")
    return timedelta(**{_DURATION_UNITS[unit]: amount})


def _positive_duration(text: str) -> timedelta:
    duration = parse_duration(text)
    if duration <= timedelta(0):
        raise OutOfRange("expected a duration longer than zero")
    return duration


def _parse_time(value: Any) -> time:
    if isinstance(value, int) and not isinstance(value, bool):  # YAML 1.1 reads 09:00 as 540
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", str(value).strip())
    if not match:
        raise ValueError(value)
    return time(int(match.group(1)), int(match.group(2)))


def _parse_day(value: Any) -> str:
    text = str(value).strip().lower()
    if not _DAY_RE.match(text):
        raise ValueError(value)
    return text


def _parse_cron(value: Any) -> str:
    text = " ".join(str(value).split())
    if len(text.split(" ")) != 5:
        raise ValueError(value)
    return text


def _parse_url(value: Any) -> str:
    text = str(value).strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", text):
        raise ValueError(value)
    if not urlsplit(text).hostname:  # ValueError too for "https://[::1" (an unclosed bracket)
        raise ValueError(value)
    return text


def _parse_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(value)
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if str(value) not in options:
            raise ValueError(value)
        return str(value)

    return check


# --- what a transport's section parser uses (``newsletter.delivery.registry.SectionParser``) ----

Section = _Located  # one section of schedule.yaml: values with the line each stands on
checked = _checked  # a value through a check, or a located ConfigError saying what was expected
choice = _choice
parse_url = _parse_url
parse_bool = _parse_bool


# --- the sections --------------------------------------------------------------------------------


def _send_rule(doc: _Located) -> SendRule:
    sec = doc.section("send").expect("day", "time", "cron", "misfire_grace", "wait_for_ready")
    cron = sec.scalar("cron", None)
    rule = SendRule(
        day=_checked(
            sec,
            "day",
            sec.scalar("day", "1"),
            _parse_day,
            'a day of the month: 1-31, "last", "1st tue" … "5th fri" or "last fri"',
        ),
        time=_checked(sec, "time", sec.scalar("time", "09:00"), _parse_time, 'a time "HH:MM"'),
        cron=None
        if cron is None
        else _checked(
            sec, "cron", cron, _parse_cron, 'a crontab line of 5 fields, e.g. "0 9 * * 2"'
        ),
        misfire_grace=_checked(
            sec,
            "misfire_grace",
            sec.scalar("misfire_grace", "6h"),
            parse_duration,
            'a duration such as "6h", "30m" or "1d"',
        ),
        wait_for_ready=_checked(
            sec,
            "wait_for_ready",
            sec.scalar("wait_for_ready", "7d"),
            parse_duration,
            'a duration such as "7d" or "12h"',
        ),
    )
    return rule


def _sender(doc: _Located) -> Sender:
    sec = doc.section("sender").expect("name", "email", "reply_to", "postal_address", "list_id")
    reply_to = sec.text("reply_to", None)
    name = sec.text("name")
    problem = name_problem(name)
    if problem is not None:  # the From line of every message: the readers' name rule applies
        raise sec.error("name", f"the name {problem}")
    email = _checked(sec, "email", sec.text("email"), normalise_address, "an email address")
    list_id = sec.text("list_id", None)
    if list_id is None:
        list_id = default_list_id(name, email)
    elif not valid_list_id(list_id):
        raise sec.error(
            "list_id",
            f"{list_id!r} is not a list id: expected dotted ASCII words such as "
            '"monthly.example.org" (no angle brackets, spaces or @)',
        )
    sender = Sender(
        name=name,
        email=email,
        reply_to=None
        if reply_to is None
        else _checked(sec, "reply_to", reply_to, normalise_address, "an email address"),
        postal_address=sec.text("postal_address"),
        list_id=list_id,
    )
    return sender


# RFC 2919: list-label "." list-id-namespace, each a dot-atom-text; at most 255 characters.
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")


def valid_list_id(value: str) -> bool:
    """Whether ``value`` can stand between the angle brackets of a List-Id header."""
    return len(value) <= 255 and _LIST_ID.fullmatch(value) is not None


def default_list_id(name: str, email: str) -> str:
    """``<sender name as a slug>.<sender domain>``, e.g. ``pprnet-monthly.example.org``."""
    local, _, domain = email.rpartition("@")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or local
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = "invalid"
    candidate = f"{slug}.{domain}"[:255]
    return candidate if valid_list_id(candidate) else f"newsletter.{domain}"


def _links(doc: _Located) -> Links:
    sec = doc.section("links").expect("base_url", "archive_url", "confirm_max_age")
    base = _checked(sec, "base_url", sec.text("base_url"), _parse_url, "an http(s):// address")
    archive = _checked(
        sec,
        "archive_url",
        sec.text("archive_url", f"{base}/archive"),
        _parse_url,
        "an http(s):// address",
    )
    confirm_max_age = _checked(
        sec,
        "confirm_max_age",
        sec.scalar("confirm_max_age", "7d"),
        _positive_duration,
        'a duration such as "7d", "48h" or "2w"',
    )
    return Links(base_url=base, archive_url=archive, confirm_max_age=confirm_max_age)


def _delivery(doc: _Located, root: Path, env: Mapping[str, str]) -> DeliverySettings:
    """``delivery.transport`` plus one section per provider, each read by its provider's parser."""
    parsers = {p.name: p.settings for p in registry.providers() if p.settings is not None}
    sec = doc.section("delivery").expect("transport", *parsers)
    offered = registry.names()
    transport = _checked(
        sec,
        "transport",
        sec.text("transport", "outbox"),
        _choice(offered),
        " | ".join(offered),
    )
    sections = {
        name: parse(sec.section(name, required=False), root, env) for name, parse in parsers.items()
    }
    return DeliverySettings(transport=transport, sections=sections)


def _database_url(doc: _Located, root: Path, env: Mapping[str, str]) -> str:
    url = env.get("NEWSLETTER_DATABASE_URL") or doc.text(
        "database", "sqlite:///subscribers/subscribers.db"
    )
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise doc.error(
            "database",
            f'expected an SQLAlchemy URL such as "sqlite:///subscribers/'
            f'subscribers.db", got {url!r}',
        )
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        relative = url[len(prefix) :]
        if relative and relative != ":memory:":
            url = prefix + str(root / relative)
    return url


def _timezone(doc: _Located) -> ZoneInfo:
    name = doc.text("timezone", "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise doc.error(
            "timezone", f'expected an IANA time zone such as "America/Toronto", got {name!r}'
        ) from err


WELCOME_CHOICES = ("latest", "none")


def load_settings(root: Path | str = ".", env: Mapping[str, str] | None = None) -> Settings:
    """Read ``ROOT/schedule.yaml`` plus the environment into ``Settings``."""
    root = Path(root).resolve()
    env = os.environ if env is None else env
    path = root / SETTINGS_FILE
    shown = SETTINGS_FILE if Path.cwd() == root else str(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(
            f"{shown}: not found; run the command in the newsletter's folder or pass --project DIR"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{shown}: cannot be read: {err}") from err
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{shown}{where}: not valid YAML: {problem}") from err
    except RecursionError as err:  # "[[[[…" thousands deep: PyYAML recurses per level
        raise ConfigError(f"{shown}: not valid YAML: nested too deeply") from err
    if not isinstance(node, yaml.MappingNode) or node.tag not in yaml.SafeLoader.yaml_constructors:
        raise ConfigError(f"{shown}:1: expected `key: value` settings at the top level")
    doc = _Located(shown, node).expect(
        "timezone", "send", "sender", "links", "database", "delivery", "welcome", "site"
    )
    settings = Settings(
        root=root,
        timezone=_timezone(doc),
        send=_send_rule(doc),
        sender=_sender(doc),
        links=_links(doc),
        database_url=_database_url(doc, root, env),
        delivery=_delivery(doc, root, env),
        secret_key=env.get("NEWSLETTER_SECRET_KEY") or None,
        welcome=_welcome(doc),
        site=_site(doc),
    )
    return settings


def _welcome(doc: _Located) -> str:
    value = str(doc.text("welcome", "latest")).strip().lower()
    if value not in WELCOME_CHOICES:
        raise doc.error("welcome", f"expected latest or none, got {value!r}")
    return value


def _site(doc: _Located) -> Site:
    sec = doc.section("site", required=False).expect("description", "feed_subtitle", "lang")
    description = sec.text("description", DEFAULT_DESCRIPTION)
    if len(description) > DESCRIPTION_MAX:
        raise sec.error("description", f"{len(description)} characters; at most {DESCRIPTION_MAX}")
    lang = sec.text("lang", "en")
    if not _LANG_RE.match(lang):
        raise sec.error("lang", f'expected a language tag such as "en" or "fr-CA", got {lang!r}')
    return Site(
        description=description,
        feed_subtitle=sec.text("feed_subtitle", description),
        lang=lang,
    )
