"""Reconcile: one ACTIVATE_VERSION a stream, sent only once every project was read completely.

With ``emit_activate_version_messages`` the SDK sends ACTIVATE_VERSION at the START of every
partition: the loader then removes every older row of the table before a record arrives, so
a run that stops midway loses rows that exist at the source. Here no stream sends one itself
(``UsersnapStream.emit_activate_version_messages``); the tap stamps the run's version on the
records and, after a run that read everything, sends one for each full-table stream.
"""

from __future__ import annotations

import typing as t

from singer_sdk.singerlib.catalog import REPLICATION_FULL_TABLE

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk import Stream, Tap

    from tap_usersnap.tap import TapUsersnap

SETTING = "emit_activate_version_messages"


def reconciled(stream: Stream) -> bool:
    """Whether an ACTIVATE_VERSION may follow this stream's read: its rows not sent go."""
    return bool(stream.config.get(SETTING)) and stream.replication_method == REPLICATION_FULL_TABLE


def reconciled_streams(tap: Tap) -> list[Stream]:
    """The selected streams this run reads whole: the ones an ACTIVATE_VERSION may cover."""
    return [stream for stream in tap.streams.values() if stream.selected and reconciled(stream)]


def run_version(tap: Tap) -> int:
    """The run's start in seconds, as the SDK makes it: it grows run by run."""
    return tap.initialized_at // 1000


def stamp_version(tap: Tap) -> None:
    """Records carry the run's version: the loader keeps them when the version is activated."""
    for stream in reconciled_streams(tap):
        stream._stream_version = run_version(tap)  # the SDK puts it on each RECORD


def activate_version(tap: TapUsersnap) -> None:
    """After a run that read every project completely: the loader removes what was not sent.

    ACTIVATE_VERSION applies to a whole table. A run limited by ``project_ids`` would remove
    the rows of every other project, a stream read incrementally was not read whole, an
    empty project list would empty every table, and a read that may have missed rows (short
    of the API's count, a project's lists without its ``api_key``, lists a stream map
    skipped) would lose them. A reconcile reads in ``created_at`` order, then the list's top
    again (``ranges``), so an edit during the read is read: the count check is the second
    line, not the only one.
    """
    if not tap.config.get(SETTING):
        return
    if tap.config.get("project_ids"):
        tap.logger.warning(
            "Reconcile: no row is removed, as project_ids limits the run and ACTIVATE_VERSION "
            "would remove the rows of every other project: unset project_ids for the reconcile"
        )
        return
    if tap.run_report.projects_total == 0:
        tap.logger.warning(
            "Reconcile: no row is removed, as GET /projects listed no project: ACTIVATE_VERSION "
            "would empty every table. Check the credentials' access to the projects"
        )
        return
    streams = reconciled_streams(tap)
    if incremental := sorted(
        stream.name for stream in tap.streams.values() if stream.selected and stream not in streams
    ):
        tap.logger.warning(
            "Reconcile: no row of %s is removed, as the catalog does not force FULL_TABLE "
            "on them (Meltano: metadata replication-method: FULL_TABLE)",
            ", ".join(incremental),
        )
    withheld: dict[str, list[str]] = {}  # streams by why: one warning for the same projects
    for stream in streams:
        if reasons := tap.incomplete_reads.get(stream.name):
            withheld.setdefault("; ".join(reasons.values()), []).append(stream.name)
    streams = [stream for stream in streams if not tap.incomplete_reads.get(stream.name)]
    for why, names in withheld.items():
        tap.logger.warning(
            "Reconcile: no row of %s is removed, as the read may have missed rows that exist "
            "at the source (%s): run the reconcile again once they can be read whole",
            ", ".join(names),
            why,
        )
    version = run_version(tap)
    for stream in streams:
        stream._write_activate_version_message(version)
    if streams:
        tap.logger.info(
            "Reconcile: %s read whole; ACTIVATE_VERSION %d sent for each: the loader removes "
            "the rows the API no longer lists",
            ", ".join(stream.name for stream in streams),
            version,
        )


def warn_of_projects_gone(tap: Tap, listed: Iterable[str | None]) -> None:
    """Name the bookmarked projects ``GET /projects`` no longer lists: their rows stay for now.

    The API does not say whether a project was deleted or the credentials lost access to it;
    either way its rows stay until a reconcile removes them.
    """
    bookmarks = tap.state.get("bookmarks", {}).get("feedbacks", {}).get("partitions", [])
    gone = {partition["context"].get("project_id") for partition in bookmarks} - {*listed, None}
    if gone:
        tap.logger.warning(
            "GET /projects no longer lists %d project(s) the state has bookmarks for (deleted, "
            "or access removed): their rows stay in the warehouse until the reconcile removes "
            "them: %s",
            len(gone),
            ", ".join(sorted(gone)),
        )
