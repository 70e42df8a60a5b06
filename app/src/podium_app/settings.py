"""Typed settings, read from PODIUM_* environment variables or an env file.

The app role writes them into an env file (PODIUM_ENV_FILE points at it, default
/etc/podium/app.env); every name is documented in app/README.md.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["desk", "social"]
RegistrationMode = Literal["open", "approval", "invite", "closed"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PODIUM_",
        env_file=os.environ.get("PODIUM_ENV_FILE", "/etc/podium/app.env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- storage -------------------------------------------------------------------------
    # Writes (and reads without a replica) go here; through PgBouncer on servers.
    # Format: postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB, or with several hosts
    # postgresql+asyncpg://USER:PASSWORD@/DB?host=A:PORT&host=B:PORT&target_session_attrs=read-write
    # (each connection takes the first host that accepts writes: podium_app/db.py).
    database_url: str = "postgresql+asyncpg://podium@127.0.0.1:6432/podium"
    # Seconds each listed host gets to answer a new connection before the next is tried
    # (private network: milliseconds normally; /readyz gives the database 3 s in all).
    database_connect_timeout: float = Field(2.0, gt=0, le=60)
    # Optional hot-standby replica for read-only pages and endpoints (timelines, profiles,
    # post pages), used while it is close enough to the primary (podium_app/db.py).
    database_read_url: str | None = None
    # Seconds the replica may be behind (podium_ops.replica_lag_seconds()) and still serve.
    database_read_max_lag: float = Field(2.0, ge=0)
    # Seconds between two lag checks (one per process, off the request path).
    database_read_check_interval: float = Field(1.0, gt=0, le=60)
    # Seconds a client that has just written (same token, session cookie or address) reads
    # from the primary: read-your-writes. Keep it above the lag allowed plus one check.
    database_read_sticky_seconds: float = Field(10.0, ge=0)
    # True when database_read_url goes through PgBouncer in transaction mode.
    database_read_pgbouncer: bool = False
    # True when database_url goes through PgBouncer in transaction mode: no server-side
    # prepared statement cache (statements are unnamed per transaction).
    database_pgbouncer: bool = True
    # Connections a process keeps open, per engine (writer, replica): the most it uses at
    # once; a request finding them all in use waits for one
    # (docs/decisions/0302-database-pool-holds-a-workers-concurrency.md).
    database_pool_size: int = Field(20, ge=1, le=200)
    # Format: redis://[:PASSWORD@]HOST:PORT/DB or unix:///path?db=N
    redis_url: str = "redis://127.0.0.1:6379/0"

    # --- instance --------------------------------------------------------------------------
    domain: str = "podium.test"
    title: str = "Podium"
    description: str = "An independent microblog."
    contact_email: str = "admin@podium.test"
    mode: Mode = "social"
    registration_mode: RegistrationMode = "open"
    # Approval mode: how many waitlisted accounts the worker admits per hour (0 = by hand only).
    waitlist_admit_per_hour: int = Field(0, ge=0)
    max_post_chars: int = Field(500, ge=1, le=100_000)
    # Accounts with at least this many followers are merged into home timelines on read
    # instead of being fanned out on write.
    fanout_threshold: int = Field(10_000, ge=1)
    # Length of each Redis home feed (entries beyond it are read from PostgreSQL).
    home_feed_length: int = Field(800, ge=10)
    # Rendered Status entities kept per web worker process for the home timeline, keyed by
    # the rows' versions (docs/decisions/0270-rendered-status-cache.md): ~1.9 KB each,
    # ~95 MB per worker when full.
    # 0: no cache (every entity rendered on every read).
    status_cache_entries: int = Field(50_000, ge=0)
    # Tokens whose account id each web worker remembers for the home timeline, so a read can
    # ask Redis first and check the token inside the page statement (one statement instead
    # of two; docs/decisions/0297-home-read-token-cache.md). ~0.3 KB each, ~3 MB at 10,000.
    # 0: no cache (the token statement runs on every read). At most 1,000,000.
    token_cache_entries: int = Field(10_000, ge=0, le=1_000_000)

    # --- secrets ----------------------------------------------------------------------------
    # Signs email confirmation and reset links and session cookies. 32+ characters.
    secret_key: SecretStr = SecretStr("")

    # --- mail (authenticated submission to the platform's mail server) ---------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_from: str = "Podium <noreply@podium.test>"
    # A CA bundle to verify the mail server's certificate with (SMTP and IMAPS) instead of the
    # system's (the lab's ACME CA; unset in production, where the certificate is public).
    smtp_ca_file: str | None = None
    # Envelope sender of every message, as LOCAL@DOMAIN; the app sends as LOCAL+TOKEN@DOMAIN
    # (VERP, docs/decisions/0140-bounces.md) so a bounce names and authenticates its
    # recipient. Unset: the envelope sender is the From address and bounces are not read.
    mail_bounce_address: str | None = None
    # The bounce mailbox, read over IMAPS by the worker every minute (unset host: not read).
    bounce_imap_host: str | None = None
    bounce_imap_port: int = Field(993, ge=1, le=65535)
    bounce_imap_user: str | None = None
    bounce_imap_password: SecretStr | None = None

    # --- media (docs/decisions/0080-media.md) ------------------------------------------------
    # Where files go: "local" (PODIUM_MEDIA_DIR), "webdav" (the media role's origin) or "s3"
    # (an S3-compatible bucket: the providers' object storage).
    media_backend: Literal["local", "webdav", "s3"] = "local"
    media_dir: str = "/var/lib/podium/media"
    # Format: http://HOST:PORT (the media role's nginx, e.g. http://10.0.0.5:8081).
    media_webdav_url: str | None = None
    # S3: the endpoint (https://fsn1.your-objectstorage.com, https://s3.fr-par.scw.cloud),
    # the bucket (path-style addressing), the region the signature names, and an access key.
    media_s3_endpoint: str | None = None
    media_s3_bucket: str | None = None
    media_s3_region: str = "us-east-1"
    media_s3_access_key: str | None = None
    media_s3_secret_key: SecretStr | None = None
    # Public base of file URLs; default https://media.<domain>.
    media_base_url: str | None = None
    media_max_image_bytes: int = Field(16_000_000, ge=1)
    # Refused before decoding above this many pixels (decompression bombs).
    media_max_image_pixels: int = Field(40_000_000, ge=1)
    # The stored original is scaled down to at most this many pixels (Mastodon: 3840x2160).
    media_output_pixels: int = Field(8_294_400, ge=1)
    # Video (MP4, MOV, WebM): probed at upload, transcoded to H.264/AAC MP4 by the worker.
    media_max_video_bytes: int = Field(99_000_000, ge=1)
    media_max_video_seconds: int = Field(300, ge=1)
    media_max_video_pixels: int = Field(4096 * 2304, ge=1)

    # --- edge caches (docs/decisions/0180-edge-purge.md) -----------------------------------
    # The edges' purge listeners (roles/edge, edge_purge_port), comma separated, each
    # http://ADDRESS:PORT on the private network. After a deletion the worker asks each to
    # fetch the deleted names from the origin again, so their cached copies become 404s.
    # Empty: no edges to purge (./podium dev, one-host stacks).
    edge_purge_urls: str = ""
    # Seconds a purge is retried while an edge does not answer. Past the edges' media
    # ceiling (edge_media_cache_valid, 1 day) the cached copy has expired anyway.
    edge_purge_retry_seconds: int = Field(86_400, ge=0)

    # --- rate limits: "COUNT/SECONDS" per account and per IP --------------------------------
    rate_signup_ip: str = "5/3600"
    rate_login_ip: str = "30/300"
    rate_post_account: str = "300/10800"
    rate_post_ip: str = "1500/10800"

    # --- serving ----------------------------------------------------------------------------
    bind_host: str = "127.0.0.1"
    bind_port: int = Field(8000, ge=1, le=65535)
    web_workers: int = Field(1, ge=1, le=64)
    # Seconds uvicorn's supervisor waits for a worker's answer to its health check before it
    # kills and restarts it (uvicorn's own default, 5, kills busy workers on a loaded host).
    web_healthcheck_timeout: int = Field(30, ge=1, le=3600)
    # Addresses of proxies whose X-Forwarded-For is trusted (comma separated), for client IPs.
    forwarded_allow_ips: str = "127.0.0.1"

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("PODIUM_SECRET_KEY must be at least 32 characters")
        return value

    @field_validator("edge_purge_urls")
    @classmethod
    def _purge_urls_are_http(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(",") if u.strip()):
            if not re.fullmatch(r"http://[0-9A-Za-z.\-\[\]:]+:[0-9]+/?", url):
                raise ValueError(f"PODIUM_EDGE_PURGE_URLS: {url!r} is not http://ADDRESS:PORT")
        return value

    def require_secret(self) -> str:
        """The secret key; raises RuntimeError naming the variable when it is unset."""
        key = self.secret_key.get_secret_value()
        if not key:
            raise RuntimeError("PODIUM_SECRET_KEY is not set: put 32+ random characters in it")
        return key

    @property
    def edge_purge_targets(self) -> list[str]:
        """The purge listeners of PODIUM_EDGE_PURGE_URLS, without trailing slashes."""
        return [u.strip().rstrip("/") for u in self.edge_purge_urls.split(",") if u.strip()]

    @staticmethod
    def parse_rate(text: str) -> tuple[int, int]:
        """'COUNT/SECONDS' -> (count, seconds)."""
        count, _, seconds = text.partition("/")
        return int(count), int(seconds)


@lru_cache
def get_settings() -> Settings:
    return Settings()
