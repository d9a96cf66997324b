"""The one error type the command line turns into a one-line message and an exit code."""


class SoundLensError(Exception):
    """A problem the user can fix: the message names the problem and the fix.

    Library code raises this (or a subclass) for bad input: a missing file, a corrupt
    video, a wrong sample rate, a truncated checkpoint. `tools.main` prints it without a
    traceback and exits with `EXIT_USER_ERROR`.
    """


EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
