"""The one exception type for errors a user can cause.

The CLI turns a :class:`CTBenchError` into a single line on stderr and a non-zero exit code,
without a traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CTBenchError(Exception):
    """A problem with the user's input (config, files, arguments) and what to do about it.

    Args:
        message: one line naming the problem and the fix.
        exit_code: process exit status; 2 for unknown names/usage errors, 1 otherwise.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def printable(text: object, limit: int = 80) -> str:
    """``text`` from a file (a key, a name) made safe to quote in a one-line message: control and other
    unprintable characters escaped (a newline stays ``\\n``), cut at ``limit`` characters."""
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def describe(err: BaseException) -> str:
    """The first non-empty line of ``err``'s message, or its type name when the message is empty
    (``MemoryError()``) or cannot be made: never raises."""
    try:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    except Exception:  # noqa: BLE001 - a broken __str__ still gives a line
        lines = []
    return lines[0] if lines else type(err).__name__
