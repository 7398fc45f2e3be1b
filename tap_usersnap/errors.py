"""How a run ends early: an expected failure (one line naming its cause) or a signal.

Light on purpose: the command's entry point imports it before the SDK (see ``main``).
"""

from __future__ import annotations

import signal


class UsersnapError(Exception):
    """An expected failure; its message names the cause and what to check (a setting, a file)."""


class Interrupted(BaseException):
    """A termination signal, raised in the main thread between two whole messages.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` may swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
