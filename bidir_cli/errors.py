"""The one exception type that means "the user gave us something wrong".

Anything raised as :class:`InputError` is printed by the CLI as one line on standard error and
exits with status 2 (no traceback unless ``--debug``). Every other exception is a failure while
running (status 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(Exception):
    """Bad invocation, config, data or results file. The message names the field, file or row."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)

    def __str__(self) -> str:
        if len(self.problems) <= 1:
            return super().__str__()
        return super().__str__() + "\n" + "\n".join(f"  {p}" for p in self.problems)


class Interrupted(Exception):
    """Stopped by the user (SIGINT) or the system (SIGTERM) after a clean stop: printed as one line, exit 130."""


def first_line(e: BaseException) -> str:
    """An exception's first message line: enough for a one-line error, never a traceback."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``known``, or an empty string when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
