"""Where media files live: one small interface, a backend per kind of origin.

Names are content-addressed and immutable (roles/media/README.md on the edge side):
``m/<h[0:2]>/<h[2:4]>/<h>.<ext>`` with h the SHA-256 of the bytes. The public URL is
``PODIUM_MEDIA_BASE_URL`` (default ``https://media.<domain>``) + ``/`` + the name.

Backends:
- ``local``: a folder (``PODIUM_MEDIA_DIR``), for ``./podium dev`` and single-host stacks;
  the app serves it under /m/ itself when the base URL points at the app.
- ``webdav``: the media role's nginx origin (``PODIUM_MEDIA_WEBDAV_URL``): PUT, DELETE.
- ``s3``: NOT IMPLEMENTED YET (see docs/decisions/0080-media.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

import httpx

from podium_app.settings import Settings

NAME = re.compile(r"^m/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,10}$")


def name_for(data: bytes, ext: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"m/{digest[:2]}/{digest[2:4]}/{digest}.{ext}"


class StorageError(RuntimeError):
    """The origin refused or could not be reached."""


class Storage(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> None: ...
    def delete(self, name: str) -> None: ...
    def get(self, name: str) -> bytes | None: ...


def _check(name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"not a media name: {name!r}")
    return name


class LocalStorage:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        path = self.root / _check(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".up-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> None:
        (self.root / _check(name)).unlink(missing_ok=True)

    def get(self, name: str) -> bytes | None:
        path = self.root / _check(name)
        return path.read_bytes() if path.is_file() else None


class WebDAVStorage:
    """nginx WebDAV origin (create_full_put_path on, so no MKCOL is needed)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base = base_url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def _url(self, name: str) -> str:
        return f"{self.base}/{_check(name)}"

    def put(self, name: str, data: bytes, content_type: str) -> None:
        try:
            r = self.client.put(self._url(name), content=data,
                                headers={"Content-Type": content_type})
        except httpx.HTTPError as err:
            raise StorageError(f"media origin unreachable: {err}") from err
        if r.status_code not in (200, 201, 204):
            raise StorageError(f"media origin refused PUT {name}: HTTP {r.status_code}")

    def delete(self, name: str) -> None:
        try:
            r = self.client.delete(self._url(name))
        except httpx.HTTPError as err:
            raise StorageError(f"media origin unreachable: {err}") from err
        if r.status_code not in (200, 204, 404):
            raise StorageError(f"media origin refused DELETE {name}: HTTP {r.status_code}")

    def get(self, name: str) -> bytes | None:
        r = self.client.get(self._url(name))
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise StorageError(f"media origin refused GET {name}: HTTP {r.status_code}")
        return r.content


def from_settings(settings: Settings) -> Storage:
    if settings.media_backend == "webdav":
        if not settings.media_webdav_url:
            raise RuntimeError("PODIUM_MEDIA_BACKEND=webdav needs PODIUM_MEDIA_WEBDAV_URL")
        return WebDAVStorage(settings.media_webdav_url)
    return LocalStorage(settings.media_dir)


def public_url(settings: Settings, name: str) -> str:
    base = settings.media_base_url or f"https://media.{settings.domain}"
    return f"{base.rstrip('/')}/{name}"
