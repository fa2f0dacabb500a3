"""Error type raised for bad user input (files, sizes, checkpoints, configs)."""


class SamSrError(ValueError):
    """One clear, user-facing error: a missing or corrupt file, mismatched sizes, a wrong checkpoint,
    a bad config key, or an output path that already exists.

    The command-line tools print ``str(error)`` and exit with status 2 without writing partial output.
    """
