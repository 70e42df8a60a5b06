"""The platform at Hetzner Cloud: one ComponentResource per file, wired by topology.py."""
