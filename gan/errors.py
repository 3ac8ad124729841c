"""One error type for every failure a user can fix: bad params, bad data, bad files."""


class GanError(Exception):
    """A problem in the user's input or environment, reported as one clear message.

    The CLI prints it without a traceback and exits with status 2.
    """
