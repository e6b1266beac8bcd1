"""One-line error messages, for CLIs that promise one line per problem."""


def one_line(error: Exception) -> str:
  """An error's first line, with its first detail line if it has more
  (e.g. the first of the variables a checkpoint restore lists)."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  if len(lines) > 1:
    return f'{lines[0]} (first: {lines[1]})'
  return lines[0] if lines else type(error).__name__
