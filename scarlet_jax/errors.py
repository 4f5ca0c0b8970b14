"""Exceptions raised on bad input. All subclass ``ValueError``."""

from __future__ import annotations


class BadInputError(ValueError):
    """Input arrays or options that cannot be deblended; the message names the problem."""


class BadFileError(ValueError):
    """A result file that is truncated, corrupted or written by a newer schema."""


class InputWarning(UserWarning):
    """Input that was repaired (masked, normalised, merged); the message says what was done."""
