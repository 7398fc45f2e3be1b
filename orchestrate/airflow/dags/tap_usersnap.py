"""Airflow DAGs generated from the Meltano project's ``schedules`` (meltano.yml).

One DAG per Meltano schedule, ``dag_id = "meltano_<schedule name>"``, with one
BashOperator that runs ``meltano run <job>`` in the project directory (or
``meltano run <extractor> <loader>`` for an old extractor/loader schedule).

Works with Airflow 3.x (``airflow.providers.standard``) and 2.x. Environment:

- ``MELTANO_PROJECT_ROOT``: the Meltano project (default: three levels above this file).
- ``MELTANO_BIN``: the meltano executable (default ``.tools/meltano/bin/meltano`` in the
  project when present, else ``meltano`` on PATH).
- ``MELTANO_DAG_RETRIES``: task retries (default 1; tests use 0).
- ``MELTANO_ENVIRONMENT``: passed through to meltano (default: meltano.yml's
  ``default_environment``); any other variable of the worker (TAP_USERSNAP_*,
  TARGET_DUCKDB_FILEPATH, ...) reaches meltano too.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator  # type: ignore[no-redef]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(os.environ.get("MELTANO_PROJECT_ROOT") or Path(__file__).resolve().parents[3])


def _meltano_bin() -> str:
    explicit = os.environ.get("MELTANO_BIN")
    if explicit:
        return explicit
    local = PROJECT_ROOT / ".tools" / "meltano" / "bin" / "meltano"
    return str(local) if local.exists() else "meltano"


def _airflow_schedule(interval: str | None) -> str | None:
    """Meltano interval -> Airflow schedule ('@manual' and empty mean no schedule)."""
    if not interval or interval in {"@manual", "@none"}:
        return None
    return interval


def _start_date(schedule: dict[str, Any]) -> datetime:
    raw = schedule.get("start_date")
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, str) and raw:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime(2024, 1, 1, tzinfo=UTC)


def _command(schedule: dict[str, Any]) -> list[str] | None:
    if schedule.get("job"):
        return ["run", str(schedule["job"])]
    if schedule.get("extractor") and schedule.get("loader"):
        args = ["run", str(schedule["extractor"])]
        if schedule.get("transform") == "run":
            log.warning("schedule %s: transform is ignored", schedule.get("name"))
        return [*args, str(schedule["loader"])]
    return None


def load_meltano_project(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Read meltano.yml (and nothing else: no meltano import, parsing stays fast)."""
    with (root / "meltano.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def build_dags(root: Path = PROJECT_ROOT) -> dict[str, DAG]:
    """One DAG per Meltano schedule."""
    project = load_meltano_project(root)
    jobs = {job["name"]: job for job in project.get("jobs") or []}
    meltano = _meltano_bin()
    dags: dict[str, DAG] = {}
    for schedule in project.get("schedules") or []:
        name = str(schedule["name"])
        args = _command(schedule)
        if args is None:
            log.warning("schedule %s has neither a job nor extractor+loader; skipped", name)
            continue
        job = jobs.get(str(schedule.get("job")))
        tasks = job["tasks"] if job else [" ".join(args[1:])]
        dag_id = "meltano_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        env = {"MELTANO_PROJECT_ROOT": str(root)}
        env.update({str(k): str(v) for k, v in (schedule.get("env") or {}).items()})
        with DAG(
            dag_id=dag_id,
            description=f"Meltano schedule {name}: {tasks}",
            schedule=_airflow_schedule(schedule.get("interval")),
            start_date=_start_date(schedule),
            catchup=False,
            max_active_runs=1,
            tags=["meltano", "usersnap"],
            default_args={
                "owner": "data",
                "retries": int(os.environ.get("MELTANO_DAG_RETRIES", "1")),
                "retry_delay": timedelta(minutes=5),
            },
        ) as dag:
            BashOperator(
                task_id=re.sub(r"[^A-Za-z0-9_.-]", "_", args[1]),
                bash_command=f"cd {shlex.quote(str(root))} && "
                + " ".join(shlex.quote(a) for a in [meltano, *args]),
                env=env,
                append_env=True,
                execution_timeout=timedelta(hours=6),
            )
        dags[dag_id] = dag
    return dags


for _dag_id, _dag in build_dags().items():
    globals()[_dag_id] = _dag
