"""Errors the CLI turns into clear messages and exit codes scripts can trust."""

from __future__ import annotations


class RadstreamError(Exception):
    """A failure the user can act on. `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  → {self.hint}" if self.hint else base


class ConfigError(RadstreamError):
    """The config file or environment is invalid; nothing was changed."""

    exit_code = 2


class StateError(RadstreamError):
    """The state file is corrupt or from a newer RadStream; it was left untouched."""

    exit_code = 2


class LockHeld(RadstreamError):
    """Another run holds the deployment's lock."""

    exit_code = 3


class WaitTimeout(RadstreamError):
    """Something did not reach the expected condition in time."""


class Aborted(RadstreamError):
    """The user declined a confirmation."""
