"""Shared code for the Meltano / warehouse / Airflow tests (tests/warehouse_helpers.py).

These tests drive the real Meltano project (meltano.yml) through the `meltano` CLI, which
lives in its own venv (.tools/meltano), against a sandbox started in-process. Each run gets
its own Meltano system database (state included), DuckDB file / Postgres schema and env.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
import typing as t
from pathlib import Path

from tests.helpers import JWT_ID, JWT_SECRET

if t.TYPE_CHECKING:
    from tap_usersnap.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
SANDBOX_JWT_ID = JWT_ID
SANDBOX_JWT_SECRET = JWT_SECRET
#: Feedbacks per project of the sandbox the warehouse tests load.
WAREHOUSE_COUNTS = [250, 120, 37]
STATE_ID = "sandbox:tap-usersnap-to-{target}"

# Variables of the developer's shell that would change what the pipeline does.
_SCRUB_PREFIXES = ("TAP_USERSNAP_", "TARGET_DUCKDB_", "TARGET_POSTGRES_", "MELTANO_")


def run_script(*args: str, timeout: float = 1800) -> None:
    """Run one of scripts/*.sh, failing the test with its output when it fails."""
    proc = subprocess.run(
        ["bash", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        output = f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{output}")


def meltano_bin() -> str:
    """The meltano executable: $MELTANO_BIN, else .tools/meltano, installed on demand.

    scripts/install-meltano.sh also runs `meltano install` (skipped when meltano.yml and
    pyproject.toml did not change since the last install).
    """
    explicit = os.environ.get("MELTANO_BIN")
    if explicit:
        if not Path(explicit).exists() and not shutil.which(explicit):
            raise AssertionError(f"MELTANO_BIN={explicit} does not exist")
        run_script("scripts/install-meltano.sh")
        return explicit
    run_script("scripts/install-meltano.sh")
    exe = TOOLS / "meltano" / "bin" / "meltano"
    assert exe.exists(), f"{exe} missing after scripts/install-meltano.sh"
    return str(exe)


def plugin_python(kind: str, name: str) -> str:
    """Python of a Meltano plugin venv, e.g. ('loaders', 'target-duckdb')."""
    exe = ROOT / ".meltano" / kind / name / "venv" / "bin" / "python"
    assert exe.exists(), f"{exe} missing: run scripts/install-meltano.sh"
    return str(exe)


def meltano_env(sandbox: Sandbox, workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for one isolated `meltano run` against `sandbox`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env.update(
        {
            "MELTANO_PROJECT_ROOT": str(ROOT),
            "MELTANO_ENVIRONMENT": "sandbox",
            # Own system database: own state, own run history; migrated on first use.
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_USERSNAP_API_URL": sandbox.url,
            "TAP_USERSNAP_JWT_ID": SANDBOX_JWT_ID,
            "TAP_USERSNAP_JWT_SECRET": SANDBOX_JWT_SECRET,
            "TAP_USERSNAP_MAX_RETRIES": "2",
        }
    )
    env.update(extra)
    return env


def meltano(
    args: list[str], env: dict[str, str], *, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the meltano CLI in the project root."""
    proc = subprocess.run(
        [meltano_bin(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"meltano {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-12000:]}"
        )
    assert JWT_SECRET not in proc.stdout + proc.stderr, "the JWT secret leaked into Meltano's logs"
    return proc


def meltano_state(env: dict[str, str], target: str) -> dict[str, t.Any]:
    """The Singer state Meltano keeps for tap-usersnap -> target."""
    proc = meltano(["state", "get", STATE_ID.format(target=target)], env)
    return json.loads(proc.stdout)


def parse_ts(value: str | dt.datetime) -> dt.datetime:
    """An API timestamp as a naive UTC datetime (how both targets store date-time)."""
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def expected_per_project(sandbox: Sandbox) -> dict[str, int]:
    """Feedback count per project, as the sandbox has them now."""
    return {pid: len(sandbox.store.feedbacks(pid)) for pid in sandbox.store.project_ids()}


def wait_for(predicate: t.Callable[[], bool], timeout: float = 30) -> None:
    """Poll until predicate() is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")
