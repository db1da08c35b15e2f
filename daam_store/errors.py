"""Errors a user can cause: each carries a one-line message that says what to do."""


class UserError(ValueError):
    """Bad input or environment; the CLI and dashboard show `str(error)` alone, never a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name if it has none): what a user is shown."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
