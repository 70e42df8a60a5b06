"""Progress output for long steps: which step, which host, how long so far.

Plain lines rather than a live display, because most runs are read later from a CI log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def _fmt(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


@dataclass
class Progress:
    """Numbered steps with elapsed times; ``timings`` feeds the final summary."""

    total: int
    started: float = field(default_factory=time.monotonic)
    timings: list[tuple[str, float]] = field(default_factory=list)
    _number: int = 0
    _step_started: float = 0.0

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._number += 1
        self._step_started = time.monotonic()
        clock = _fmt(self._step_started - self.started)
        self._print(f"[{self._number}/{self.total}] {title}  (at {clock})")
        yield
        took = time.monotonic() - self._step_started
        self.timings.append((title, took))
        self._print(f"      done in {_fmt(took)}")

    def note(self, text: str, host: str | None = None) -> None:
        elapsed = _fmt(time.monotonic() - self._step_started) if self._step_started else ""
        where = f"[{host}] " if host else ""
        self._print(f"      {where}{text}" + (f"  (+{elapsed})" if elapsed else ""))

    def elapsed(self) -> str:
        return _fmt(time.monotonic() - self.started)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A fixed-width text table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def fmt_seconds(seconds: float) -> str:
    return _fmt(seconds)
