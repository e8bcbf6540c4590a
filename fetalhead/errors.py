"""The one exception type the command line turns into a one-line error."""

__all__ = ["FetalheadError"]


class FetalheadError(Exception):
    """A user-facing error: its message is one line that names the problem (and the file)."""
