"""The one error family of rcskd: messages name the file or key at fault and how to fix it."""

from __future__ import annotations


class RcskdError(Exception):
    """Base class for every error rcskd raises on purpose."""


class ConfigError(RcskdError):
    """A params.yaml key or value is unknown, missing or out of range."""


class DataError(RcskdError):
    """An input file or folder cannot be used (unreadable, wrong structure, empty, inconsistent)."""


class LeakageError(DataError):
    """The same image or patient would appear in two splits."""
