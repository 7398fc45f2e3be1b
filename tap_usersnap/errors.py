"""Failures a user can act on: reported as one line that names the cause, never a traceback."""

from __future__ import annotations


class UsersnapError(Exception):
    """An expected failure; its message names the cause and what to check (a setting, a file)."""
