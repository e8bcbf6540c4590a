"""The one-line errors of the command line and the benchmark scripts: exit status 0, or one line on stderr and 2."""

from __future__ import annotations

import pytest
from scripts import BENCHMARKS, load_benchmark

from fetalhead.errors import FetalheadError, exit_status


def test_exit_status_is_zero_when_the_run_returns():
    assert exit_status(lambda: None) == 0


def test_a_fetalhead_error_is_one_line_and_status_two(capsys):
    def fail() -> None:
        raise FetalheadError("rows.csv: no such file")

    assert exit_status(fail) == 2
    assert capsys.readouterr().err == "error: rows.csv: no such file\n"


def test_other_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError):
        exit_status(lambda: 1 / 0)


def test_a_usage_error_is_one_line_naming_the_program(capsys):
    from fetalhead.errors import OneLineParser

    parser = OneLineParser(prog="tool.py")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--n", "many"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "tool.py: error: argument --n: invalid int value: 'many' (see `tool.py --help`)\n"


@pytest.mark.parametrize("script", sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "gpu_session"))
def test_every_benchmark_script_gives_one_line_usage_errors(script, capsys):
    # gpu_session.py imports nothing of the package (a broken package must not stop its log)
    with pytest.raises(SystemExit) as exit_:
        load_benchmark(script).main(["--no-such-option"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"{script}.py: error: "), err


def test_run_script_parses_then_runs_with_the_parsed_arguments(capsys):
    from fetalhead.errors import OneLineParser, run_script

    parser = OneLineParser(prog="tool.py")
    parser.add_argument("--n", type=int, required=True)
    seen = []
    assert run_script(parser, lambda args, argv: seen.append((args.n, argv)), ["--n", "3"]) == 0
    assert seen == [(3, ["--n", "3"])]

    def fail(args, argv) -> None:
        raise FetalheadError(f"no {args.n}")

    assert run_script(parser, fail, ["--n", "4"]) == 2
    assert capsys.readouterr().err == "error: no 4\n"
