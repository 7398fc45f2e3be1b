#!/usr/bin/env bash
# Release x.y.z: the version in pyproject.toml and uv.lock, a commit and the tag vx.y.z.
#   1. In CHANGELOG.md, move the [Unreleased] entries under "## [x.y.z] - YYYY-MM-DD"; commit.
#   2. bash scripts/release.sh x.y.z
#   3. git push --follow-tags
set -euo pipefail
# shellcheck source=scripts/_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

VERSION="${1:-}"
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "usage: bash scripts/release.sh x.y.z"
cd "$PROJECT_ROOT"
[ -z "$(git status --porcelain --untracked-files=no)" ] || die "commit or stash your changes first"
grep -Eq "^## \[$VERSION\] - [0-9]{4}-[0-9]{2}-[0-9]{2}$" CHANGELOG.md ||
    die "CHANGELOG.md has no heading '## [$VERSION] - YYYY-MM-DD' (move the [Unreleased] entries there)"
git rev-parse -q --verify "refs/tags/v$VERSION" >/dev/null && die "tag v$VERSION exists"

sed -i.bak -E "s/^version = \"[^\"]+\"/version = \"$VERSION\"/" pyproject.toml && rm pyproject.toml.bak
ensure_uv
uv lock --quiet
sync_project --all-groups
.venv/bin/pytest -q -p no:cacheprovider tests/test_meltano_project.py
git commit --quiet -m "Release $VERSION" pyproject.toml uv.lock
git tag -a "v$VERSION" -m "v$VERSION"
log "tagged v$VERSION; publish with: git push --follow-tags"
