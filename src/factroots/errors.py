"""Errors, classified by what they do to a run.

- ``ConfigError``: abort before any work, with a one-line fix.
- ``InputError``: a counted reject; this row or page is skipped and the run goes on.
- ``ShardError``: this language (or partition) fails; the other languages go on.
- ``ModelError``: the model cannot be used (missing, no MLM head, out of memory): abort with a hint.

Every error carries ``fix``, a one-line hint the CLI prints after the message.
"""

from __future__ import annotations


class FactrootsError(Exception):
    """Base class: a message plus a one-line fix."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(FactrootsError, ValueError):
    """A bad config value, unknown key, language or relation: abort before work."""


class InputError(FactrootsError):
    """Bad input for one row or page: count it under ``reason`` and skip it."""

    def __init__(self, message: str, reason: str, fix: str = "") -> None:
        super().__init__(message, fix)
        self.reason = reason


class ShardError(FactrootsError):
    """One language or partition cannot be built: fail it and keep the others."""

    def __init__(self, message: str, lang: str = "", fix: str = "") -> None:
        super().__init__(message, fix)
        self.lang = lang


class ModelError(FactrootsError):
    """The model cannot be loaded or run: abort with a hint."""


class DumpNotFoundError(ShardError, FileNotFoundError):
    """A configured dump file does not exist."""


class NotADumpError(ShardError):
    """A file is not a MediaWiki XML dump."""


class SchemaError(FactrootsError):
    """A table does not match its declaration in ``tables.py``: a bug, abort."""


class MissingTableError(FactrootsError, FileNotFoundError):
    """An input table of a stage has not been built yet."""


class DamagedTableError(ShardError):
    """A finished partition does not match its manifest (a file missing, rows lost, bad pages):
    the language reading it fails, the others go on."""

    def __init__(self, message: str, fix: str = "", lang: str = "") -> None:
        super().__init__(message, lang, fix)


class OutputError(FactrootsError):
    """The output root cannot be used: not a folder, read-only, full, or locked by another run."""


class RunFailedError(ShardError):
    """Some (table, language) partitions failed in this run: named in ``<out>/run_report.json``."""
