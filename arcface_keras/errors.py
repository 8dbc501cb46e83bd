"""The errors that describe a user's input, and training that failed.

Command lines show these as one line on stderr (exit status 2 for bad input,
1 for a diverged run); every other exception is a defect and keeps its
traceback.
"""


class UserInputError(ValueError):
    """An argument, file or folder the user gave cannot be used; the message
    names it, says what was received and what to do."""


class DataError(UserInputError):
    """A data set that cannot be loaded."""


class RunFolderError(UserInputError):
    """A run folder that cannot be written, resumed or read."""


class TrainingDiverged(RuntimeError):
    """The loss or a trained weight became NaN or infinite; nothing was exported."""
