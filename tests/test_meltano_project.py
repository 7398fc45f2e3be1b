"""meltano.yml matches the tap, pins its loaders, and lets the environment override settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import typing as t
from pathlib import Path

import yaml

from tests.warehouse_helpers import ROOT, meltano

PROJECT = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


def plugin(kind: str, name: str) -> dict[str, t.Any]:
    return next(p for p in PROJECT["plugins"][kind] if p["name"] == name)


def tap_about() -> dict[str, t.Any]:
    tap = Path(sys.executable).with_name("tap-usersnap")
    out = subprocess.run(
        [str(tap), "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out)


def test_about_lists_every_setting() -> None:
    """meltano.yml and the Hub definition declare what the installed command reports."""
    about = tap_about()
    props = about["settings"]["properties"]
    declared = {s["name"]: s for s in plugin("extractors", "tap-usersnap")["settings"]}
    hub = next((ROOT / "plugin" / "extractors").glob("tap-usersnap--*.yml"))
    hub_definition = yaml.safe_load(hub.read_text(encoding="utf-8"))
    hub_settings = {s["name"]: s for s in hub_definition["settings"]}
    assert set(declared) == set(props) == set(hub_settings)
    for name, schema in props.items():
        setting = declared[name]
        assert bool(setting.get("sensitive")) == bool(schema.get("secret")), name
        assert bool(hub_settings[name].get("sensitive")) == bool(schema.get("secret")), name
        if schema.get("default") is not None:
            assert setting.get("value") == schema["default"], name
        # The Hub's `password` is meltano.yml's `string` + `sensitive: true`.
        hub_kind = hub_settings[name]["kind"]
        assert setting["kind"] == ("string" if hub_kind == "password" else hub_kind), name
    assert hub_settings["jwt_secret"] == {**hub_settings["jwt_secret"], "kind": "password"}
    required = set(about["settings"].get("required", []))
    groups = plugin("extractors", "tap-usersnap")["settings_group_validation"]
    assert required == set(groups[0]) == {"jwt_id", "jwt_secret"}
    assert set(plugin("extractors", "tap-usersnap")["capabilities"]) == set(about["capabilities"])


def test_hub_definition_and_readme_settings_are_generated_from_about() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/generate_from_about.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_release_version_is_in_the_changelog() -> None:
    """The release step: one version in pyproject, the CHANGELOG and `--about`."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
    assert "## [Unreleased]" in changelog
    assert tap_about()["version"] == version


def test_loaders_are_pinned() -> None:
    for loader in PROJECT["plugins"]["loaders"]:
        for requirement in loader["pip_url"].split():
            if requirement == "-e" or requirement.startswith("./"):
                continue  # a package of this repository (editable: a change needs no install)
            assert "==" in requirement, f"{loader['name']}: {requirement} is not pinned"
    duck = plugin("loaders", "target-duckdb")["pip_url"]
    version = re.search(r"\bduckdb==(\d+)\.(\d+)", duck)
    assert version, duck
    # target-duckdb 0.8.0 + duckdb >= 1.3 drops the first row of every batch.
    assert (int(version[1]), int(version[2])) < (1, 3)
    assert plugin("loaders", "target-postgres")["config"]["load_method"] == "upsert"


def test_environment_variables_override_settings(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "TAP_USERSNAP_API_URL": "http://127.0.0.1:1/v0.1",
        "TAP_USERSNAP_PROJECT_IDS": '["p1", "p2"]',
        "TAP_USERSNAP_PAGE_SIZE": "25",
        "TARGET_DUCKDB_FILEPATH": str(tmp_path / "x.duckdb"),
    }
    tap = json.loads(
        meltano(["--environment=sandbox", "config", "print", "tap-usersnap"], env).stdout
    )
    assert tap["api_url"] == "http://127.0.0.1:1/v0.1"
    assert tap["project_ids"] == ["p1", "p2"]
    assert tap["page_size"] == 25
    assert tap["jwt_id"] == "sandbox-jwt-id"  # from the sandbox environment
    target = json.loads(meltano(["config", "print", "target-duckdb"], env).stdout)
    assert target["filepath"] == str(tmp_path / "x.duckdb")
    assert target["default_target_schema"] == "usersnap"
