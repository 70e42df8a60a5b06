"""The platform at Scaleway (France): one ComponentResource per file, wired by topology.py."""
