"""The Airflow DAGs in orchestrate/airflow/dags, generated from meltano.yml's schedules.

Airflow lives in its own venv (.tools/airflow: $AIRFLOW_BIN / $AIRFLOW_VENV, installed on
demand by scripts/install-airflow.sh), so everything Airflow runs in a subprocess with that
venv's interpreter, with AIRFLOW_HOME in a temp dir (SQLite, no examples).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import typing as t
from pathlib import Path

import duckdb
import pytest
import yaml

from tap_usersnap.sandbox import Sandbox
from tests.warehouse_helpers import (
    ROOT,
    SANDBOX_JWT_ID,
    SANDBOX_JWT_SECRET,
    TOOLS,
    expected_per_project,
    meltano_bin,
    meltano_env,
    run_script,
)

DAGS = ROOT / "orchestrate" / "airflow" / "dags"

DAGBAG_SCRIPT = r"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    bag = DagBag(sys.argv[1])
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 2
    bag = DagBag(sys.argv[1], include_examples=False)
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "schedule": str(getattr(dag, "schedule", None) or dag.timetable.summary),
        "catchup": dag.catchup,
        "tasks": {task.task_id: getattr(task, "bash_command", None) for task in dag.tasks},
    }
print("DAGBAG=" + json.dumps(out))
"""


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """$AIRFLOW_BIN, else .tools/airflow/bin/airflow (installed on demand)."""
    explicit = os.environ.get("AIRFLOW_BIN")
    if explicit:
        assert Path(explicit).exists(), f"AIRFLOW_BIN={explicit} does not exist"
        return Path(explicit)
    run_script("scripts/install-airflow.sh")
    exe = TOOLS / "airflow" / "bin" / "airflow"
    assert exe.exists(), f"{exe} missing after scripts/install-airflow.sh"
    return exe


def airflow_env(home: Path, base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in (base or os.environ).items() if not k.startswith("AIRFLOW__")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def schedules() -> list[dict[str, t.Any]]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    return project["schedules"]


def test_dagbag_has_one_dag_per_meltano_schedule(airflow_bin: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(airflow_bin.with_name("python")), "-c", DAGBAG_SCRIPT, str(DAGS)],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("DAGBAG="))
    bag = json.loads(line.removeprefix("DAGBAG="))
    assert bag["errors"] == {}
    wanted = schedules()
    assert set(bag["dags"]) == {f"meltano_{s['name']}" for s in wanted}
    for sched in wanted:
        dag = bag["dags"][f"meltano_{sched['name']}"]
        assert dag["catchup"] is False
        assert dag["schedule"] == sched["interval"]
        (command,) = dag["tasks"].values()
        assert command.endswith(f"run {sched['job']}"), command
        assert "meltano" in command


@pytest.mark.parametrize("schedule", ["daily-usersnap", "weekly-usersnap-reconcile"])
def test_dags_test_runs_the_pipeline_into_duckdb(
    airflow_bin: Path, tmp_path: Path, schedule: str
) -> None:
    """`airflow dags test` runs the schedule's job (`meltano run ...`) against a sandbox."""
    home = tmp_path / "airflow_home"
    home.mkdir()
    db = tmp_path / "warehouse.duckdb"
    counts = [60, 25, 9]
    with Sandbox(
        jwt_id=SANDBOX_JWT_ID,
        jwt_secret=SANDBOX_JWT_SECRET,
        projects=3,
        feedbacks_per_project=counts,
        seed=3,
    ) as sandbox:
        env = airflow_env(
            home,
            meltano_env(sandbox, tmp_path, TARGET_DUCKDB_FILEPATH=str(db)),
            MELTANO_BIN=meltano_bin(),
            MELTANO_DAG_RETRIES="0",
        )
        migrate = subprocess.run(
            [str(airflow_bin), "db", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr[-6000:]

        assert schedule in {s["name"] for s in schedules()}
        dag_id = f"meltano_{schedule}"
        started = time.monotonic()
        run = subprocess.run(
            [str(airflow_bin), "dags", "test", dag_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        elapsed = time.monotonic() - started
        print(f"airflow dags test {dag_id}: {elapsed:.1f}s")
        logs = run.stdout[-8000:] + run.stderr[-8000:]
        assert run.returncode == 0, logs
        assert "state=success" in logs, logs
        assert SANDBOX_JWT_SECRET not in run.stdout + run.stderr
        expected = expected_per_project(sandbox)

    con = duckdb.connect(str(db), read_only=True)
    try:
        per_project = dict(
            con.execute(
                "SELECT project_id, count(*) FROM usersnap.feedbacks "
                "WHERE _sdc_deleted_at IS NULL GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    assert per_project == expected
    assert sum(per_project.values()) == sum(counts)
