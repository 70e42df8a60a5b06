"""The home read's cache from a token to its account (docs/decisions/0297-home-read-token-
cache.md).

A bounded LRU, per web process, from the SHA-256 of a bearer token (`security.token_hash`;
the raw token is never kept) to the id of the account it belongs to. What it stores is a
fact that cannot change while the token exists: a token row's `account_id` is written once
when the token is issued and never updated (revocation, a password change, a suspension and
an account deletion delete the row). So the cache holds nothing that can go stale; it only
tells the home read which account's Redis feed to ask for before the token is checked.

It is not an authorization. On a hit, the page statement itself checks, in its own snapshot,
that the token still exists, still belongs to that account, carries the scope, and that the
account is confirmed, approved and not suspended (`deps.token_gated`); when it does not, the
read is answered by the ordinary path (token statement first), exactly as without the
cache, and the entry is dropped. A miss takes the ordinary path and fills the cache.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from podium_app import metrics


class TokenCache:
    """A bounded LRU of token hash -> account id (see the module doc). Not thread-safe: one
    per event loop (a web process), like the rendered-status cache."""

    def __init__(self, entries: int) -> None:
        if entries < 1:
            raise ValueError(f"a token cache holds at least 1 entry, not {entries}")
        self.entries = entries
        self._items: OrderedDict[str, uuid.UUID] = OrderedDict()

    def get(self, token_hash: str) -> uuid.UUID | None:
        found = self._items.get(token_hash)
        if found is None:
            metrics.TOKEN_CACHE_MISSES.inc()
            return None
        self._items.move_to_end(token_hash)
        return found

    def put(self, token_hash: str, account_id: uuid.UUID) -> None:
        self._items[token_hash] = account_id
        self._items.move_to_end(token_hash)
        if len(self._items) > self.entries:
            self._items.popitem(last=False)

    def checked(self, token_hash: str, passed: bool | None) -> None:
        """After a hit: the page statement's token check passed (counted as a hit), or
        failed (the entry is dropped; the ordinary path answers and refills it if the token
        is good), or did not run (None: the reader's feed was not built; the ordinary path
        answers, counted as a miss)."""
        if passed is None:
            metrics.TOKEN_CACHE_MISSES.inc()
        elif passed:
            metrics.TOKEN_CACHE_HITS.inc()
        else:
            metrics.TOKEN_CACHE_REFUSED.inc()
            self._items.pop(token_hash, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, token_hash: str) -> bool:
        return token_hash in self._items
