"""User-facing errors.

Every mistake a user can make (a bad option, a missing file, a checkpoint that does not fit) raises a
subclass of :class:`WascompressError`. The CLI prints its message as one line and exits non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WascompressError(Exception):
    """An error caused by the user's input, reported as one line."""


class ConfigError(WascompressError, ValueError):
    """An invalid setting: the message names the setting and the bad value."""


class DataError(WascompressError):
    """A data set that is missing, corrupt or not in the expected layout."""


class CheckpointError(WascompressError):
    """A checkpoint that is missing, corrupt or does not fit the request."""
