"""HTTP routers, one module per Mastodon API area."""
