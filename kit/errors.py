"""Errors meant for people: what went wrong, where, and what to do about it."""

from __future__ import annotations


class PodiumError(Exception):
    """An error the operator can act on.

    ``message`` says what is wrong and where (file, key, host); ``hint`` says what to do.
    ``detail`` carries extra lines worth showing, such as the tail of a console log.
    The CLI prints these without a traceback and exits with status 2.
    """

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        if self.detail:
            lines += ["", *("  | " + line for line in self.detail.rstrip().splitlines()), ""]
        if self.hint:
            lines.append(f"  what to do: {self.hint}")
        return "\n".join(lines)
