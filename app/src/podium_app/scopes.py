"""OAuth scopes as Mastodon defines them."""

from __future__ import annotations

TOP = ("read", "write", "follow", "push", "profile")
GRANULAR = {
    "read": ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
             "mutes", "notifications", "search", "statuses"),
    "write": ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
              "follows", "lists", "media", "mutes", "notifications", "reports", "statuses"),
}
ADMIN = ("admin:read", "admin:write", "admin:read:accounts", "admin:write:accounts",
         "admin:read:reports", "admin:write:reports")
KNOWN = frozenset([*TOP, *ADMIN, *(f"{top}:{name}" for top, names in GRANULAR.items()
                                   for name in names)])


def normalize(text: str) -> list[str] | None:
    """Space- or plus-separated scopes -> sorted unique list; None when one is unknown."""
    scopes = sorted(set(text.replace("+", " ").split())) or ["read"]
    return scopes if all(s in KNOWN for s in scopes) else None


def covers(granted: list[str], requested: list[str]) -> bool:
    """Every requested scope is granted itself or through its top-level scope."""
    have = set(granted)
    return all(s in have or s.split(":", 1)[0] in have or
               (s.startswith("admin:") and ":".join(s.split(":")[:2]) in have)
               for s in requested)
