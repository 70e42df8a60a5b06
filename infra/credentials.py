"""Provider credentials for the explicit providers of the offsite buckets.

An explicit provider resource does not read its package's stack configuration (e.g.
`scaleway:secretKey`) the way the default provider does, so the values are read here and
passed in: the stack's secret first, then the environment variable the provider documents.
"""

from __future__ import annotations

import os

import pulumi


def credential(namespace: str, key: str, env: str) -> pulumi.Output | None:
    """A secret from the stack's config (``namespace:key``), else from ``env``, else None
    (the provider then looks for its own defaults and fails with its own message)."""
    configured = pulumi.Config(namespace).get_secret(key)
    if configured is not None:
        return configured
    value = os.environ.get(env)
    return pulumi.Output.secret(value) if value else None
