"""target-duckdb, honouring ACTIVATE_VERSION: a complete reconcile removes what it did not send.

target-duckdb 0.8.0 ignores ACTIVATE_VERSION, and no DuckDB loader on PyPI honours it. This
loader runs target-duckdb unchanged on the same messages. Once it has loaded them all and
exited 0, for every stream that got an ACTIVATE_VERSION it does what an SDK loader does: the
rows this run did not send (``_sdc_batched_at`` before the run started, on the loader's own
clock) get ``_sdc_deleted_at`` (soft), or are deleted with ``hard_delete``. The tap sends
ACTIVATE_VERSION only after a complete read, so a failed, interrupted or limited run, or a
load that fails, removes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import duckdb

ACTIVATE_VERSION = b'"ACTIVATE_VERSION"'


def activated_stream(line: bytes) -> str | None:
    """The stream an ACTIVATE_VERSION message names; None for any other message (cheap)."""
    if ACTIVATE_VERSION not in line:
        return None
    message = json.loads(line)
    return str(message["stream"]) if message.get("type") == "ACTIVATE_VERSION" else None


def table_name_only(stream: str) -> str:
    """The name target-duckdb gives the table of ``stream`` (its own rule)."""
    return stream.replace(".", "_").replace("-", "_").lower()


def table_name(config: dict[str, t.Any], stream: str) -> str:
    """The table target-duckdb loads ``stream`` into, with its schema."""
    return f'"{config["default_target_schema"]}"."{table_name_only(stream)}"'


def remove_unsent(
    config: dict[str, t.Any], streams: t.Iterable[str], started: dt.datetime
) -> dict[str, int]:
    """Rows of ``streams`` the run did not send: soft-deleted, or deleted with hard_delete.

    ``_sdc_deleted_at`` is target-duckdb's column (text): it gets the loader's local time,
    naive, as DuckDB prints a timestamp, the kind of ``_sdc_batched_at`` next to it. DuckDB's
    ``now()`` would be an instant with an offset: a cast to TIMESTAMP makes it UTC, hours
    away from ``_sdc_batched_at`` on a machine not on UTC.
    """
    removed = {}
    deleted_at = dt.datetime.now()  # as target-duckdb stamps _sdc_batched_at
    hard = bool(config.get("hard_delete"))
    unsent = "_sdc_batched_at < ?" + ("" if hard else " AND _sdc_deleted_at IS NULL")
    with duckdb.connect(config["filepath"]) as con:
        for stream in streams:
            table = table_name(config, stream)
            if not con.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [config["default_target_schema"], table_name_only(stream)],
            ).fetchall():
                continue  # nothing was ever loaded: nothing to remove
            count = con.execute(f"SELECT count(*) FROM {table} WHERE {unsent}", [started])
            removed[stream] = int(count.fetchall()[0][0])
            if hard:
                con.execute(f"DELETE FROM {table} WHERE {unsent}", [started])
            else:
                con.execute(
                    f"UPDATE {table} SET _sdc_deleted_at = CAST(CAST(? AS TIMESTAMP) AS VARCHAR) "
                    f"WHERE {unsent}",
                    [deleted_at, started],
                )
    return removed


def main() -> int:
    """Run target-duckdb with the arguments given; then honour the ACTIVATE_VERSIONs it saw."""
    target_duckdb = str(Path(sys.executable).with_name("target-duckdb"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("-c", "--config")
    config_path = parser.parse_known_args()[0].config
    if config_path is None:  # no load (--help, --version): target-duckdb answers
        os.execv(target_duckdb, [target_duckdb, *sys.argv[1:]])
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    if not config.get("add_metadata_columns") and not config.get("hard_delete"):
        print(
            "target-duckdb-reconcile needs add_metadata_columns: true (_sdc_batched_at tells "
            "the rows this run sent)",
            file=sys.stderr,
        )
        return 2
    started = dt.datetime.now()  # target-duckdb's _sdc_batched_at is local, naive
    offset = time.localtime().tm_gmtoff
    target = subprocess.Popen([target_duckdb, *sys.argv[1:]], stdin=subprocess.PIPE)
    assert target.stdin is not None
    activated: dict[str, None] = {}
    try:
        for line in sys.stdin.buffer:
            if stream := activated_stream(line):
                activated[stream] = None
            target.stdin.write(line)
    except BrokenPipeError:
        pass  # target-duckdb stopped: its exit code says why
    finally:
        target.stdin.close()
    if (code := target.wait()) != 0:
        return code
    if activated and time.localtime().tm_gmtoff != offset:
        print(
            "The local clock's UTC offset changed during the run (daylight saving time), and "
            "_sdc_batched_at is local time: no row is removed. Run the reconcile again.",
            file=sys.stderr,
        )
        return 0
    for stream, count in remove_unsent(config, activated, started).items():
        print(
            f"ACTIVATE_VERSION {stream}: {count} row(s) the source no longer lists "
            f"{'deleted' if config.get('hard_delete') else 'soft-deleted (_sdc_deleted_at)'}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
