"""Log filters: each drops one SDK line that would mislead a user of this tap.

The SDK logs from code the tap does not own; a filter is the one way to correct a line
without copying that code. Each filter matches one line, by its opening words.
"""

from __future__ import annotations

import logging
import sys

from singer_sdk.exceptions import MappingError, SyncLifecycleSignal

from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

# The SDK logs this at ERROR for any exception leaving a stream, even for the ends of
# its own dry run (``--test``); the CLI reports an expected failure itself, once.
SDK_SYNC_FAILURE = "An unhandled error occurred while syncing"
# The SDK warns so of every unsorted incremental stream, once a project.
SDK_NOT_RESUMABLE = "Stream is assumed to be unsorted"


class ReportedByTheCLI(logging.Filter):
    """Drops the SDK's "unhandled error" line for an expected failure or a dry run's end.

    An expected failure (a ``UsersnapError``, or a stream map the SDK cannot apply) is
    reported by the command as one ERROR line naming the cause; the
    SDK's line would be a second, vaguer one. A lifecycle signal (``--test``'s end) is no
    failure at all. Anything else is a bug, and keeps the line.
    """

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            str(record.msg).startswith(SDK_SYNC_FAILURE)
            and isinstance(sys.exc_info()[1], UsersnapError | SyncLifecycleSignal | MappingError)
        )


class ResumableAnyway(logging.Filter):
    """Drops the SDK's warning that an unsorted stream's progress is not resumable.

    It is, here: the resume point (``state.RESUME_KEY``) is part of every STATE. Said on
    every run for every project, the warning was noise, and wrong.
    """

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SDK_NOT_RESUMABLE)


#: For each stream's logger.
REPORTED_BY_THE_CLI = ReportedByTheCLI()
#: For the SDK's logger, which says it; added once (a logger holds a set of filters).
RESUMABLE_ANYWAY = ResumableAnyway()
