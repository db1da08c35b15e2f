"""Errors a user can cause: each carries a one-line message that says what to do."""


class UserError(ValueError):
    """Bad input or environment; the CLI and dashboard show `str(error)` alone, never a traceback."""
