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
import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass
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


RECONCILE_STATE_ID = "sandbox:tap-usersnap-reconcile-to-{target}"


@dataclass(frozen=True)
class Edits:
    """What changed in the sandbox between a load and the reconcile."""

    changed: list[str]
    added: list[str]
    deleted: list[str]


def edit_sandbox(sandbox: Sandbox) -> Edits:
    """Change, add and delete feedbacks (in two projects) after a load."""
    store = sandbox.store
    pids = store.project_ids()
    doomed = [(pids[1], f["feedback_id"]) for f in store.feedbacks(pids[1])[3:6]]
    doomed.append((pids[0], store.feedbacks(pids[0])[-1]["feedback_id"]))
    for project_id, feedback_id in doomed:
        store.delete_feedback(project_id, feedback_id)
    changed = store.change_feedbacks(pids[0], 5)
    added = store.add_feedbacks(pids[1], 4)
    return Edits(changed, added, [feedback_id for _, feedback_id in doomed])


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
        commands[int(stat.parent.name)] = cmdline
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, commands[child]))
            todo.append(child)
    return found


def stop_the_tap_midway(env: dict[str, str], sandbox: Sandbox, job: str) -> int:
    """`meltano run <job>`, its tap sent SIGTERM once it read a few pages: the exit code.

    A second a request: the read cannot finish between two polls, so the signal always lands
    before the last page (at 30 ms a request, a loaded machine let it finish first).
    """
    sandbox.faults.update({"latency_ms": 1000})
    sandbox.reset_requests()
    proc = subprocess.Popen(
        [meltano_bin(), "--environment=sandbox", "run", job],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: sum("/feedbacks" in path for _, path, _ in sandbox.requests) >= 3, 120)
        (tap,) = [pid for pid, cmd in descendants(proc.pid) if "bin/tap-usersnap" in cmd]
        os.kill(tap, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        sandbox.faults.reset()
    assert SANDBOX_JWT_SECRET not in stderr
    return proc.returncode
