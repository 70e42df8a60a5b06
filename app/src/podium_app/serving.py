"""The app as `podium-app serve` runs it: `create_app`, then the process's long-lived
objects taken out of the garbage collector's generations
(docs/decisions/0300-web-workers-freeze-their-startup-objects.md).

CPython's full (generation 2) collection walks every container object alive in the process.
In a web worker most of those are made once and live as long as the process: modules,
FastAPI's routes and models, SQLAlchemy's tables and compiled statements, settings. Measured
under `./podium bench app`, a full collection took 88-183 ms, and every request on that
worker waited for it: the home read's p99. `gc.freeze()` moves everything alive at that
moment to a permanent generation that collections skip; the full collections left walk only
what serving created since (21-35 ms).

Here and not in `create_app`: the test suite builds many apps in one process, and freezing
there would keep each test's objects for the rest of the run. uvicorn calls this factory in
each worker process, after importing the app.
"""

from __future__ import annotations

import gc

from fastapi import FastAPI

from podium_app.app import create_app


def create_served_app() -> FastAPI:
    app = create_app()
    # Collect first: what is garbage now would otherwise be frozen and never freed.
    gc.collect()
    gc.freeze()
    return app
