"""`python -m fetalhead ...` runs the command line (see `fetalhead.cli`)."""

from fetalhead.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
