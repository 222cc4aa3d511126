"""The one exception type a user is meant to read.

Anything raised as :class:`UserError` is printed by the CLI as a single line
(``error: ...``) with a non-zero exit code and no traceback: it describes a
problem with the user's input or machine (a missing file, a bad option), not a
bug in this package.
"""


class UserError(Exception):
    """A problem the user can fix; the message names the file or setting and the problem."""
