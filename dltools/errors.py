"""The one exception type for problems the user can fix (bad paths, formats, arguments)."""


class DltoolsError(Exception):
    """Bad input: a missing or unreadable file, mismatched labels and colours, wrong shapes.

    The command line prints the message and exits with status 2; no traceback is shown.
    """
