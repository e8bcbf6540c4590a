"""The benchmark scripts' exit status: 0, or one line on stderr and 2 for a FetalheadError."""

from __future__ import annotations

import pytest

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
