"""Errors a user can cause: each carries a one-line message that says what to do."""


class UserError(ValueError):
    """Bad input or environment; the CLI and dashboard show `str(error)` alone, never a traceback."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name if it has none): what a user is shown."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unexpected_cause(error: BaseException) -> BaseException | None:
    """The first error in `error`'s chain (itself, then its causes) that is not a UserError: a bug or a fault of
    the machine, whose traceback belongs in the log even when a UserError says the one line to the user."""
    while error is not None:
        if not isinstance(error, UserError):
            return error
        error = error.__cause__
    return None
