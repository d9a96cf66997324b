"""The one error type the command line turns into a one-line message and an exit code.

The bottom of the import graph (it imports nothing): every library package raises it and the CLI
(`tools.main`) maps it to `EXIT_USER_ERROR`, so no library module imports the CLI."""


class SoundLensError(Exception):
    """A problem the user can fix: the message names the problem and the fix.

    Library code raises this (or a subclass) for bad input: a missing file, a corrupt
    video, a wrong sample rate, a truncated checkpoint. `tools.main` prints it without a
    traceback and exits with `EXIT_USER_ERROR`.
    """


EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
