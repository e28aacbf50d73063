"""The one exception type for problems the user can fix (bad paths, formats, arguments), and
the one warning type for what the user should know about a result."""


class DltoolsError(Exception):
    """Bad input: a missing or unreadable file, mismatched labels and colours, wrong shapes.

    The command line prints the message and exits with status 2; no traceback is shown.
    """


class DltoolsWarning(UserWarning):
    """A result is written but the user should know something about it (no CRS, no index).

    The command line prints the message as a ``warning: ...`` line on stderr.
    """
