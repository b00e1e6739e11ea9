"""Every transport by name: its class, its ``delivery.<name>:`` section and its optional hooks.

A provider is one module (or package) that declares one ``Provider``; ``BUILT_IN`` below names
them, so listing the names (``--transport`` choices, ``newsletter --help``) imports nothing, and
``register`` adds one at run time (tests, plugins). Classes and hooks are ``"module:attr"`` strings
loaded on first use: the outbox never loads the SendGrid library. This module imports no other
part of ``newsletter.delivery`` at load time, so ``newsletter.config`` can ask it for the section
parsers without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from newsletter.errors import ConfigError

if TYPE_CHECKING:
    from newsletter.config import DeliverySettings, Section
    from newsletter.delivery.base import Transport
    from newsletter.delivery.hooks import SuppressionPull, Webhook

# name → the module that declares its ``PROVIDER``; adding a provider adds one line here.
BUILT_IN: dict[str, str] = {
    "outbox": "newsletter.delivery.outbox",
    "smtp": "newsletter.delivery.smtp",
    "sendgrid": "newsletter.delivery.sendgrid",
}
# Known by name (``get_transport``) but never offered in schedule.yaml or on the command line.
TEST_ONLY: dict[str, str] = {"memory": "newsletter.delivery.memory"}
_REGISTERED: dict[str, Provider] = {}


class SectionParser(Protocol):
    """Reads a provider's ``delivery.<name>:`` section (may be empty) into its settings object."""

    def __call__(self, section: Section, root: Path, env: Mapping[str, str]) -> object: ...


@dataclass(frozen=True)
class Provider:
    """What the program knows of one transport without loading it: names and lazy references."""

    name: str  # as written in delivery.transport and --transport
    transport: str | Callable[..., Transport]  # "module:Class", called with the settings (if any)
    settings: SectionParser | None = None  # None: no section, the class takes no settings
    title: str = ""  # as people read it ("SendGrid"); the name when empty
    selectable: bool = True  # offered as delivery.transport / --transport (memory is tests only)
    suppressions: str | None = None  # "module:function" (a ``SuppressionPull``), if it has lists
    webhook: str | None = None  # "module:object" (a ``Webhook``), if it posts events to us

    @property
    def label(self) -> str:
        return self.title or self.name

    def make_transport(self, delivery: DeliverySettings) -> Transport:
        """A new transport configured from ``delivery`` (not yet opened)."""
        factory = _load(self.transport) if isinstance(self.transport, str) else self.transport
        if self.settings is None:
            transport: Transport = factory()
        else:
            transport = factory(delivery.section(self.name))
        return transport

    def suppression_pull(self) -> SuppressionPull | None:
        """The hook that pulls this provider's suppression lists; None when it keeps none."""
        return None if self.suppressions is None else _load(self.suppressions)

    def webhook_hook(self) -> Webhook | None:
        """The hook that verifies and reads this provider's event posts; None when it sends none."""
        return None if self.webhook is None else _load(self.webhook)


def register(provider: Provider) -> Provider:
    """Add (or replace) a provider by its name; returns it, so a module can keep it."""
    _REGISTERED[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    """Forget a provider registered at run time (tests); built-in ones come back on next lookup."""
    _REGISTERED.pop(name, None)


def names(*, selectable: bool = True) -> tuple[str, ...]:
    """Every provider name, built-in first; only those offered to users unless told otherwise."""
    added = [p for name, p in _REGISTERED.items() if name not in BUILT_IN and name not in TEST_ONLY]
    offered = [*BUILT_IN, *(p.name for p in added if p.selectable)]
    if selectable:
        return tuple(offered)
    return (*offered, *TEST_ONLY, *(p.name for p in added if not p.selectable))


def get_provider(name: str) -> Provider:
    """The provider called ``name``; ``ConfigError`` naming the known ones otherwise."""
    found = _REGISTERED.get(name)
    if found is not None:
        return found
    module = BUILT_IN.get(name) or TEST_ONLY.get(name)
    if module is None:
        raise ConfigError(
            f"unknown transport {name!r}: expected one of {', '.join(names())} "
            "(delivery.transport in schedule.yaml, or --transport)"
        )
    declared: Provider = importlib.import_module(module).PROVIDER
    return register(declared)


def providers() -> list[Provider]:
    """Every provider (built-in and registered), each loaded from its light declaring module."""
    return [get_provider(name) for name in names(selectable=False)]


def get_transport(name: str, delivery: DeliverySettings) -> Transport:
    """The transport called ``name``, configured from ``delivery`` (not yet opened)."""
    return get_provider(name).make_transport(delivery)


def _load(reference: str) -> Any:
    """``"package.module:attr"`` → that attribute, importing the module on first use."""
    module, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module), attr)
