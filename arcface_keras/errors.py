"""The errors that describe a user's input, and training that failed.

Command lines show `UserInputError` as one line on stderr (exit status 2) and
`TrainingDiverged` as one line (exit status 1); every other exception is a
defect and keeps its traceback.
"""


class ArgumentError(ValueError):
    """A library function received an argument it cannot use (a `ValueError`,
    as Keras raises; the message ends "Received: name=value"). The toolkit
    shows it as one line when the argument came from the user's settings."""


class UserInputError(Exception):
    """An argument, file or folder the user gave cannot be used; the message
    names it, says what was received and what to do. Deliberately not a
    `ValueError`: a ValueError from a bug must keep its traceback."""


class DataError(UserInputError):
    """A data set that cannot be loaded."""


class RunFolderError(UserInputError):
    """A run folder that cannot be written, resumed or read."""


class TrainingDiverged(RuntimeError):
    """The loss or a trained weight became NaN or infinite; nothing was exported."""
