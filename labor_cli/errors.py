"""The errors a user can cause; the CLI turns each into one line and its exit code."""


class LaborError(Exception):
    """Bad input or a failed precondition: the message names the file and the problem (exit 1)."""

    exit_code = 1


class LaborUsageError(LaborError):
    """A bad option value or combination of options (exit 2, like typer's own usage errors)."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """A stop (Ctrl-C, SIGTERM) that the stage has already reported, saying what it saved and
    how to resume; any other KeyboardInterrupt is a bare Ctrl-C, reported as 'labor: interrupted'."""
