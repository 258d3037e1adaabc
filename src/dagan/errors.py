"""Exceptions for problems the user can fix. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class DaganError(ValueError):
    """Base class: a user-facing problem (bad file, bad option, bad input) with a one-line message."""


class InputError(DaganError):
    """An input file (image, video, dataset folder) is missing, unreadable or unsuitable."""


class CheckpointError(DaganError):
    """A checkpoint is missing, corrupt, not ours, unsafe, or does not match the requested model."""


class MissingExtraError(DaganError):
    """An optional dependency (a pip extra) needed by a feature is not installed."""

    def __init__(self, feature: str, extra: str, package: str, install: str | None = None) -> None:
        """``install`` replaces the ``pip install 'dagan[EXTRA]'`` hint for a package no extra can carry."""
        how = install or f"pip install 'dagan[{extra}]'"
        super().__init__(f"{feature} needs the optional package '{package}': {how}")
