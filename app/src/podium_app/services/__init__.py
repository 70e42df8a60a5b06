"""Business logic, independent of HTTP: called by the API routers, the CLI and the worker."""
