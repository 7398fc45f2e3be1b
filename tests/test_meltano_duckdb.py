"""The Meltano project end to end: sandbox -> tap-usersnap -> target-duckdb.

Runs the real `meltano run` (meltano.yml, sandbox environment) twice against an in-process
sandbox: a full load, then an incremental run after feedbacks were changed and added.
Also checks that target-duckdb loads every row it is sent (target-duckdb 0.8.0 with
duckdb >= 1.3 silently drops the first row of every batch).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import duckdb

from tests.cli import tap_command, write_json
from tests.helpers import base_config
from tests.test_reconcile import edit_after_the_first_page
from tests.test_sync import full_table_catalog
from tests.warehouse_helpers import (
    SANDBOX_JWT_ID,
    SANDBOX_JWT_SECRET,
    WAREHOUSE_COUNTS,
    edit_sandbox,
    expected_per_project,
    meltano,
    meltano_bin,
    meltano_env,
    meltano_state,
    parse_ts,
    plugin_python,
    stop_the_tap_midway,
)

if t.TYPE_CHECKING:
    import pytest

    from tap_usersnap.sandbox import Sandbox

SCHEMA = "usersnap"


def assert_feedbacks_loaded(db: Path, sandbox: Sandbox, total: int) -> None:
    """The sandbox's feedbacks per project, each once: re-sent records merged on their key."""
    per_project = dict(query(db, f"SELECT project_id, count(*) FROM {SCHEMA}.feedbacks GROUP BY 1"))
    assert per_project == expected_per_project(sandbox)
    rows, distinct = query(
        db, f"SELECT count(*), count(DISTINCT feedback_id) FROM {SCHEMA}.feedbacks"
    )[0]
    assert rows == distinct == total


def query(db: Path, sql: str, params: list[t.Any] | None = None) -> list[tuple[t.Any, ...]]:
    """Read the DuckDB file (read-only: never upgrades or locks it for the target)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run_pipeline(env: dict[str, str]) -> None:
    meltano(["--environment=sandbox", "run", "tap-usersnap", "target-duckdb"], env)


def test_full_then_incremental_merges_on_keys(tmp_path: Path, wh_sandbox: Sandbox) -> None:
    db = tmp_path / "warehouse.duckdb"  # file name != schema name (DuckDB ambiguity)
    env = meltano_env(wh_sandbox, tmp_path, TARGET_DUCKDB_FILEPATH=str(db))
    store = wh_sandbox.store
    pids = store.project_ids()

    # --- run 1: full load -------------------------------------------------------------
    run_pipeline(env)
    assert_feedbacks_loaded(db, wh_sandbox, sum(WAREHOUSE_COUNTS))
    assert query(db, f"SELECT count(*) FROM {SCHEMA}.projects")[0][0] == len(pids)
    for table, keys in (
        ("project_assignees", "project_id, user_id"),
        ("project_metrics", "project_id, name"),
    ):
        rows, keyed = query(db, f"SELECT count(*), count(DISTINCT ({keys})) FROM {SCHEMA}.{table}")[
            0
        ]
        assert rows > 0
        assert rows == keyed, f"duplicate keys in {table}"

    state = meltano_state(env, "target-duckdb")
    partitions = state["singer_state"]["bookmarks"]["feedbacks"]["partitions"]
    assert {p["context"]["project_id"] for p in partitions} == set(pids)

    # Nested objects land as JSON and can be queried.
    with_client = {f["feedback_id"]: f["client"] for f in store.feedbacks(pids[0]) if f["client"]}
    assert with_client, "sandbox data should have feedbacks with a client object"
    fid, client = next(iter(with_client.items()))
    got = query(
        db,
        f"SELECT json_extract_string(client, '$.browser_name'), "
        f"CAST(json_extract(client, '$.screen_width') AS INTEGER) "
        f"FROM {SCHEMA}.feedbacks WHERE feedback_id = ?",
        [fid],
    )
    assert got == [(client.get("browser_name"), client.get("screen_width"))]

    # --- changes in the API, run 2: incremental ---------------------------------------
    changed = store.change_feedbacks(pids[0], 5)
    added = store.add_feedbacks(pids[1], 4)
    second_run_start = dt.datetime.now()
    run_pipeline(env)

    assert_feedbacks_loaded(db, wh_sandbox, sum(WAREHOUSE_COUNTS) + len(added))

    current = {f["feedback_id"]: f for pid in pids for f in store.feedbacks(pid)}
    rows = query(
        db,
        f"SELECT feedback_id, status_type, priority, updated_at "
        f"FROM {SCHEMA}.feedbacks WHERE feedback_id IN (SELECT unnest(?::VARCHAR[]))",
        [changed + added],
    )
    assert {r[0] for r in rows} == set(changed + added)
    for fid, status, priority, updated_at in rows:
        api = current[fid]
        assert (status, priority) == (api["status_type"], api["priority"]), fid
        assert updated_at == parse_ts(api["updated_at"]), fid

    # Incremental: only the changed/added feedbacks and the bookmark boundaries were
    # written again, not the whole table.
    rewritten = query(
        db,
        f"SELECT count(*) FROM {SCHEMA}.feedbacks WHERE _sdc_batched_at >= ?::TIMESTAMP",
        [second_run_start.isoformat()],
    )[0][0]
    assert len(changed) + len(added) <= rewritten < len(changed) + len(added) + 30


def _tap_messages(sandbox: Sandbox, tmp_path: Path) -> Path:
    """Run the tap (project venv) once and keep its Singer output."""
    config = tmp_path / "tap.json"
    config.write_text(
        json.dumps(
            {"api_url": sandbox.url, "jwt_id": SANDBOX_JWT_ID, "jwt_secret": SANDBOX_JWT_SECRET}
        ),
        encoding="utf-8",
    )
    out = tmp_path / "messages.jsonl"
    tap = Path(sys.executable).with_name("tap-usersnap")
    with out.open("w", encoding="utf-8") as fh:
        subprocess.run(
            [str(tap), "--config", str(config)],
            stdout=fh,
            stderr=subprocess.PIPE,
            check=True,
            timeout=300,
        )
    return out


def _load(messages: Path, tmp_path: Path, db: Path, batch_size_rows: int) -> None:
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(
            {
                "filepath": str(db),
                "default_target_schema": SCHEMA,
                "add_metadata_columns": True,
                "batch_size_rows": batch_size_rows,
            }
        ),
        encoding="utf-8",
    )
    target = Path(plugin_python("loaders", "target-duckdb")).with_name("target-duckdb")
    with messages.open("rb") as fh:
        subprocess.run(
            [str(target), "--config", str(config)],
            stdin=fh,
            capture_output=True,
            check=True,
            timeout=300,
        )


def test_target_duckdb_loads_every_row(tmp_path: Path, wh_sandbox: Sandbox) -> None:
    """Rows in DuckDB == distinct keys emitted, with many small batches."""
    version = subprocess.run(
        [
            plugin_python("loaders", "target-duckdb"),
            "-c",
            "import duckdb; print(duckdb.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert tuple(int(x) for x in version.split(".")[:2]) < (1, 3), (
        f"target-duckdb runs with duckdb {version}: with duckdb >= 1.3 target-duckdb 0.8.0 "
        "drops the first row of every batch; keep duckdb pinned in meltano.yml"
    )

    messages = _tap_messages(wh_sandbox, tmp_path)
    keys: dict[str, set[tuple[t.Any, ...]]] = collections.defaultdict(set)
    key_props: dict[str, list[str]] = {}
    for line in messages.read_text(encoding="utf-8").splitlines():
        msg = json.loads(line)
        if msg["type"] == "SCHEMA":
            key_props[msg["stream"]] = msg["key_properties"]
        elif msg["type"] == "RECORD":
            rec = msg["record"]
            keys[msg["stream"]].add(tuple(rec[k] for k in key_props[msg["stream"]]))
    assert sum(len(v) for v in keys.values()) > sum(WAREHOUSE_COUNTS)

    # One synthetic stream with a single record: a batch of one row.
    with messages.open("a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": "single",
                    "key_properties": ["id"],
                    "schema": {
                        "type": "object",
                        "properties": {
                            "id": {"type": ["string"]},
                            "v": {"type": ["integer", "null"], "maximum": 100},
                        },
                    },
                }
            )
            + "\n"
        )
        fh.write(
            json.dumps({"type": "RECORD", "stream": "single", "record": {"id": "only", "v": 1}})
            + "\n"
        )

    db = tmp_path / "rows.duckdb"
    _load(messages, tmp_path, db, batch_size_rows=7)  # dozens of batches per stream
    for stream, emitted in keys.items():
        loaded = query(db, f'SELECT count(*) FROM {SCHEMA}."{stream}"')[0][0]
        assert loaded == len(emitted), f"{stream}: {loaded} rows loaded, {len(emitted)} sent"
    assert query(db, f"SELECT id, v FROM {SCHEMA}.single") == [("only", 1)]


# --- the reconcile (issue 10) ------------------------------------------------------------


def warehouse_rows(db: Path) -> dict[str, tuple[t.Any, ...]]:
    """feedback_id -> (status_type, priority, updated_at, _sdc_deleted_at is set)."""
    rows = query(
        db,
        f"SELECT feedback_id, status_type, priority, updated_at, _sdc_deleted_at IS NOT NULL "
        f"FROM {SCHEMA}.feedbacks",
    )
    assert len(rows) == len({row[0] for row in rows}), "a feedback twice"
    return {row[0]: row[1:] for row in rows}


def test_reconcile_removes_only_what_the_source_deleted(tmp_path: Path, wh_sandbox: Sandbox):
    db = tmp_path / "warehouse.duckdb"
    env = meltano_env(wh_sandbox, tmp_path, TARGET_DUCKDB_FILEPATH=str(db))
    store = wh_sandbox.store
    meltano(["--environment=sandbox", "run", "usersnap-to-warehouse"], env)
    bookmarks = meltano_state(env, "target-duckdb")
    loaded = warehouse_rows(db)
    edits = edit_sandbox(wh_sandbox)

    # A reconcile the API fails midway, and one stopped by SIGTERM: nothing is removed.
    wh_sandbox.faults.update({"status_every_n": 4, "burst": 3, "status_code": 500})
    failed = meltano(["--environment=sandbox", "run", "usersnap-reconcile"], env, check=False)
    wh_sandbox.faults.reset()
    assert failed.returncode != 0
    assert "Usersnap API answered 500" in failed.stderr
    assert stop_the_tap_midway(env, wh_sandbox, "usersnap-reconcile") != 0
    after_failures = warehouse_rows(db)
    assert set(after_failures) >= set(loaded)
    assert not [fid for fid, row in after_failures.items() if row[-1]], "a row was removed"

    # A complete reconcile: deleted feedbacks soft-deleted, every other row once and current.
    meltano(["--environment=sandbox", "run", "usersnap-reconcile"], env)
    current = {f["feedback_id"]: f for pid in store.project_ids() for f in store.feedbacks(pid)}
    rows = warehouse_rows(db)
    assert {fid for fid, row in rows.items() if row[-1]} == set(edits.deleted)
    assert {fid for fid, row in rows.items() if not row[-1]} == set(current)
    for fid in edits.changed + edits.added:
        api = current[fid]
        assert rows[fid][:3] == (api["status_type"], api["priority"], parse_ts(api["updated_at"]))
    assert meltano_state(env, "target-duckdb") == bookmarks  # the incremental job's, untouched

    # The incremental job runs on from its bookmarks; a deleted row stays deleted.
    changed = store.change_feedbacks(store.project_ids()[2], 3)
    meltano(["--environment=sandbox", "run", "usersnap-to-warehouse"], env)
    rows = warehouse_rows(db)
    assert {fid for fid, row in rows.items() if row[-1]} == set(edits.deleted)
    for fid in changed:
        api = store.feedback(store.project_ids()[2], fid)
        assert rows[fid][:3] == (api["status_type"], api["priority"], parse_ts(api["updated_at"]))

    # hard_delete: deleted at the source, or in a project gone from GET /projects: gone.
    gone, kept = store.project_ids()[2], store.project_ids()[0]
    deleted = store.feedbacks(kept)[0]["feedback_id"]
    store.delete_feedback(kept, deleted)
    wh_sandbox.faults.update({"hide_project": gone})
    hard = {**env, "TARGET_DUCKDB_HARD_DELETE": "true"}
    meltano(["--environment=sandbox", "run", "usersnap-reconcile"], hard)
    listed = [pid for pid in store.project_ids() if pid != gone]
    assert set(warehouse_rows(db)) == {f["feedback_id"] for p in listed for f in store.feedbacks(p)}
    assert {pid for (pid,) in query(db, f"SELECT project_id FROM {SCHEMA}.projects")} == set(listed)


def reconcile_into_duckdb(
    tmp_path: Path, sandbox: Sandbox, env: dict[str, str] | None = None, **settings: t.Any
) -> Path:
    """The reconcile, the tap's output piped into target-duckdb-reconcile: the DuckDB file."""
    meltano_bin()  # the plugins, installed on first use
    loader = Path(plugin_python("loaders", "target-duckdb-reconcile")).with_name(
        "target-duckdb-reconcile"
    )
    db = tmp_path / "warehouse.duckdb"
    target = {"filepath": str(db), "default_target_schema": SCHEMA, "add_metadata_columns": True}
    config = base_config(sandbox.url, emit_activate_version_messages=True, **settings)
    tap = [
        *tap_command(),
        "--config",
        str(write_json(tmp_path / "config.json", config)),
        "--catalog",
        str(write_json(tmp_path / "catalog.json", full_table_catalog(config))),
    ]
    load = [str(loader), "--config", str(write_json(tmp_path / "target.json", target))]
    messages = subprocess.run(tap, capture_output=True, check=True, timeout=120).stdout
    subprocess.run(load, input=messages, capture_output=True, check=True, env=env, timeout=120)
    return db


def test_a_soft_delete_is_stamped_on_the_clock_of_sdc_batched_at(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox]
):
    """``_sdc_deleted_at`` reads as a timestamp of ``_sdc_batched_at``'s kind: local, naive.

    The loader runs in a zone five hours from UTC: a UTC stamp would be that far off.
    """
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[20])
    project_id = sandbox.store.project_ids()[0]
    env = {**os.environ, "TZ": "EST5EDT"}
    reconcile_into_duckdb(tmp_path, sandbox, env)
    deleted = sandbox.store.feedbacks(project_id)[0]["feedback_id"]
    sandbox.store.delete_feedback(project_id, deleted)
    db = reconcile_into_duckdb(tmp_path, sandbox, env)

    ((column_type,),) = query(
        db,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'feedbacks' AND column_name = '_sdc_deleted_at'",
    )
    assert column_type == "VARCHAR"  # target-duckdb's: the loader keeps its table as it is
    ((feedback_id, deleted_at, last_batched),) = query(
        db,
        f"SELECT feedback_id, _sdc_deleted_at, "
        f"(SELECT max(_sdc_batched_at) FROM {SCHEMA}.feedbacks) "
        f"FROM {SCHEMA}.feedbacks WHERE _sdc_deleted_at IS NOT NULL",
    )
    assert feedback_id == deleted
    # Naive, as DuckDB prints a TIMESTAMP: with an offset, DuckDB 1.2 reads it as UTC, 2.0
    # drops the offset, so the same value would mean different instants.
    stamped = dt.datetime.fromisoformat(deleted_at)
    assert stamped.tzinfo is None, deleted_at
    # Stamped after the last row was loaded, on the same clock: seconds after, not hours.
    assert last_batched <= stamped < last_batched + dt.timedelta(minutes=10)


def test_a_feedback_edited_during_the_reconcile_keeps_its_row(
    tmp_path: Path, make_sandbox: t.Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
):
    """Edited while the reconcile reads its project: its row stays, only the deleted one goes."""
    sandbox = make_sandbox(projects=1, feedbacks_per_project=[300])
    project_id = sandbox.store.project_ids()[0]
    reconcile_into_duckdb(tmp_path, sandbox, page_size=50)
    deleted = sandbox.store.feedbacks(project_id)[0]["feedback_id"]
    sandbox.store.delete_feedback(project_id, deleted)
    feedbacks = sandbox.store.feedbacks(project_id)
    edited = min(feedbacks, key=lambda f: f["updated_at"])["feedback_id"]
    changed = edit_after_the_first_page(monkeypatch, sandbox, project_id, edited)
    db = reconcile_into_duckdb(tmp_path, sandbox, page_size=50)

    assert changed == [edited]  # the scenario happened
    rows = query(db, f"SELECT feedback_id, status_type, _sdc_deleted_at FROM {SCHEMA}.feedbacks")
    assert {fid for fid, _status, gone in rows if gone} == {deleted}
    status = {fid: status for fid, status, _gone in rows}
    assert status[edited] == sandbox.store.feedback(project_id, edited)["status_type"]
