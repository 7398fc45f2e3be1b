"""In-memory Usersnap data store with deterministic, deliberately awkward sample data.

Feedback rows keep only the fields that drive ordering, filtering and mutation; the rest of a
record is re-derived from a per-record seed when it is served. That keeps 600,000 records cheap
to generate and hold while every response stays deterministic.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FIXED_ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_SPAN_US = 2 * 365 * 86_400 * US  # sample updated_at values spread over two years
_NO_RATING = -(10**9)  # sorts unrated feedback below every rating

# Timestamp variants: (fraction digits, suffix). The real API is not consistent either.
_TS_VARIANTS: tuple[tuple[int, str], ...] = (
    (0, "Z"),
    (1, "Z"),
    (3, "Z"),
    (6, "Z"),
    (6, "+00:00"),
    (0, "+00:00"),
)
_TS_PRECISION_US = tuple(10 ** (6 - digits) for digits, _ in _TS_VARIANTS)
_TS_WEIGHTS = (0, 1, 2, 3, 3, 3, 3, 3, 4, 5)  # mostly microseconds, all variants present
_MICRO_VARIANTS = (3, 4)  # used for "now": they keep every microsecond

STATUSES = ("open", "in_progress", "done")
PRIORITIES = ("low", "medium", "high", "urgent", None)
RATING_KINDS = ("nps", "one_to_five", "thumb")
_RATING_LABELS = {"nps": "NPS", "one_to_five": "Rating", "thumb": "Thumbs"}
_RATING_RANGES = {"nps": (0, 10), "one_to_five": (1, 5), "thumb": (-1, 1)}

_SAMPLES: dict[str, Any] = json.loads(
    Path(__file__).with_name("samples.json").read_text(encoding="utf-8")
)  # unicode-heavy sample text lives in JSON, away from linters' confusable-character checks
PROJECT_NAMES: tuple[str, ...] = tuple(_SAMPLES["project_names"])
_USERS: tuple[tuple[str, str | None], ...] = tuple((f, n) for f, n in _SAMPLES["users"])
_LABELS: tuple[tuple[str, str, str], ...] = tuple((i, n, c) for i, n, c in _SAMPLES["labels"])
_TEXTS: tuple[str, ...] = tuple(_SAMPLES["texts"])
_EDIT_TEXTS: tuple[str, ...] = tuple(_SAMPLES["edit_texts"])
_EMAIL_NAMES: tuple[str, ...] = tuple(_SAMPLES["email_names"])
_EMAIL_DOMAINS: tuple[str, ...] = tuple(_SAMPLES["email_domains"])
_BROWSERS = (
    ("Firefox 103 (macOS Catalina)", "Macintosh", "Firefox", "103.0"),
    ("Chrome 120 (Windows 10)", "Windows", "Chrome", "120.0.6099.109"),
    ("Mobile Safari 17 (iOS 17.1)", "iOS", "Mobile Safari", "17.1"),
    ("Edge 119 (Windows 11)", "Windows", "Edge", "119.0"),
    ("Samsung Internet 23 (Android 13)", "Android", "Samsung Internet", "23.0"),
)
_PLACES: tuple[tuple[str, str], ...] = tuple((c, n) for c, n in _SAMPLES["places"])
_URLS: tuple[str, ...] = tuple(_SAMPLES["urls"])
_SCREENS = ((1728, 1117), (1920, 1080), (390, 844), (2560, 1440), (1366, 768))
_SENTIMENTS = ("positive", "neutral", "negative", None)
_METRICS = (
    ("Client", "informations about the client.", "CLIENT"),
    (
        "Comment",
        "A comment field where users describe what they like or dislike on the page.",
        "TEXT",
    ),
    ("Console log", "Data captured by the console recorder", "CONSOLE_LOG"),
    ("Custom Data", "Custom JSON data provided by customers in the widget.", "JSON"),
    ("Geo", "Geolocation (Country, City) of the client.", "GEO"),
    ("Screenshot", "A screenshot with annotations.", "SCREENSHOT"),
    ("State", "The state of this Feedback", "ENUM"),
    ("Text", "A text field with optional calculated sentiment.", "TEXT"),
    ("Visitor", "A visitor field for the email address", "VISITOR"),
)
_RATING_METRICS = {
    "nps": ("NPS", "Net promoter score from 0 to 10.", "NPS"),
    "one_to_five": ("Rating", "A rating from one to five stars.", "RATING"),
    "thumb": ("Thumbs", "Thumbs up or down.", "THUMB"),
}

FILTER_TYPES = frozenset(
    ("assignee", "created_at", "email", "feedback_number", "nps", "one_to_five", "state", "thumb")
)
OPERATORS = frozenset(("eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte", "like", "ilike"))
ORDER_TYPES = frozenset(("created_at", "rating", "updated_at", "likes"))


class ApiError(Exception):
    """An API error the server renders as the Usersnap error envelope."""

    def __init__(
        self, status: int, errortype: str, msg: str, errordata: dict[str, Any] | None = None
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.errortype = errortype
        self.msg = msg
        self.errordata = errordata if errordata is not None else {}

    def envelope(self) -> dict[str, Any]:
        """Return the JSON body the API sends for this error."""
        return {
            "status": False,
            "msg": self.msg,
            "errortype": self.errortype,
            "errordata": self.errordata,
        }


def validation_error(field: str, msg: str) -> ApiError:
    """Build the 400 VALIDATION_ERROR the API returns for a bad parameter."""
    return ApiError(400, "VALIDATION_ERROR", f"Invalid value for {field}: {msg}", {"field": field})


def real_now_us() -> int:
    """Wall clock UTC now in epoch microseconds."""
    return time.time_ns() // 1000


def format_ts(us: int, variant: int) -> str:
    """Render epoch microseconds in one of the API's timestamp variants (always UTC)."""
    secs, frac = divmod(us, US)
    day, rem = divmod(secs, 86_400)
    date = _DATES.get(day)
    if date is None:
        date = _DATES[day] = (_EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%dT")
    hours, rem = divmod(rem, 3_600)
    minutes, seconds = divmod(rem, 60)
    digits, suffix = _TS_VARIANTS[variant]
    base = f"{date}{hours:02d}:{minutes:02d}:{seconds:02d}"
    if digits == 0:
        return base + suffix
    return f"{base}.{frac // 10 ** (6 - digits):0{digits}d}{suffix}"


_DATES: dict[int, str] = {}  # day number -> "YYYY-MM-DDT"; rendering is hot


def parse_ts(value: str) -> int:
    """Parse an ISO 8601 timestamp or date to epoch microseconds (naive means UTC)."""
    text = value.strip()
    if text[-1:] in ("Z", "z"):  # fromisoformat accepts "Z" only from Python 3.11 on
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _uuid(rng: Random) -> str:
    """A version-4 UUID string drawn from a seeded generator (uuid4() is not reproducible)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _pick(rng: Random, seq: Sequence[Any]) -> Any:
    """rng.choice without its overhead; generation calls this millions of times."""
    return seq[int(rng.random() * len(seq))]


_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _hex_uuid(a: int, b: int) -> str:
    """A UUID-shaped string from two 64-bit words."""
    h = f"{a:016x}{b:016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


class _Bits:
    """Mixed-radix draws from 128 hashed bits: seeding random.Random per record is too slow."""

    __slots__ = ("a", "b", "v")

    def __init__(self, seed: int) -> None:
        self.a = _mix(seed)
        self.b = _mix(self.a)
        self.v = self.a << 64 | self.b

    def below(self, m: int) -> int:
        """A draw in range(m)."""
        self.v, r = divmod(self.v, m)
        return r

    def pick(self, seq: Sequence[Any]) -> Any:
        """One element of seq."""
        return seq[self.below(len(seq))]

    def chance(self, percent: int) -> bool:
        """True with the given probability in percent."""
        return self.below(100) < percent


class _Row(NamedTuple):
    """Per-feedback state; everything else in a record is derived on render.

    Immutable: a change stores a new row (see `_touch`), so the keyset index and the row
    can only move together.
    """

    fid: str
    number: int
    created_us: int
    updated_us: int
    cfmt: int  # timestamp variants, see _TS_VARIANTS
    ufmt: int
    status: str
    priority: str | None
    assignee: str | None
    email: str | None
    rating: int | None
    labels: tuple[int, ...]  # indexes into the company labels
    likes: int
    comment: str | None = None  # set once the text was edited
    submitted: dict[str, Any] | None = None  # the submit payload, for submitted rows

    def snapshot(self) -> tuple[int, int, int, int]:
        """The values every sort order reads, as they are right now."""
        rating = _NO_RATING if self.rating is None else self.rating
        return (self.updated_us, self.created_us, rating, self.likes)


class _Project:
    """One project: its metadata plus feedback rows and the sorted keyset index."""

    def __init__(
        self, index: int, rng: Random, company_id: str, users: list[dict[str, Any]], anchor_us: int
    ) -> None:
        self.index = index
        self.project_id = _uuid(rng)
        self.api_key = _uuid(rng)
        self.company_id = company_id
        self.space_id = _uuid(rng)
        self.owner_id = users[0]["user_id"]
        self.assignees = [u for i, u in enumerate(users) if (i + index) % 4 != 3]
        self.default_assignee_id = None if index % 2 == 0 else self.assignees[-1]["user_id"]
        base_name = PROJECT_NAMES[index % len(PROJECT_NAMES)]
        self.name = base_name if index < len(PROJECT_NAMES) else f"{base_name} #{index + 1}"
        self.created_at = format_ts(anchor_us - _SPAN_US - (index + 1) * 86_400 * US - 453_839, 3)
        self.updated_at = format_ts(anchor_us - (index + 1) * 3_600 * US - 261_195, 3)
        self.archived_at = format_ts(anchor_us - 7 * 86_400 * US, 3) if index % 5 == 4 else None
        self.is_live = index % 4 != 2
        self.rating_kind = RATING_KINDS[index % len(RATING_KINDS)]
        self.widget_ids = (_uuid(rng), _uuid(rng))
        self.content_seed = rng.getrandbits(40)
        self.rows: dict[str, _Row] = {}
        self.keys: list[tuple[int, str]] = []  # (updated_us, feedback_id) ascending
        self.prior: dict[str, tuple[int, int, int, int]] = {}  # served, then changed
        self.next_number = 1

    def metadata(self) -> dict[str, Any]:
        """The project as GET /projects returns it."""
        return {
            "project_id": self.project_id,
            "api_key": self.api_key,
            "company_id": self.company_id,
            "space_id": self.space_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "archived_at": self.archived_at,
            "owner_id": self.owner_id,
            "default_assignee_id": self.default_assignee_id,
            "name": self.name,
            "is_live": self.is_live,
            "feedback_count": len(self.rows),
            "open_feedback_count": sum(1 for r in self.rows.values() if r.status == "open"),
        }

    def metrics(self) -> list[dict[str, str]]:
        """Metrics vary a little per project, like real widget configurations."""
        chosen = [m for i, m in enumerate(_METRICS) if not (i == 2 and self.index % 2 == 1)]
        chosen.insert(1, _RATING_METRICS[self.rating_kind])
        return [{"name": n, "help_text": h, "metric_type": t} for n, h, t in chosen]


def _tie_groups(n: int, rng: Random) -> list[tuple[int, int]]:
    """Groups of 3-7 desc positions sharing one updated_at, straddling page boundaries.

    Every multiple of 50 (a boundary for page sizes 10, 25, 50 and 100) gets a group; some other
    multiples of 10 and 25 get one too.
    """
    groups: list[tuple[int, int]] = []
    last_end = -1
    for b in range(10, n, 5):
        if b % 10 and b % 25:
            continue
        mandatory = b % 50 == 0
        if not mandatory and (b % 50 == 40 or rng.random() >= 0.3):
            continue
        size = 3 + int(rng.random() * 5)
        start = b - 1 - int(rng.random() * (size - 1))
        if start < last_end:
            continue
        end = min(start + size, n)
        if end - start >= 2:
            groups.append((start, end))
            last_end = end
    return groups


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
        now = real_now_us()
        self.anchor_us = min(parse_ts(_FIXED_ANCHOR.isoformat()), now - 86_400 * US)
        rng = Random(f"usersnap-sandbox:{seed}")
        company_id = _uuid(rng)
        self.labels = [
            {"company_label_id": _uuid(rng), "identifier": i, "name": n, "color": c}
            for i, n, c in _LABELS
        ]
        self.users = [
            {
                "user_id": _uuid(rng),
                "first_name": f,
                "last_name": last,
                "gravatar_url": f"https://www.gravatar.com/avatar/{rng.getrandbits(128):032x}?d=mp",
            }
            for f, last in _USERS
        ]
        self._projects: dict[str, _Project] = {}
        self._by_key: dict[str, _Project] = {}
        self._last_us = 0
        self._change_rng = Random(f"usersnap-sandbox-changes:{seed}")
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of long-lived objects: collections would only slow this down
        try:
            for index, count in enumerate(counts):
                project = _Project(index, rng, company_id, self.users, self.anchor_us)
                self._generate(project, count, Random(f"usersnap-sandbox:{seed}:{index}"))
                self._projects[project.project_id] = project
                self._by_key[project.api_key] = project
        finally:
            if gc_was_enabled:
                gc.enable()
                if sum(counts) >= 50_000:
                    # One full pass now moves the rows to the oldest generation; otherwise the
                    # first requests of a big run pay for several passes over them.
                    gc.collect()

    # ----------------------------------------------------------------- generation

    def _generate(self, p: _Project, n: int, rng: Random) -> None:
        """Create n rows: updated_at walks back from the anchor, ties are planted on purpose."""
        tied = bytearray(n)  # 1 where position i shares updated_at with position i + 1
        for start, end in _tie_groups(n, rng):
            tied[start : end - 1] = b"\x01" * (end - 1 - start)
        mean_gap = max(2, _SPAN_US // US // max(n, 1))
        rnd = rng.random
        sec = self.anchor_us // US - int(rnd() * 3_600)
        assignees = [None, *(u["user_id"] for u in p.assignees)]
        lo, hi = _RATING_RANGES[p.rating_kind]
        specs: list[list[Any]] = []  # _Row fields in order, number still 0
        group: list[list[Any]] = []
        for i in range(n):
            fid = _uuid(rng)
            updated = sec * US + int(rnd() * US)
            ufmt = _TS_WEIGHTS[int(rnd() * 10)]
            cfmt = _TS_WEIGHTS[int(rnd() * 10)]
            x = rnd()
            status = "open" if x < 0.45 else ("in_progress" if x < 0.6 else "done")
            priority = PRIORITIES[int(rnd() * 5)]
            assignee = assignees[int(rnd() * len(assignees))]
            email = None
            if rnd() < 0.85:
                email = f"{_pick(rng, _EMAIL_NAMES)}{i}@{_pick(rng, _EMAIL_DOMAINS)}"
            rating = None
            if p.rating_kind == "thumb":
                rating = (-1, 1, 1, None)[int(rnd() * 4)]
            elif rnd() < 0.8:
                rating = lo + int(rnd() * (hi - lo + 1))
            x = rnd()
            labels: tuple[int, ...] = ()
            if x < 0.25:
                labels = (int(x * 20),)
            elif x < 0.32:
                labels = (0, 2)
            likes = int(rnd() * rnd() * 50)
            spec = [
                fid,
                0,
                0,
                updated,
                cfmt,
                ufmt,
                status,
                priority,
                assignee,
                email,
                rating,
                labels,
                likes,
            ]
            group.append(spec)
            specs.append(spec)
            if not tied[i]:
                self._settle(group, rnd)
                group = []
                sec -= 1 + int(rnd() * 2 * mean_gap)
        specs.sort(key=lambda f: (f[2], f[0]))  # feedback_number follows created_at
        for number, spec in enumerate(specs, start=1):
            spec[1] = number
            p.rows[spec[0]] = _Row(*spec)
        p.next_number = n + 1
        p.keys = sorted((spec[3], spec[0]) for spec in specs)
        if specs:
            self._last_us = max(self._last_us, p.keys[-1][0])

    @staticmethod
    def _settle(group: list[list[Any]], rnd: Callable[[], float]) -> None:
        """Give a tie group one instant every member's format can show; derive created_at."""
        step = max(_TS_PRECISION_US[spec[5]] for spec in group)
        instant = group[0][3] // step * step
        for spec in group:
            spec[3] = instant
            created = instant if rnd() < 0.35 else instant - int(rnd() * 90 * 86_400 * US)
            cstep = _TS_PRECISION_US[spec[4]]
            spec[2] = created // cstep * cstep

    # ----------------------------------------------------------------- rendering

    def _render(self, p: _Project, row: _Row) -> dict[str, Any]:
        """Build the full API record: static parts from the per-record seed, then row state."""
        bits = _Bits(p.content_seed * 1_000_003 + row.number)
        sub = row.submitted
        text: str | None
        client: dict[str, Any] | None
        if sub is not None:
            text = sub.get("comment")
            client = _submitted_client(sub.get("client") or {})
        else:
            text = None if bits.chance(5) else bits.pick(_TEXTS)
            client = _client(bits)
        if row.comment is not None:
            text = row.comment
        inputs: list[dict[str, Any]] = [
            {
                "order": 0,
                "label": "Comment",
                "boolean_value": None,
                "text_value": text,
                "value": text,
            },
        ]
        if row.rating is not None:
            inputs.append(
                {
                    "order": len(inputs),
                    "label": _RATING_LABELS[p.rating_kind],
                    "boolean_value": None,
                    "text_value": None,
                    "value": str(row.rating),
                }
            )
        if bits.chance(30):
            inputs.append(
                {
                    "order": len(inputs),
                    "label": "Contact me \u2709\ufe0f",
                    "boolean_value": bits.chance(50),
                    "text_value": None,
                    "value": None,
                }
            )
        screenshot = None
        if sub is None and bits.chance(60):
            screenshot = {
                "annotated_image_url": (
                    f"https://resources.usersnap.com/company/{p.company_id}/datapoint_screenshot/"
                    f"{_hex_uuid(bits.a, bits.b)}.png?etag={bits.a ^ bits.b:016x}=="
                ),
                "comments": [
                    {"label": str(i + 1), "comment": bits.pick(_TEXTS)}
                    for i in range(bits.below(4) * bits.below(2))
                ],
            }
        recording = None
        if sub is None and bits.chance(5):
            recording = {
                "file_resource_url": (
                    f"https://resources.usersnap.com/rec/{_hex_uuid(bits.b, bits.a)}.webm"
                ),
                "mime_type": "video/webm",
            }
        return {
            "feedback_id": row.fid,
            "feedback_number": row.number,
            "public_link": f"https://app.usersnap.com/l/feedback/{row.fid}",
            "project_id": p.project_id,
            "created_at": format_ts(row.created_us, row.cfmt),
            "updated_at": format_ts(row.updated_us, row.ufmt),
            "status_type": row.status,
            "priority": row.priority,
            "assignee_id": row.assignee,
            "is_demo": row.number <= 2,
            "email": row.email,
            "client": client,
            "custom_data": None if sub is not None else _custom_data(bits, row.number),
            "screenshot": screenshot,
            "screen_recording": recording,
            "ordered_inputs": inputs,
            "labels": [dict(self.labels[i]) for i in row.labels],
            "sentiment": bits.pick(_SENTIMENTS),
            "source_widget_id": None if sub is not None else p.widget_ids[row.number % 2],
        }

    # ----------------------------------------------------------------- lookups

    def _project(self, project_id: str) -> _Project:
        """Look a project up by id, failing like the API does."""
        p = self._projects.get(project_id)
        if p is None:
            raise ApiError(400, "SITE_NOT_FOUND", "Site does not exist", {"site_id": project_id})
        return p

    def _project_by_key(self, api_key: str) -> _Project:
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

    def _remember(self, p: _Project, row: _Row) -> None:
        """Keep the key a record had when last served, before its first change since then."""
        if row.fid not in p.prior:
            p.prior[row.fid] = row.snapshot()

    def _touch(self, p: _Project, row: _Row) -> None:
        """Store a changed row on top of the keyset index with a fresh updated_at."""
        old = p.rows[row.fid]
        del p.keys[bisect_left(p.keys, (old.updated_us, old.fid))]
        now = self._now()
        p.rows[row.fid] = row._replace(updated_us=now, ufmt=_MICRO_VARIANTS[now % 2])
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
                        priority=_pick(rng, PRIORITIES),
                        labels=() if row.labels else (int(rng.random() * len(_LABELS)),),
                        comment=f"{_pick(rng, _EDIT_TEXTS)} #{rng.getrandbits(16)}",
                    ),
                )
            return chosen

    def _new_row(self, p: _Project, rng: Random, **fields: Any) -> _Row:
        """Append a fresh open row with created_at = updated_at = now."""
        now = self._now()
        fmt = _MICRO_VARIANTS[now % 2]
        values: dict[str, Any] = {
            "email": None,
            "assignee": p.default_assignee_id,
            "priority": None,
            "rating": None,
            **fields,
        }
        row = _Row(
            fid=_uuid(rng),
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
                lo, hi = _RATING_RANGES[p.rating_kind]
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
    def _resolve_assignee(p: _Project, value: Any) -> str | None:
        """Accept a user id, or null for unassigned; emails are not resolvable here."""
        if value is None:
            return None
        for user in p.assignees:
            if value == user["user_id"]:
                return str(user["user_id"])
        raise validation_error("assignee", "unknown user")

    # ----------------------------------------------------------------- listing

    def _serve(self, p: _Project, rows: list[_Row]) -> list[dict[str, Any]]:
        """Render a page and note that these records were served in their current state."""
        for row in rows:
            p.prior.pop(row.fid, None)
        return [self._render(p, row) for row in rows]

    def _cursor_snapshot(self, p: _Project, fid: str) -> tuple[int, int, int, int]:
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
            lo, hi, has_more = _window(p.keys, anchor, bool(before), limit, desc=True)
            rows = [p.rows[row_id] for _, row_id in reversed(p.keys[lo:hi])]
            return _page(self._serve(p, rows), limit, has_more)

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
            keys = sorted(key_of(r.snapshot(), r.fid) for r in p.rows.values() if match(r))
            fid = after or before
            anchor = key_of(self._cursor_snapshot(p, fid), fid) if fid else None
            lo, hi, has_more = _window(keys, anchor, bool(before), limit, desc=desc)
            window = keys[lo:hi]
            if desc:
                window.reverse()
            return _page(self._serve(p, [p.rows[k[-1]] for k in window]), limit, has_more)

    def filter_count(self, project_id: str, body: Any) -> int:
        """POST /projects/{id}/feedbacks/filter/count."""
        with self.lock:
            p = self._project(project_id)
            match, _, _ = parse_filter(body, p.rating_kind)
            return sum(1 for r in p.rows.values() if match(r))


def _window(
    keys: list[Any], anchor: Any, before: bool, limit: int, desc: bool
) -> tuple[int, int, bool]:
    """Slice bounds of one page over ascending keys, read in desc or asc order.

    The anchor need not be in the list (a record changed since it was served): bisect finds
    where it was. has_more says whether records follow the page's last one in reading order.
    """
    n = len(keys)
    if desc:
        if anchor is not None and before:
            lo = bisect_right(keys, anchor)
            return lo, min(n, lo + limit), lo > 0
        hi = n if anchor is None else bisect_left(keys, anchor)
        lo = max(0, hi - limit)
        return lo, hi, lo > 0
    if anchor is not None and before:
        hi = bisect_left(keys, anchor)
        return max(0, hi - limit), hi, hi < n
    lo = 0 if anchor is None else bisect_right(keys, anchor)
    hi = min(n, lo + limit)
    return lo, hi, hi < n


def _page(records: list[dict[str, Any]], limit: int, has_more: bool) -> dict[str, Any]:
    """The list response data; next is set whenever the page is non-empty, like the real API."""
    nxt = prev = None
    if records:
        last, first = records[-1]["feedback_id"], records[0]["feedback_id"]
        nxt = {"query_string": f"limit={limit}&after={last}", "limit": limit, "after": last}
        prev = {"query_string": f"limit={limit}&before={first}", "limit": limit, "before": first}
    return {
        "has_more": has_more,
        "count": len(records),
        "feedbacks": records,
        "next": nxt,
        "previous": prev,
    }


def _custom_data(bits: _Bits, number: int) -> dict[str, Any] | None:
    """Free-form widget data: null, empty, flat or deeply nested."""
    kind = bits.below(7)
    if kind == 0:
        return None
    if kind == 1:
        return {}
    if kind == 2:
        return {"System": "Staging", "Release Version": f"0.{number % 10}"}
    if kind == 3:
        return {
            "user": {
                "id": number,
                "plan": "enterprise",
                "roles": ["admin", "editor"],
                "manager": None,
            },
            "flags": {"beta": True},
        }
    if kind == 4:
        return {
            "cart": {"items": [{"sku": "A-1", "qty": 2, "price": 9.99}], "currency": "EUR"},
            "locale": "de-AT",
        }
    if kind == 5:
        return {"note": _SAMPLES["custom_note"], "nested": {"deep": {"value": [1, 2.5, None, "x"]}}}
    return {"empty_list": [], "empty_obj": {}, "zero": 0, "false": False, "null": None}


def _client(bits: _Bits) -> dict[str, Any] | None:
    """Browser/geo metadata; sometimes missing entirely or partly null."""
    if bits.chance(8):
        return None
    full, os_name, name, version = bits.pick(_BROWSERS)
    city, country = bits.pick(_PLACES)
    width, height = bits.pick(_SCREENS)
    return {
        "url": bits.pick(_URLS),
        "client_type": "browser" if bits.chance(85) else "mobile",
        "city_name": None if bits.chance(20) else city,
        "country_name": country,
        "screen_width": width,
        "screen_height": height,
        "browser_full_name": full,
        "browser_os": os_name,
        "browser_name": name,
        "browser_version": version,
    }


def _submitted_client(c: dict[str, Any]) -> dict[str, Any]:
    """Client block of a feedback submitted through the API: only what the payload gave."""
    return {
        "url": c.get("url"),
        "client_type": "api",
        "city_name": None,
        "country_name": None,
        "screen_width": c.get("screen_width"),
        "screen_height": c.get("screen_height"),
        "browser_full_name": None,
        "browser_os": None,
        "browser_name": None,
        "browser_version": None,
    }


# --------------------------------------------------------------------- filter parsing


def _like(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """Translate an SQL LIKE pattern (% and _, backslash escapes) to a regex."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _field_getter(filter_type: str, rating_kind: str) -> Callable[[_Row], Any]:
    """How each filter type reads a row; None behaves like SQL NULL (matches nothing)."""
    if filter_type == "assignee":
        return lambda r: r.assignee
    if filter_type == "created_at":
        return lambda r: r.created_us
    if filter_type == "email":
        return lambda r: r.email
    if filter_type == "feedback_number":
        return lambda r: r.number
    if filter_type == "state":
        return lambda r: r.status
    if filter_type == rating_kind:
        return lambda r: r.rating
    return lambda _r: None  # a rating kind this project does not collect


def _created_text(us: int) -> str:
    """created_at as LIKE patterns see it."""
    return format_ts(us, 3)


def _parse_value(filter_type: str, raw: str) -> Any:
    """Convert a filter value string to the field's type."""
    try:
        if filter_type == "created_at":
            return parse_ts(raw)
        if filter_type in ("feedback_number", "nps", "one_to_five", "thumb"):
            return int(raw)
    except ValueError as exc:
        raise validation_error("value", f"{raw!r} is not valid for {filter_type}") from exc
    return raw


def _condition(item: Any, rating_kind: str) -> Callable[[_Row], bool]:
    """Compile one query item into a row predicate."""
    if not isinstance(item, dict):
        raise validation_error("query", "items must be objects")
    ftype, op, value = item.get("filter_type"), item.get("operator"), item.get("value")
    if ftype not in FILTER_TYPES:
        raise validation_error("filter_type", f"unknown filter_type {ftype!r}")
    if op not in OPERATORS:
        raise validation_error("operator", f"unknown operator {op!r}")
    if value is None or isinstance(value, dict | list):
        raise validation_error("value", "a string value is required")
    raw = str(value).lower() if isinstance(value, bool) else str(value)
    get = _field_getter(ftype, rating_kind)
    if op in ("like", "ilike"):
        rx = _like(raw, op == "ilike")
        text = _created_text if ftype == "created_at" else str
        return lambda r: (v := get(r)) is not None and rx.fullmatch(text(v)) is not None
    if op in ("in", "not_in"):
        wanted = {_parse_value(ftype, part.strip()) for part in raw.split(",")}
        if op == "in":
            return lambda r: (v := get(r)) is not None and v in wanted
        return lambda r: (v := get(r)) is not None and v not in wanted
    target = _parse_value(ftype, raw)
    compare: Callable[[Any], bool] = {
        "eq": lambda v: v == target,
        "neq": lambda v: v != target,
        "gt": lambda v: v > target,
        "gte": lambda v: v >= target,
        "lt": lambda v: v < target,
        "lte": lambda v: v <= target,
    }[op]
    return lambda r: (v := get(r)) is not None and compare(v)


_ORDER_FIELD = {"updated_at": 0, "created_at": 1, "rating": 2, "likes": 3}
FilterSpec = tuple[
    Callable[[_Row], bool],
    Callable[[tuple[int, int, int, int], str], tuple[int, int, str]],
    bool,
]


def parse_filter(body: Any, rating_kind: str) -> FilterSpec:
    """Validate a filter body; return (predicate, sort key from a snapshot, descending?)."""
    if not isinstance(body, dict):
        raise validation_error("body", "a JSON object is required")
    query = body.get("query") or []
    if not isinstance(query, list):
        raise validation_error("query", "must be a list")
    conditions = [_condition(item, rating_kind) for item in query]
    order = body.get("order_by") or {}
    if not isinstance(order, dict):
        raise validation_error("order_by", "must be an object")
    order_type = order.get("order_by_type") or "updated_at"
    direction = order.get("direction") or "desc"
    if order_type not in ORDER_TYPES:
        raise validation_error("order_by_type", f"unknown order_by_type {order_type!r}")
    if direction not in ("asc", "desc"):
        raise validation_error("direction", f"unknown direction {direction!r}")
    field = _ORDER_FIELD[order_type]

    def key_of(snap: tuple[int, int, int, int], fid: str) -> tuple[int, int, str]:
        return (snap[field], snap[0], fid)

    def match(row: _Row) -> bool:
        return all(cond(row) for cond in conditions)

    return match, key_of, direction == "desc"


@dataclass(frozen=True)
class PageRequest:
    """Validated list parameters shared by the list and filter endpoints."""

    limit: int
    after: str | None
    before: str | None

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> PageRequest:
        """Validate limit/after/before the way the API does (limit 1..100, default 10)."""
        raw = query.get("limit", ["10"])[-1]
        try:
            limit = int(raw)
        except ValueError:
            raise validation_error("limit", "must be an integer between 1 and 100") from None
        if not 1 <= limit <= 100:
            raise validation_error("limit", "must be an integer between 1 and 100")
        after = query.get("after", [""])[-1] or None
        before = query.get("before", [""])[-1] or None
        if after and before:
            raise validation_error("after", "after and before are mutually exclusive")
        return cls(limit, after, before)
