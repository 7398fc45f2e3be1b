"""The sandbox's in-memory, thread-safe store: projects, feedbacks, their changes and listings."""

from __future__ import annotations

import gc
import json
import threading
from bisect import bisect_left, insort
from random import Random
from typing import TYPE_CHECKING, Any

from tap_usersnap.sandbox.errors import ApiError, validation_error
from tap_usersnap.sandbox.filters import parse_filter
from tap_usersnap.sandbox.generate import (
    EDIT_TEXTS,
    FIXED_ANCHOR,
    LABELS,
    PRIORITIES,
    RATING_RANGES,
    STATUSES,
    USERS,
    Project,
    Row,
    generate_rows,
    pick,
    render_feedback,
    seeded_uuid,
)
from tap_usersnap.sandbox.paging import page_bounds, page_data
from tap_usersnap.sandbox.timestamps import MICRO_VARIANTS, US, parse_ts, real_now_us

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Filter results kept for reuse, across projects and filter bodies.
FILTER_CACHE_SIZE = 64


class SandboxStore:
    """Thread-safe store of projects and feedbacks with keyset pagination.

    Lists are ordered by (updated_at, feedback_id) descending. A cursor is located by the sort key
    its record had when it was last served, so records modified between two pages neither restart
    nor skip the listing.
    """

    def __init__(
        self, projects: int = 3, feedbacks_per_project: int | Sequence[int] = 250, seed: int = 7
    ) -> None:
        if isinstance(feedbacks_per_project, int):
            counts = [feedbacks_per_project] * projects
        else:
            counts = list(feedbacks_per_project)
            if len(counts) != projects:
                raise ValueError("feedbacks_per_project needs one count per project")
        self.seed = seed
        self.lock = threading.RLock()
        self._filter_cache: dict[tuple[str, str], tuple[Any, list[tuple[int, int, str]]]] = {}
        now = real_now_us()
        self.anchor_us = min(parse_ts(FIXED_ANCHOR.isoformat()), now - 86_400 * US)
        rng = Random(f"usersnap-sandbox:{seed}")
        company_id = seeded_uuid(rng)
        self.labels = [
            {"company_label_id": seeded_uuid(rng), "identifier": i, "name": n, "color": c}
            for i, n, c in LABELS
        ]
        self.users = [
            {
                "user_id": seeded_uuid(rng),
                "first_name": f,
                "last_name": last,
                "gravatar_url": f"https://www.gravatar.com/avatar/{rng.getrandbits(128):032x}?d=mp",
            }
            for f, last in USERS
        ]
        self._projects: dict[str, Project] = {}
        self._by_key: dict[str, Project] = {}
        self._last_us = 0
        self._change_rng = Random(f"usersnap-sandbox-changes:{seed}")
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of long-lived objects: collections would only slow this down
        try:
            for index, count in enumerate(counts):
                project = Project(index, rng, company_id, self.users, self.anchor_us)
                generate_rows(
                    project, count, Random(f"usersnap-sandbox:{seed}:{index}"), self.anchor_us
                )
                if project.keys:
                    self._last_us = max(self._last_us, project.keys[-1][0])
                self._projects[project.project_id] = project
                self._by_key[project.api_key] = project
        finally:
            if gc_was_enabled:
                gc.enable()
                if sum(counts) >= 50_000:
                    # One full pass now moves the rows to the oldest generation; otherwise the
                    # first requests of a big run pay for several passes over them.
                    gc.collect()

    def _render(self, p: Project, row: Row) -> dict[str, Any]:
        """Build the full API record of a row (tests patch this to bend records)."""
        return render_feedback(p, row, self.labels)

    # ----------------------------------------------------------------- lookups

    def _project(self, project_id: str) -> Project:
        """Look a project up by id, failing like the API does."""
        p = self._projects.get(project_id)
        if p is None:
            raise ApiError(400, "SITE_NOT_FOUND", "Site does not exist", {"site_id": project_id})
        return p

    def _project_by_key(self, api_key: str) -> Project:
        """Look a project up by api_key (submit, assignees, metrics use the api_key)."""
        p = self._by_key.get(api_key)
        if p is None:
            raise ApiError(400, "SITE_NOT_FOUND", "Site does not exist", {"site_id": api_key})
        return p

    def check_project(self, project_id: str | None = None, api_key: str | None = None) -> None:
        """Raise SITE_NOT_FOUND unless the project (by id, or by api_key) exists."""
        with self.lock:
            if api_key is not None:
                self._project_by_key(api_key)
            if project_id is not None:
                self._project(project_id)

    def _now(self) -> int:
        """A fresh updated_at: never behind the wall clock, strictly after every existing one."""
        self._last_us = max(real_now_us(), self._last_us + 1)
        return self._last_us

    def project_ids(self) -> list[str]:
        """Project ids in creation order."""
        with self.lock:
            return list(self._projects)

    def projects(self) -> list[dict[str, Any]]:
        """Projects exactly as GET /projects returns them."""
        with self.lock:
            return [p.metadata() for p in self._projects.values()]

    def count(self, project_id: str) -> int:
        """Number of feedbacks in a project."""
        with self.lock:
            return len(self._project(project_id).rows)

    def feedbacks(self, project_id: str) -> list[dict[str, Any]]:
        """All current records, newest first (test oracle; does not count as serving)."""
        with self.lock:
            p = self._project(project_id)
            return [self._render(p, p.rows[fid]) for _, fid in reversed(p.keys)]

    def feedback(self, project_id: str, feedback_id: str) -> dict[str, Any]:
        """One current record (test oracle)."""
        with self.lock:
            p = self._project(project_id)
            return self._render(p, p.rows[feedback_id])

    def assignees(self, api_key: str) -> list[dict[str, Any]]:
        """Users assignable in the project named by api_key."""
        with self.lock:
            return [dict(u) for u in self._project_by_key(api_key).assignees]

    def metrics(self, api_key: str) -> list[dict[str, str]]:
        """Metrics of the project named by api_key."""
        with self.lock:
            return self._project_by_key(api_key).metrics()

    # ----------------------------------------------------------------- mutation

    def _remember(self, p: Project, row: Row) -> None:
        """Keep the key a record had when last served, before its first change since then."""
        if row.fid not in p.prior:
            p.prior[row.fid] = row.snapshot()

    def _touch(self, p: Project, row: Row) -> None:
        """Store a changed row on top of the keyset index with a fresh updated_at."""
        old = p.rows[row.fid]
        del p.keys[bisect_left(p.keys, (old.updated_us, old.fid))]
        now = self._now()
        p.rows[row.fid] = row._replace(updated_us=now, ufmt=MICRO_VARIANTS[now % 2])
        insort(p.keys, (now, row.fid))

    def change_feedbacks(
        self,
        project_id: str,
        k: int = 0,
        rng_seed: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Modify k random distinct feedbacks (or exactly `ids`), bumping updated_at to now.

        Each gets a fresh updated_at, in order, later than every existing one.
        """
        with self.lock:
            p = self._project(project_id)
            rng = self._change_rng if rng_seed is None else Random(rng_seed)
            if ids is None:
                picks = rng.sample(range(len(p.keys)), min(k, len(p.keys)))
                chosen = [p.keys[i][1] for i in picks]
            else:
                chosen = list(ids)
                missing = [fid for fid in chosen if fid not in p.rows]
                if missing:
                    raise KeyError(missing[0])
            for fid in chosen:
                row = p.rows[fid]
                self._remember(p, row)
                self._touch(
                    p,
                    row._replace(
                        status=STATUSES[(STATUSES.index(row.status) + 1) % len(STATUSES)],
                        priority=pick(rng, PRIORITIES),
                        labels=() if row.labels else (int(rng.random() * len(LABELS)),),
                        comment=f"{pick(rng, EDIT_TEXTS)} #{rng.getrandbits(16)}",
                    ),
                )
            return chosen

    def _new_row(self, p: Project, rng: Random, **fields: Any) -> Row:
        """Append a fresh open row with created_at = updated_at = now."""
        now = self._now()
        fmt = MICRO_VARIANTS[now % 2]
        values: dict[str, Any] = {
            "email": None,
            "assignee": p.default_assignee_id,
            "priority": None,
            "rating": None,
            **fields,
        }
        row = Row(
            fid=seeded_uuid(rng),
            number=p.next_number,
            created_us=now,
            updated_us=now,
            cfmt=fmt,
            ufmt=fmt,
            status="open",
            labels=(),
            likes=0,
            **values,
        )
        p.next_number += 1
        p.rows[row.fid] = row
        insort(p.keys, (row.updated_us, row.fid))
        return row

    def add_feedbacks(self, project_id: str, n: int) -> list[str]:
        """Create n new feedbacks, each newer than everything before it."""
        with self.lock:
            p = self._project(project_id)
            return [
                self._new_row(p, self._change_rng, email=f"new{p.next_number}@example.com").fid
                for _ in range(n)
            ]

    def delete_feedback(self, project_id: str, feedback_id: str) -> None:
        """Delete a feedback; cursors naming it then fail with FEEDBACK_NOT_FOUND."""
        with self.lock:
            p = self._project(project_id)
            row = p.rows.pop(feedback_id)
            del p.keys[bisect_left(p.keys, (row.updated_us, row.fid))]
            p.prior.pop(feedback_id, None)

    def submit(self, api_key: str, body: Any) -> str:
        """Create a feedback from a submit payload (POST /projects/{api_key}/feedbacks)."""
        if not isinstance(body, dict):
            raise validation_error("body", "a JSON object is required")
        for field in ("visitor", "comment", "api_key"):
            if body.get(field) is not None and not isinstance(body[field], str):
                raise validation_error(field, "must be a string")
        client = body.get("client")
        if client is not None and not isinstance(client, dict):
            raise validation_error("client", "must be an object")
        if not isinstance(body.get("attachments", []), list):
            raise validation_error("attachments", "must be a list")
        with self.lock:
            p = self._project_by_key(api_key)
            rating = body.get("rating")
            if rating is not None:
                lo, hi = RATING_RANGES[p.rating_kind]
                if isinstance(rating, bool) or not isinstance(rating, int):
                    raise validation_error("rating", "must be an integer")
                if not (rating in (-1, 1) if p.rating_kind == "thumb" else lo <= rating <= hi):
                    raise validation_error("rating", f"out of range for {p.rating_kind}")
            assignee = p.default_assignee_id
            if "assignee" in body:
                assignee = self._resolve_assignee(p, body["assignee"])
            submitted = {"comment": body.get("comment"), "client": client}
            row = self._new_row(
                p,
                self._change_rng,
                email=body.get("visitor"),
                rating=rating,
                assignee=assignee,
                submitted=submitted,
            )
            return row.fid

    @staticmethod
    def _resolve_assignee(p: Project, value: Any) -> str | None:
        """Accept a user id, or null for unassigned; emails are not resolvable here."""
        if value is None:
            return None
        for user in p.assignees:
            if value == user["user_id"]:
                return str(user["user_id"])
        raise validation_error("assignee", "unknown user")

    # ----------------------------------------------------------------- listing

    def _serve(self, p: Project, rows: list[Row]) -> list[dict[str, Any]]:
        """Render a page and note that these records were served in their current state."""
        for row in rows:
            p.prior.pop(row.fid, None)
        return [self._render(p, row) for row in rows]

    def _cursor_snapshot(self, p: Project, fid: str) -> tuple[int, int, int, int]:
        """Sort values of a cursor record as last served; unknown ids fail like the API."""
        row = p.rows.get(fid)
        if row is None:
            raise ApiError(
                400, "FEEDBACK_NOT_FOUND", "Feedback does not exist", {"feedback_id": fid}
            )
        return p.prior.get(fid) or row.snapshot()

    def list_feedbacks(
        self, project_id: str, limit: int = 10, after: str | None = None, before: str | None = None
    ) -> dict[str, Any]:
        """GET /projects/{id}/feedbacks: one keyset page, O(log n + limit)."""
        with self.lock:
            p = self._project(project_id)
            fid = after or before
            anchor = (self._cursor_snapshot(p, fid)[0], fid) if fid else None
            lo, hi, has_more = page_bounds(p.keys, anchor, bool(before), limit, desc=True)
            rows = [p.rows[row_id] for _, row_id in reversed(p.keys[lo:hi])]
            return page_data(self._serve(p, rows), limit, has_more)

    def filter_feedbacks(
        self,
        project_id: str,
        body: Any,
        limit: int = 10,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """POST /projects/{id}/feedbacks/filter: filter and order in a linear scan, then page."""
        with self.lock:
            p = self._project(project_id)
            match, key_of, desc = parse_filter(body, p.rating_kind)
            keys = self._filtered_keys(p, project_id, body, match, key_of)
            fid = after or before
            anchor = key_of(self._cursor_snapshot(p, fid), fid) if fid else None
            lo, hi, has_more = page_bounds(keys, anchor, bool(before), limit, desc=desc)
            window = keys[lo:hi]
            if desc:
                window.reverse()
            return page_data(self._serve(p, [p.rows[k[-1]] for k in window]), limit, has_more)

    def _filtered_keys(
        self,
        p: Project,
        project_id: str,
        body: Any,
        match: Callable[[Row], bool],
        key_of: Callable[[tuple[int, int, int, int], str], tuple[int, int, str]],
    ) -> list[tuple[int, int, str]]:
        """The sorted keys a filter selects, reused while the project is unchanged.

        Every change moves the top of the keyset index (a fresh updated_at) or its length,
        so they name the project's version. A real API answers from an index; a scan and
        sort a page would make the sandbox, not the client, what a benchmark measures.
        """
        version = (len(p.keys), p.keys[-1] if p.keys else None)
        cache_key = (project_id, json.dumps(body, sort_keys=True, default=str))
        cached = self._filter_cache.get(cache_key)
        if cached is not None and cached[0] == version:
            return cached[1]
        keys = sorted(key_of(r.snapshot(), r.fid) for r in p.rows.values() if match(r))
        if len(self._filter_cache) >= FILTER_CACHE_SIZE:
            self._filter_cache.clear()
        self._filter_cache[cache_key] = (version, keys)
        return keys

    def filter_count(self, project_id: str, body: Any) -> int:
        """POST /projects/{id}/feedbacks/filter/count."""
        with self.lock:
            p = self._project(project_id)
            match, _, _ = parse_filter(body, p.rating_kind)
            return sum(1 for r in p.rows.values() if match(r))
