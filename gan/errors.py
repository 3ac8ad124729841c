"""One error type for every failure a user can fix: bad params, bad data, bad files."""


class GanError(Exception):
    """A problem in the user's input or environment, reported as one clear message.

    The CLI prints it without a traceback and exits with status 2.
    """


class DiskError(GanError):
    """A write failed for want of space or permission: the machine's problem, not the
    input's, so an HPO worker stops instead of failing trial after trial on it."""

    def __init__(self, path: object, cause: str) -> None:
        super().__init__(f"{path}: cannot write: {cause}")
        self.path, self.cause = path, cause


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a stage cleanly (e.g. training after saving a checkpoint).

    A KeyboardInterrupt, so it ends an HPO worker too instead of failing one trial; the CLI
    prints the message as one line and exits with `code` (128 + the signal number).
    """

    def __init__(self, message: str, code: int = 130) -> None:
        super().__init__(message)
        self.code = code
