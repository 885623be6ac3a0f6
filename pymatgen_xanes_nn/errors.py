"""The errors a user can fix: bad input, options, files or settings, each with a message that names the problem.

Every one is a :class:`ValueError` (library callers that catch ``ValueError`` keep working); ``xanes-nn`` prints
these as one line and exit code 2, while any other exception, a programming error, keeps its traceback.
"""


class XANESError(ValueError):
    """Base of the errors whose message tells the user what to change."""


class InputError(XANESError):
    """An option, name or value given to the library or the CLI that it cannot use (unknown model, bad level...)."""
