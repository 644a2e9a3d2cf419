"""Errors raised by the library, with messages written for users.

The library never prints and never exits; the CLI turns these into a one-line message and an exit
code (``LatentctlError.exit_code``) in one place, ``latentctl.cli.app.main``.
"""

from __future__ import annotations


class LatentctlError(Exception):
    """Base of every error latentctl reports to a user. ``str(err)`` is the whole message."""

    exit_code = 1


class UsageError(LatentctlError):
    """The command line asks for something inconsistent (exit 2, like click's usage errors)."""

    exit_code = 2


class DataError(LatentctlError):
    """An image folder, label file or image cannot be used."""


class CheckpointError(LatentctlError):
    """A checkpoint is missing, malformed, unsafe to load, or does not fit the request."""


class StoreError(LatentctlError):
    """A latent-store entry is missing, malformed, incompatible, or would be overwritten."""


class StorageError(LatentctlError):
    """A file could not be written or read for a reason outside latentctl: a full disk, a read-only
    folder, missing permissions. The message names the path, the cause and what is still intact."""


class ConfigMismatchError(LatentctlError):
    """A resumed run was asked to continue with a different configuration."""


class NonFiniteLossError(LatentctlError):
    """Training produced NaN or infinity; nothing from that step was saved."""


class TrainingInterrupted(LatentctlError):
    """Training stopped on Ctrl-C after saving a checkpoint (exit 130, the shell's SIGINT code)."""

    exit_code = 130

    def __init__(self, message: str, checkpoint: str | None = None):
        super().__init__(message)
        self.checkpoint = checkpoint
