"""The one error type every loader and checker raises for bad user input.

Command-line entry points catch it, print its single sentence and exit non-zero; library users
get an ordinary ``ValueError`` subclass they can catch.
"""
import functools
import logging
import sys


class InputError(ValueError):
    """Bad input: the message is one sentence naming the file and the field."""


def command(build_parser=None):
    """Decorate a command's ``main``: bad input ends in its one sentence on stderr and exit status 2.

    What every entry point (``python -m encoding.rsa``, ``extractors.words``, ...) does with an
    :class:`InputError`; anything else is a bug and keeps its traceback. With ``build_parser`` the
    decorated ``main(args)`` gets the parsed flags and the commands' log lines (time, logger, message;
    warnings and errors only with ``--quiet``); without it, ``main(argv)`` parses them itself.

    Returns
    -------
    decorator: ``main`` -> ``main(argv=None)`` returning the exit status
    """
    def decorate(main):
        @functools.wraps(main)
        def checked(argv=None):
            try:
                if build_parser is None:
                    return main(argv)
                args = build_parser().parse_args(argv)
                logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                                    format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
                return main(args)
            except InputError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
        return checked
    return decorate
