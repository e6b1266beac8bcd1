"""The command lines' error contract: bad input is one line and exit code 2.

A library function that finds bad input (a flag's value, a file that is not
what it should be) raises `BadInput` (a ValueError) naming the value and what
is accepted; a command line prints it with `report_bad_input` and exits with
BAD_INPUT_EXIT_CODE.
"""
import sys

BAD_INPUT_EXIT_CODE = 2


class BadInput(ValueError):
  """Input a command cannot use; the message is the one line to print."""


def report_bad_input(error: Exception) -> None:
  """Prints `error: LINE` on stderr and exits with BAD_INPUT_EXIT_CODE."""
  print(f'error: {one_line(error)}', file=sys.stderr)
  raise SystemExit(BAD_INPUT_EXIT_CODE)


def one_line(error: Exception) -> str:
  """An error's first line, with its first detail line if it has more
  (e.g. the first of the variables a checkpoint restore lists)."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  if len(lines) > 1:
    return f'{lines[0]} (first: {lines[1]})'
  return lines[0] if lines else type(error).__name__
