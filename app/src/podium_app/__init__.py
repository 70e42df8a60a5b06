"""Podium's platform app: a Mastodon-compatible microblog API on PostgreSQL and Redis."""

__version__ = "0.1.0"
