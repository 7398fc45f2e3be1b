"""The first hour as a new user types it: the README's two commands and what they print.

The demo runs twice in a copy of the work tree (its own .venv, .meltano, output/ and state),
on a PATH whose python3.11 is a pyenv-like shim, and every command it or the README prints
for the user to copy is run as printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.warehouse_helpers import ROOT, meltano_bin

README = (ROOT / "README.md").read_text(encoding="utf-8")
STATE_ID = "sandbox:tap-usersnap-to-target-duckdb"


def readme_commands() -> list[str]:
    """Shell commands the README shows: lines of bash blocks, inline commands in the text."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(command)
    # Inline: a project path followed by arguments (a bare path in a sentence is no command).
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    inline = [
        " ".join(span.split())
        for span in re.findall(r"`([^`]+)`", prose)
        if span.startswith(("bash scripts/", ".venv/bin/", ".tools/")) and " " in span.strip()
    ]
    return commands + inline


def copy_of_work_tree(dest: Path) -> Path:
    """Tracked and new files as they are now (not the ignored .venv, .meltano, output/)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meltano_bin()  # Meltano in .tools (shared, like the worktrees' .tools symlink)
    root = copy_of_work_tree(tmp_path_factory.mktemp("clone"))
    (root / ".tools").symlink_to(ROOT / ".tools")
    return root


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new shell: no venv activated, no project variables; python3.11 is a pyenv-like shim."""
    shims = tmp_path_factory.mktemp("shims")
    real = os.path.realpath(sys.executable)
    shim = shims / "python3.11"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(real)} "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    keep = ("HOME", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR", "UV_CACHE_DIR", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if "/.venv/" not in p]
    env["PATH"] = os.pathsep.join([str(shims), *path])
    return env


def run(
    command: str, cwd: Path, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def printed_query(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("Query it:")]
    assert len(lines) == 1, stdout
    return lines[0].removeprefix("Query it:").strip()


def venv_identity(root: Path) -> tuple[int, int]:
    cfg = (root / ".venv" / "pyvenv.cfg").stat()
    return (cfg.st_ino, cfg.st_mtime_ns)


def test_demo_twice_and_every_printed_command(project: Path, shell_env: dict[str, str]) -> None:
    first = run("bash scripts/demo.sh", project, shell_env)
    assert "First run: full load" in first.stdout
    assert re.search(r"^feedbacks\s+750\s", first.stdout, re.M), first.stdout
    # Only what the demo runs: the tap, the sandbox; no test or lint tools.
    venv_bin = project / ".venv" / "bin"
    assert (venv_bin / "usersnap-sandbox").exists()
    assert not [t for t in ("pytest", "ruff", "mypy") if (venv_bin / t).exists()]
    query = run(printed_query(first.stdout), project, shell_env)
    assert "5 rows" in query.stdout, query.stdout
    venv = venv_identity(project)

    second = run("bash scripts/demo.sh", project, shell_env)
    assert "Incremental run" in second.stdout
    assert re.search(r"^feedbacks\s+753\s+\+3\s", second.stdout, re.M), second.stdout
    assert venv_identity(project) == venv, "the second run recreated .venv"
    run(printed_query(second.stdout), project, shell_env)

    # The README's commands that need no real credentials, as printed.
    commands = readme_commands()
    for command in [c for c in commands if c.startswith("bash scripts/query.sh")]:
        run(command, project, shell_env)
    state_list = ".tools/meltano/bin/meltano state list"
    state_get = f".tools/meltano/bin/meltano state get {STATE_ID}"
    state_clear = f".tools/meltano/bin/meltano state clear --force {STATE_ID}"
    assert {state_list, state_get, state_clear} <= set(commands)
    assert STATE_ID in run(state_list, project, shell_env).stdout
    assert '"bookmarks"' in run(state_get, project, shell_env).stdout
    run(state_clear, project, shell_env)
    assert STATE_ID not in run(state_list, project, shell_env).stdout


def test_readme_commands_exist_as_printed() -> None:
    """Every command names a script or an executable of the project, never one off PATH."""
    commands = readme_commands()
    assert commands[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    for command in commands:
        words = shlex.split(command.split("|")[0].replace("[", "").replace("]", ""))
        while words and "=" in words[0]:  # VAR=value prefixes
            words.pop(0)
        if words[0] in ("cp", "git", "eval", "export"):
            continue
        if words[0] == "bash":
            assert (ROOT / words[1]).is_file(), command
            continue
        assert words[0].startswith((".venv/bin/", ".tools/")), command
        name = Path(words[0]).name
        if words[0].startswith(".venv/bin/"):
            installed = {"tap-usersnap", "usersnap-sandbox", "python", "pytest", "ruff", "mypy"}
            assert name in installed, command
        else:
            assert words[0] == ".tools/meltano/bin/meltano", command


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^bash scripts/test\.sh$", ci, re.M)
    workflow = (ROOT / ".github" / "workflows" / "test.yml").read_text(encoding="utf-8")
    assert "run: .ci/run" in workflow
