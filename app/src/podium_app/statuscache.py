"""The home timeline's cache of rendered Status entities, safe by construction
(docs/decisions/0270-rendered-status-cache.md).

An entry is the JSON of one Status entity exactly as `json_page` would encode it, cut at
the viewer's own fields (`favourited`, `reblogged`, and the same two of the reposted status)
so one entry serves every reader. Its key is everything the entity shows, as versions read
with the page's rows in the same request:

    (domain, media base URL, status id, status version, author version
     [, reposted status id, its version, its author's version])

The versions are set by PostgreSQL itself (migration 0005: a new random UUID by a trigger on
every UPDATE of a status or account row, and on every change of a status's mentions, tags
and media; random, so never reused after a rollback, a failover or a restore), so an
edit, a counter change, a suspension, a new attachment all change the key and the old entry
is simply never asked for again (it ages out of the LRU). Deleted rows are not read, so
their entries are never looked up; a suspended author's statuses are dropped before the
cache is consulted, from the account row read in the same request. There is no
invalidation to forget, on this app host or any other.

Only the home read path uses it: it reads committed rows on a connection without a
transaction. Write routes render once per request and keep rendering directly.

In-process, not in Redis: a hit costs a dict lookup instead of a round trip, and nothing
has to be shared between hosts because the keys come from PostgreSQL.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import OrderedDict

from podium_app import metrics

# Slots of the viewer's fields in a cached entry, in the order json.dumps writes them: the
# reposted status comes before the outer status's own favourited/reblogged.
_MARK = f"podium-viewer-slot-{secrets.token_hex(16)}-"
_SLOT = re.compile(f'"{_MARK}([0-3])"')
OUTER_FAV, OUTER_RB, INNER_FAV, INNER_RB = range(4)
_TRUE, _FALSE = b"true", b"false"


class Template:
    """One rendered entity as JSON pieces around its viewer slots."""

    __slots__ = ("pieces", "slots")

    def __init__(self, entity: dict) -> None:
        marked = dict(entity)
        marked["favourited"] = f"{_MARK}{OUTER_FAV}"
        marked["reblogged"] = f"{_MARK}{OUTER_RB}"
        if marked.get("reblog") is not None:
            inner = marked["reblog"] = dict(marked["reblog"])
            inner["favourited"] = f"{_MARK}{INNER_FAV}"
            inner["reblogged"] = f"{_MARK}{INNER_RB}"
        parts = _SLOT.split(json.dumps(marked, ensure_ascii=False, separators=(",", ":")))
        # Tuples of bytes and ints: the collector stops tracking them, so a full collection
        # does not walk every cached entry's parts (decision 0300).
        self.pieces = tuple(p.encode() for p in parts[0::2])
        self.slots = tuple(int(s) for s in parts[1::2])

    def fill(self, flags: tuple[bool, bool, bool, bool]) -> bytes:
        out = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            out.append(_TRUE if flags[slot] else _FALSE)
            out.append(piece)
        return b"".join(out)


class StatusCache:
    """A bounded LRU of Templates by version key (see the module doc)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple, Template] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> Template | None:
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found

    def counted(self, hits: int, misses: int) -> None:
        """One page's lookups into /metrics (podium_status_cache_lookups_total)."""
        if hits:
            metrics.STATUS_CACHE_HITS.inc(hits)
        if misses:
            metrics.STATUS_CACHE_MISSES.inc(misses)

    def put(self, key: tuple, template: Template) -> None:
        if self.entries <= 0:
            return
        self._items[key] = template
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def page_body(entities: list[bytes]) -> bytes:
    """The JSON array of encoded entities, as json.dumps writes a list of them."""
    return b"[" + b",".join(entities) + b"]"
