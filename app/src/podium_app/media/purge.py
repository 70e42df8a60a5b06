"""Cached copies at the edges after a deletion (docs/decisions/0180-edge-purge.md).

Each edge (roles/edge) has a purge listener on its private address that only the app hosts
may reach: ``GET http://EDGE:PORT/<name>`` fetches the name from the media origin again,
bypassing the cache, and stores what the origin answers now. After the file is deleted at
the origin that is a 404, which replaces the cached copy at once: the edge agrees with the
origin again, whatever it held before (or if it held nothing).
"""

from __future__ import annotations

import httpx

# What an edge may answer for a purged name: the origin's 404 (deleted) or 410, or 200
# when the same bytes were uploaded again meanwhile (the file is legitimately live).
SETTLED = (200, 404, 410)


class PurgeError(RuntimeError):
    """The edge did not answer, or answered with something other than the origin's verdict;
    the purge must be tried again."""


def refresh(edge: str, names: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Ask the purge listener at ``edge`` (http://ADDRESS:PORT) to refresh each name.

    Returns name -> the status the edge now holds for it. Raises PurgeError on the first
    name the edge could not settle (connection refused or timed out, 403 because this host
    is not allowed, 5xx because the origin did not answer the edge): the caller retries
    the whole list, which is idempotent.
    """
    settled: dict[str, int] = {}
    with httpx.Client(timeout=timeout) as client:
        for name in names:
            try:
                answer = client.get(f"{edge}/{name}")
            except httpx.HTTPError as err:
                raise PurgeError(f"edge {edge} unreachable: {err}") from err
            if answer.status_code not in SETTLED:
                raise PurgeError(f"edge {edge} answered HTTP {answer.status_code} for {name}")
            settled[name] = answer.status_code
    return settled
