"""The ``tap-usersnap`` command: a signal ends it quietly, even while it is still starting.

Importing the SDK takes about a second. Python's own SIGINT handler would print a
KeyboardInterrupt traceback from whichever module was loading, so the tap's meaning of a
signal (``Interrupted``) is installed first, with little but the standard library loaded;
the tap replaces it with its own once it runs (``TapUsersnap._handle_termination``). Every
``Interrupted`` ends here, as a shell reports a process a signal ended: 128 + the signal.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType  # noqa: TC003  # cheap: signal loads it; typing would not be

from tap_usersnap.errors import Interrupted

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def main() -> None:
    """Run the tap's command line."""
    try:
        for signum in STOPPING_SIGNALS:
            signal.signal(signum, _interrupt)
        from tap_usersnap.tap import TapUsersnap  # the slow part: after the handlers

        TapUsersnap.cli()
    except Interrupted as stop:
        sys.exit(128 + stop.signum)


if __name__ == "__main__":
    main()
