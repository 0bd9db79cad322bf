"""The one exception type a user can cause, printed by the CLI as a single line."""


class PreflineError(Exception):
    """A problem with the user's input or environment (bad file, unknown id, missing package).

    The message is one line that names what is wrong and where; the CLI prints it
    without a traceback and exits non-zero.
    """
