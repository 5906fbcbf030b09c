"""Errors a user sees as one clear line (the CLI prints ``str(err)`` and exits 2)."""
from __future__ import annotations


class SmpframeError(Exception):
    """Base class for every error smpframe raises on purpose."""


class InputError(SmpframeError, ValueError):
    """Bad user input: a data file, a label file or an option.

    ``str()`` is one line: ``path:line: message`` (line omitted when unknown,
    path omitted when the input is not a file).
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.path or ""
        if self.path is not None and self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}" if where else self.message


class ProtocolError(SmpframeError):
    """A message on the wire that does not decode; it is logged and dropped."""


class ClusterError(SmpframeError):
    """The cluster cannot finish the run (no workers left, a program error on a worker...)."""


class ProgramError(ClusterError):
    """The program's own code raised (or returned what cannot be used): the run stops.

    ``str()`` is one line naming the method and the exception, e.g.
    ``pull raised ValueError: shapes do not match``.
    """
