"""The error discovery raises, and how it lists many offending items."""

from __future__ import annotations

__all__ = ["DiscoveryError", "listing"]

MAX_LISTED = 5


class DiscoveryError(ValueError):
    """The plate folders, naming scheme, platemap or config do not describe a valid run."""


def listing(items: list[str], total: int | None = None) -> str:
    """The first few items, and how many more there are."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" ... and {total - MAX_LISTED} more" if total > MAX_LISTED else "")
