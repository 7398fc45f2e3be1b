"""The Meltano project end to end: sandbox -> tap-usersnap -> target-postgres (upsert).

Needs a PostgreSQL server: .ci/run starts one and exports TAP_USERSNAP_TEST_PG_DSN. Without
that variable the fixture starts its own with scripts/pg.sh (PostgreSQL server binaries
needed: apt-get install postgresql) and fails with the reason if it cannot. Never skipped.
The target connects through the libpq variables PGHOST/PGPORT/... that meltano.yml maps to
its settings; each test loads into its own schema, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import tempfile
import typing as t
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from tests.warehouse_helpers import (
    ROOT,
    WAREHOUSE_COUNTS,
    edit_sandbox,
    expected_per_project,
    meltano,
    meltano_env,
    meltano_state,
    parse_ts,
    stop_the_tap_midway,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_usersnap.sandbox import Sandbox


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server: $TAP_USERSNAP_TEST_PG_DSN, else one started here."""
    dsn = os.environ.get("TAP_USERSNAP_TEST_PG_DSN")
    if dsn:
        yield dsn
        return
    # Not under pytest's tmp dir: it is private (0700) and the server runs as `postgres`.
    pg_dir = Path(tempfile.mkdtemp(prefix="tap-usersnap-pg-"))
    env = {**os.environ, "PG_DIR": str(pg_dir)}
    proc = subprocess.run(
        ["bash", "scripts/pg.sh", "start"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            "TAP_USERSNAP_TEST_PG_DSN is not set and scripts/pg.sh could not start PostgreSQL "
            "(install the server: apt-get install -y postgresql, or run .ci/run):\n"
            + proc.stderr[-4000:],
            pytrace=False,
        )
    exports = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in proc.stdout.splitlines()
        if line.startswith("export ")
    )
    try:
        yield exports["TAP_USERSNAP_TEST_PG_DSN"]
    finally:
        subprocess.run(
            ["bash", "scripts/pg.sh", "stop"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    schema = f"usersnap_test_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def pg_env(dsn: str) -> dict[str, str]:
    """Libpq variables for the DSN (meltano.yml maps them onto target-postgres)."""
    info = conninfo_to_dict(dsn)
    return {
        "PGHOST": str(info.get("host", "127.0.0.1")),
        "PGPORT": str(info.get("port", "5432")),
        "PGUSER": str(info["user"]),
        "PGPASSWORD": str(info.get("password", "")),
        "PGDATABASE": str(info["dbname"]),
    }


def fetch(dsn: str, query: str, params: t.Sequence[t.Any] = ()) -> list[tuple[t.Any, ...]]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(query, params).fetchall()


def test_full_then_incremental_upserts(
    tmp_path: Path, wh_sandbox: Sandbox, pg_dsn: str, pg_schema: str
) -> None:
    env = meltano_env(
        wh_sandbox,
        tmp_path,
        **pg_env(pg_dsn),
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=pg_schema,
    )
    store = wh_sandbox.store
    pids = store.project_ids()
    fb = f'"{pg_schema}".feedbacks'

    # The job declared in meltano.yml (tap-usersnap target-postgres).
    meltano(["--environment=sandbox", "run", "usersnap-to-postgres"], env)
    assert dict(fetch(pg_dsn, f"SELECT project_id, count(*) FROM {fb} GROUP BY 1")) == (
        expected_per_project(wh_sandbox)
    )
    assert fetch(pg_dsn, f"SELECT count(*), count(DISTINCT feedback_id) FROM {fb}") == [
        (sum(WAREHOUSE_COUNTS), sum(WAREHOUSE_COUNTS))
    ]
    # feedback_id is the table's primary key (upsert load method).
    pk = fetch(
        pg_dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (f'"{pg_schema}"."feedbacks"',),
    )
    assert pk == [("feedback_id",)]
    assert fetch(pg_dsn, f'SELECT count(*) FROM "{pg_schema}".projects') == [(len(pids),)]
    for table, keys in (
        ("project_assignees", "project_id, user_id"),
        ("project_metrics", "project_id, name"),
    ):
        rows, keyed = fetch(
            pg_dsn, f'SELECT count(*), count(DISTINCT ({keys})) FROM "{pg_schema}".{table}'
        )[0]
        assert rows > 0
        assert rows == keyed, f"duplicate keys in {table}"
    state = meltano_state(env, "target-postgres")
    assert len(state["singer_state"]["bookmarks"]["feedbacks"]["partitions"]) == len(pids)

    # Nested objects are jsonb.
    fid, client = next(
        (f["feedback_id"], f["client"]) for f in store.feedbacks(pids[0]) if f["client"]
    )
    assert fetch(
        pg_dsn,
        f"SELECT client->>'browser_name', (client->>'screen_width')::int FROM {fb} "
        "WHERE feedback_id = %s",
        (fid,),
    ) == [(client.get("browser_name"), client.get("screen_width"))]

    # --- changes, incremental run ----------------------------------------------------
    changed = store.change_feedbacks(pids[0], 5)
    added = store.add_feedbacks(pids[2], 4)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    meltano(["--environment=sandbox", "run", "usersnap-to-postgres"], env)

    assert dict(fetch(pg_dsn, f"SELECT project_id, count(*) FROM {fb} GROUP BY 1")) == (
        expected_per_project(wh_sandbox)
    )
    total = sum(WAREHOUSE_COUNTS) + len(added)
    assert fetch(pg_dsn, f"SELECT count(*), count(DISTINCT feedback_id) FROM {fb}") == [
        (total, total)
    ]
    current = {f["feedback_id"]: f for pid in pids for f in store.feedbacks(pid)}
    rows = fetch(
        pg_dsn,
        f"SELECT feedback_id, status_type, priority, updated_at FROM {fb} "
        "WHERE feedback_id = ANY(%s)",
        (changed + added,),
    )
    assert {r[0] for r in rows} == set(changed + added)
    for fid, status, priority, updated_at in rows:
        api = current[fid]
        assert (status, priority) == (api["status_type"], api["priority"]), fid
        assert parse_ts(updated_at) == parse_ts(api["updated_at"]), fid

    # Only the changes and the bookmark boundaries were loaded again.
    rewritten = fetch(pg_dsn, f"SELECT count(*) FROM {fb} WHERE _sdc_batched_at >= %s", (before,))[
        0
    ][0]
    assert len(changed) + len(added) <= rewritten < len(changed) + len(added) + 30


def test_nul_characters_load_into_postgres_and_duckdb(
    tmp_path: Path, wh_sandbox: Sandbox, pg_dsn: str, pg_schema: str
) -> None:
    """One NUL in any text used to fail every later run: 0 rows, no state. It becomes U+FFFD."""
    store = wh_sandbox.store
    project = store.projects()[0]
    fid = store.submit(
        project["api_key"],
        {
            "visitor": "nul\x00@example.com",  # a top-level column
            "comment": "before\x00after",  # nested: ordered_inputs[0].text_value (jsonb)
            "client": {"url": "https://example.com/\x00"},  # one level down (jsonb)
        },
    )
    env = meltano_env(
        wh_sandbox, tmp_path, **pg_env(pg_dsn), TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=pg_schema
    )
    fb = f'"{pg_schema}".feedbacks'

    meltano(["--environment=sandbox", "run", "usersnap-to-postgres"], env)
    assert dict(fetch(pg_dsn, f"SELECT project_id, count(*) FROM {fb} GROUP BY 1")) == (
        expected_per_project(wh_sandbox)
    )
    assert fetch(
        pg_dsn,
        f"SELECT email, ordered_inputs[1]->>'text_value', client->>'url' FROM {fb} "
        "WHERE feedback_id = %s",
        (fid,),
    ) == [("nul\ufffd@example.com", "before\ufffdafter", "https://example.com/\ufffd")]
    partitions = meltano_state(env, "target-postgres")["singer_state"]["bookmarks"]["feedbacks"]
    assert len(partitions["partitions"]) == len(store.project_ids())

    db = tmp_path / "warehouse.duckdb"
    duck_env = meltano_env(wh_sandbox, tmp_path / "duck", TARGET_DUCKDB_FILEPATH=str(db))
    (tmp_path / "duck").mkdir()
    meltano(["--environment=sandbox", "run", "usersnap-to-warehouse"], duck_env)
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE email = ?) FROM usersnap.feedbacks",
            ["nul\ufffd@example.com"],
        ).fetchone()
    assert loaded == (sum(expected_per_project(wh_sandbox).values()), 1)


@pytest.mark.parametrize("hard_delete", [True, False], ids=["hard", "soft"])
def test_reconcile_removes_only_what_the_source_deleted(
    tmp_path: Path, wh_sandbox: Sandbox, pg_dsn: str, pg_schema: str, hard_delete: bool
) -> None:
    """target-postgres honours the reconcile's ACTIVATE_VERSION: deletes, or sets the flag."""
    env = meltano_env(
        wh_sandbox,
        tmp_path,
        **pg_env(pg_dsn),
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=pg_schema,
        TARGET_POSTGRES_HARD_DELETE=str(hard_delete).lower(),
    )
    store = wh_sandbox.store
    fb = f'"{pg_schema}".feedbacks'

    def rows() -> tuple[dict[str, tuple[t.Any, ...]], set[str]]:
        """Live rows by id, and the ids of the soft-deleted ones."""
        found = fetch(
            pg_dsn,
            f"SELECT feedback_id, status_type, priority, updated_at, _sdc_deleted_at IS NOT NULL "
            f"FROM {fb}",
        )
        assert len(found) == len({row[0] for row in found}), "a feedback twice"
        live = {row[0]: (row[1], row[2], parse_ts(row[3])) for row in found if not row[4]}
        return live, {row[0] for row in found if row[4]}

    def api_row(feedback: dict[str, t.Any]) -> tuple[t.Any, ...]:
        return (feedback["status_type"], feedback["priority"], parse_ts(feedback["updated_at"]))

    meltano(["--environment=sandbox", "run", "usersnap-to-postgres"], env)
    bookmarks = meltano_state(env, "target-postgres")
    loaded, _ = rows()
    edits = edit_sandbox(wh_sandbox)

    # A reconcile the API fails midway, and one stopped by SIGTERM: nothing is removed.
    wh_sandbox.faults.update({"status_every_n": 4, "burst": 3, "status_code": 500})
    failed = meltano(
        ["--environment=sandbox", "run", "usersnap-reconcile-postgres"], env, check=False
    )
    wh_sandbox.faults.reset()
    assert failed.returncode != 0
    assert stop_the_tap_midway(env, wh_sandbox, "usersnap-reconcile-postgres") != 0
    live, soft_deleted = rows()
    assert set(live) >= set(loaded)
    assert soft_deleted == set()

    # A complete reconcile: deleted feedbacks removed, every other row once and current.
    meltano(["--environment=sandbox", "run", "usersnap-reconcile-postgres"], env)
    current = {f["feedback_id"]: f for pid in store.project_ids() for f in store.feedbacks(pid)}
    live, soft_deleted = rows()
    assert set(live) == set(current)
    assert soft_deleted == (set() if hard_delete else set(edits.deleted))
    assert all(live[fid] == api_row(current[fid]) for fid in edits.changed + edits.added)
    assert fetch(pg_dsn, f'SELECT count(*) FROM "{pg_schema}".projects') == [
        (len(store.project_ids()),)
    ]
    assert meltano_state(env, "target-postgres") == bookmarks  # the incremental job's

    # The incremental job runs on from its bookmarks.
    project_id = store.project_ids()[2]
    changed = store.change_feedbacks(project_id, 3)
    meltano(["--environment=sandbox", "run", "usersnap-to-postgres"], env)
    live, after_soft_deleted = rows()
    assert set(live) == set(current)
    assert after_soft_deleted == soft_deleted
    assert all(live[fid] == api_row(store.feedback(project_id, fid)) for fid in changed)
