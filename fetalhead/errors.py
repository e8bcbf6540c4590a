"""The one exception type the command line turns into a one-line error, and the argument
parser whose usage errors are one line too."""

import argparse
import sys
from collections.abc import Callable

__all__ = ["FetalheadError", "OneLineParser", "exit_status", "one_line", "run_script"]


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


def run_script(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace, list[str] | None], object],
               argv: list[str] | None) -> int:
    """A benchmark script's `main`: parse `argv` (None: the command line) with `parser`, then
    `exit_status` of ``run(args, argv)``."""
    args = parser.parse_args(argv)
    return exit_status(lambda: run(args, argv))


def one_line(text: object) -> str:
    """`text` with its line breaks and runs of spaces as single spaces."""
    return " ".join(str(text).split())


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage error is one line, `PROG: error: ... (see `PROG --help`)`, exit 2,
    instead of the usage block and the error (the command line and the benchmark scripts)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        name = self.prog.split(" ", 1)[0]  # "fetalhead" of "fetalhead predict"
        self.exit(2, f"{name}: error: {one_line(message)} (see `{self.prog} --help`)\n")
