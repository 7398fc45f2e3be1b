"""The ``tap-usersnap`` command: a signal ends it quietly, even while it is still starting.

Importing the SDK takes about a second. A signal then must neither print a traceback from
whichever module was loading (Python's KeyboardInterrupt) nor be lost: an exception raised
by a signal handler there can meet a library's ``except BaseException`` and vanish, and the
run goes on. Until the tap installs its own handler (``TapUsersnap._handle_termination``),
nothing is written and nothing needs saving, so a signal ends the process at once. Either
way the exit code is what a shell reports for a process a signal ended: 128 + the signal.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType  # noqa: TC003  # cheap: signal loads it; typing would not be

from tap_usersnap.errors import Interrupted

#: SIGHUP too: a closed terminal or session. SIGTERM last: once it is caught, all are.
STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGINT", "SIGTERM") if hasattr(signal, name)
)


def _end_now(signum: int, _frame: FrameType | None) -> None:
    os._exit(128 + signum)


def main() -> None:
    """Run the tap's command line."""
    for signum in STOPPING_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: SIGHUP stays ignored
            signal.signal(signum, _end_now)
    from tap_usersnap.tap import TapUsersnap  # the slow part: after the handlers

    try:
        TapUsersnap.cli()
    except Interrupted as stop:  # the tap's handler: the run's last STATE is out
        sys.exit(128 + stop.signum)


if __name__ == "__main__":
    main()
