"""The "bare" floor for the benchmark: the same API reads as tap-usersnap, with nothing else.

A plain ``requests.Session``, the same HS256 JWT auth, strictly sequential:
``GET /projects``, then for every project all feedback pages (``limit=100``, following
``data.next.after`` while ``data.has_more``), its assignees and its metrics. Every record
is written to stdout as one ``json.dumps`` line, without Singer envelopes, schemas or
state. This is the CPU floor (what it costs to fetch, parse and re-serialise the records),
not the latency floor: it never overlaps requests.

    python benchmarks/bare_client.py --config config.json > /dev/null

The config is the tap's (``jwt_id``, ``jwt_secret``, ``api_url``, optional ``page_size``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as t

import jwt
import requests

TOKEN_LIFETIME_SECONDS = 300


class BareClient:
    """Sequential reader of every record the tap syncs."""

    def __init__(self, api_url: str, jwt_id: str, jwt_secret: str, page_size: int = 100) -> None:
        self.base = api_url.rstrip("/")
        self.jwt_id = jwt_id
        self.jwt_secret = jwt_secret
        self.page_size = page_size
        self.session = requests.Session()
        self._token = ""
        self._expires_at = 0.0

    def _auth_header(self) -> str:
        now = time.time()
        if now >= self._expires_at - 60:
            issued_at = int(now)
            self._token = jwt.encode(
                {"iat": issued_at, "exp": issued_at + TOKEN_LIFETIME_SECONDS},
                self.jwt_secret,
                algorithm="HS256",
                headers={"kid": self.jwt_id},
            )
            self._expires_at = issued_at + TOKEN_LIFETIME_SECONDS
        return f"Bearer {self._token}"

    def get(self, path: str, params: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        response = self.session.get(
            self.base + path,
            params=params,
            headers={"Authorization": self._auth_header()},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("status") is not True:
            raise RuntimeError(f"GET {path}: {body}")
        return t.cast("dict[str, t.Any]", body["data"])

    def records(self) -> t.Iterator[dict[str, t.Any]]:
        """Projects, then per project: its feedbacks, assignees and metrics."""
        projects = self.get("/projects")["projects"]
        for project in projects:
            yield project
        for project in projects:
            project_id, api_key = project["project_id"], project["api_key"]
            params: dict[str, t.Any] = {"limit": self.page_size}
            while True:
                data = self.get(f"/projects/{project_id}/feedbacks", params)
                yield from data["feedbacks"]
                if data.get("has_more") is not True:
                    break
                params = {"limit": self.page_size, "after": (data.get("next") or {})["after"]}
            for user in self.get(f"/projects/{api_key}/assignees")["users"]:
                user["project_id"] = project_id
                yield user
            for metric in self.get(f"/projects/{api_key}/metrics")["metrics"]:
                metric["project_id"] = project_id
                yield metric


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the tap's config.json")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    client = BareClient(
        config["api_url"],
        config["jwt_id"],
        config["jwt_secret"],
        int(config.get("page_size", 100)),
    )
    write = sys.stdout.write
    dumps = json.dumps
    for record in client.records():
        write(dumps(record))
        write("\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
