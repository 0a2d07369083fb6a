"""Exceptions raised by personae.

Every error the package raises on purpose derives from :class:`PersonaeError`, and each
carries the thing that failed::

    PersonaeError
    ├── DataError          a preference file or record is malformed (file, record, field)
    ├── ConfigError        an option or model string cannot be used
    ├── MissingExtraError  an optional dependency group is not installed
    └── LMCallError        an LM call failed after its retries (the record it was for, the reason)
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "LMCallError", "MissingExtraError", "PersonaeError"]


class PersonaeError(Exception):
    """Base class of every error personae raises on purpose."""


class DataError(PersonaeError, ValueError):
    """A preference source, or one record in it, cannot be read.

    ``source`` is the file (or data set name), ``record`` the 1-based line of a jsonl file
    or row of a table (``None`` when the whole source is at fault), ``field`` the column
    at fault (``None`` when no single field is).
    """

    def __init__(self, message: str, *, source: str, record: int | None = None, field: str | None = None):
        self.message = message
        self.source = source
        self.record = record
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.record is not None:
            where += f", record {self.record}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"

    def __reduce__(self):  # keep pickling (multiprocessing, datasets.map) working
        return (_rebuild_data_error, (self.message, self.source, self.record, self.field))


def _rebuild_data_error(message: str, source: str, record: int | None, field: str | None) -> DataError:
    return DataError(message, source=source, record=record, field=field)


class ConfigError(PersonaeError, ValueError):
    """An option, preset or model string cannot be used as given."""


class MissingExtraError(PersonaeError, ImportError):
    """An optional dependency group is needed; the message names the ``pip install`` to run."""

    def __init__(self, extra: str, feature: str):
        self.extra = extra
        self.feature = feature
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'personae[{extra}]'")


class LMCallError(PersonaeError, RuntimeError):
    """An LM call failed after every retry. ``item`` names what the call was for."""

    def __init__(self, reason: str, *, item: str | None = None, attempts: int = 1):
        self.reason = reason
        self.item = item
        self.attempts = attempts
        prefix = f"{item}: " if item else ""
        super().__init__(f"{prefix}{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")
