"""The one error type every loader and checker raises for bad user input.

Command-line entry points catch it, print its single sentence and exit non-zero; library users
get an ordinary ``ValueError`` subclass they can catch.
"""


class InputError(ValueError):
    """Bad input: the message is one sentence naming the file and the field."""
