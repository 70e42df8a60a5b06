"""Where media files live: one small interface, a backend per kind of origin.

Names are content-addressed and immutable (roles/media/README.md on the edge side):
``m/<h[0:2]>/<h[2:4]>/<h>.<ext>`` with h the SHA-256 of the bytes. The public URL is
``PODIUM_MEDIA_BASE_URL`` (default ``https://media.<domain>``) + ``/`` + the name.

Backends:
- ``local``: a folder (``PODIUM_MEDIA_DIR``), for ``./podium dev`` and single-host stacks;
  the app serves it under /m/ itself when the base URL points at the app.
- ``webdav``: the media role's nginx origin (``PODIUM_MEDIA_WEBDAV_URL``): PUT, DELETE.
- ``s3``: an S3-compatible bucket (the providers' object storage: Hetzner, Scaleway, ...):
  PUT/GET/DELETE signed with AWS Signature Version 4, path-style addressing
  (docs/decisions/0141-s3-media-storage.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit

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


# Objects are immutable (content-addressed), as on the media origin (roles/media).
IMMUTABLE = "public, max-age=31536000, immutable"


class S3Storage:
    """An S3-compatible bucket, path-style (``ENDPOINT/BUCKET/NAME``), requests signed with
    AWS Signature Version 4. Objects are written ``public-read`` (their names are unguessable
    without the bytes) with a year-long immutable Cache-Control, so the bucket or the edges
    in front of it serve them as they are."""

    def __init__(self, endpoint: str, bucket: str, region: str, access_key: str,
                 secret_key: str, timeout: float = 30.0, public_read: bool = True):
        self.endpoint = endpoint.rstrip("/")
        self.host = urlsplit(self.endpoint).netloc
        self.bucket = bucket
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.public_read = public_read
        self.client = httpx.Client(timeout=timeout)

    def _sign(self, method: str, path: str, payload_hash: str,
              extra: dict[str, str]) -> dict[str, str]:
        now = datetime.now(UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = {"host": self.host, "x-amz-content-sha256": payload_hash,
                   "x-amz-date": stamp, **{k.lower(): v for k, v in extra.items()}}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, "",
                               *(f"{k}:{headers[k].strip()}" for k in sorted(headers)), "",
                               signed, payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = f"AWS4{self.secret_key}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        del headers["host"]  # httpx sends the same value from the URL
        return headers

    def _request(self, method: str, name: str, data: bytes = b"",
                 extra: dict[str, str] | None = None) -> httpx.Response:
        path = quote(f"/{self.bucket}/{_check(name)}")
        headers = self._sign(method, path, hashlib.sha256(data).hexdigest(), extra or {})
        try:
            return self.client.request(method, self.endpoint + path, content=data or None,
                                       headers=headers)
        except httpx.HTTPError as err:
            raise StorageError(f"object storage unreachable: {err}") from err

    def put(self, name: str, data: bytes, content_type: str) -> None:
        extra = {"Content-Type": content_type, "Cache-Control": IMMUTABLE}
        if self.public_read:
            extra["x-amz-acl"] = "public-read"
        r = self._request("PUT", name, data, extra)
        if r.status_code != 200:
            raise StorageError(f"object storage refused PUT {name}: HTTP {r.status_code} "
                               f"{r.text[:200]}")

    def delete(self, name: str) -> None:
        r = self._request("DELETE", name)
        if r.status_code not in (200, 204, 404):
            raise StorageError(f"object storage refused DELETE {name}: HTTP {r.status_code}")

    def get(self, name: str) -> bytes | None:
        r = self._request("GET", name)
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise StorageError(f"object storage refused GET {name}: HTTP {r.status_code}")
        return r.content


def from_settings(settings: Settings) -> Storage:
    if settings.media_backend == "s3":
        missing = [f"PODIUM_MEDIA_S3_{n.upper()}" for n in
                   ("endpoint", "bucket", "access_key", "secret_key")
                   if not getattr(settings, f"media_s3_{n}")]
        if missing:
            raise RuntimeError(f"PODIUM_MEDIA_BACKEND=s3 needs {', '.join(missing)}")
        return S3Storage(settings.media_s3_endpoint, settings.media_s3_bucket,
                         settings.media_s3_region, settings.media_s3_access_key,
                         settings.media_s3_secret_key.get_secret_value())
    if settings.media_backend == "webdav":
        if not settings.media_webdav_url:
            raise RuntimeError("PODIUM_MEDIA_BACKEND=webdav needs PODIUM_MEDIA_WEBDAV_URL")
        return WebDAVStorage(settings.media_webdav_url)
    return LocalStorage(settings.media_dir)


def public_url(settings: Settings, name: str) -> str:
    base = settings.media_base_url or f"https://media.{settings.domain}"
    return f"{base.rstrip('/')}/{name}"
