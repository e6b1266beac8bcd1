"""Small command-line tools."""
