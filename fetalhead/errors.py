"""The one exception type the command line turns into a one-line error."""

import sys
from collections.abc import Callable

__all__ = ["FetalheadError", "exit_status"]


class FetalheadError(Exception):
    """A user-facing error: its message is one line that names the problem (and the file)."""


def exit_status(run: Callable[[], object]) -> int:
    """Call `run`: 0 when it returns; when it raises a FetalheadError, its message as one line
    "error: ..." on stderr and 2 (the benchmark scripts' `main`)."""
    try:
        run()
    except FetalheadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
