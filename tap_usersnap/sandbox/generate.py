"""Deterministic, deliberately awkward sample data: projects, feedback rows and full records.

Feedback rows keep only the fields that drive ordering, filtering and mutation; the rest of a
record is re-derived from a per-record seed when it is served. That keeps 600,000 records cheap
to generate and hold while every response stays deterministic.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tap_usersnap.sandbox.timestamps import TS_PRECISION_US, TS_WEIGHTS, US, format_ts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from random import Random

FIXED_ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_SPAN_US = 2 * 365 * 86_400 * US  # sample updated_at values spread over two years
_NO_RATING = -(10**9)  # sorts unrated feedback below every rating

STATUSES = ("open", "in_progress", "done")
PRIORITIES = ("low", "medium", "high", "urgent", None)
RATING_KINDS = ("nps", "one_to_five", "thumb")
_RATING_LABELS = {"nps": "NPS", "one_to_five": "Rating", "thumb": "Thumbs"}
RATING_RANGES = {"nps": (0, 10), "one_to_five": (1, 5), "thumb": (-1, 1)}

_SAMPLES: dict[str, Any] = json.loads(
    Path(__file__).with_name("samples.json").read_text(encoding="utf-8")
)  # unicode-heavy sample text lives in JSON, away from linters' confusable-character checks
PROJECT_NAMES: tuple[str, ...] = tuple(_SAMPLES["project_names"])
USERS: tuple[tuple[str, str | None], ...] = tuple((f, n) for f, n in _SAMPLES["users"])
LABELS: tuple[tuple[str, str, str], ...] = tuple((i, n, c) for i, n, c in _SAMPLES["labels"])
_TEXTS: tuple[str, ...] = tuple(_SAMPLES["texts"])
EDIT_TEXTS: tuple[str, ...] = tuple(_SAMPLES["edit_texts"])
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


def seeded_uuid(rng: Random) -> str:
    """A version-4 UUID string drawn from a seeded generator (uuid4() is not reproducible)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def pick(rng: Random, seq: Sequence[Any]) -> Any:
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


class Row(NamedTuple):
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


class Project:
    """One project: its metadata plus feedback rows and the sorted keyset index."""

    def __init__(
        self, index: int, rng: Random, company_id: str, users: list[dict[str, Any]], anchor_us: int
    ) -> None:
        self.index = index
        self.project_id = seeded_uuid(rng)
        self.api_key = seeded_uuid(rng)
        self.company_id = company_id
        self.space_id = seeded_uuid(rng)
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
        self.widget_ids = (seeded_uuid(rng), seeded_uuid(rng))
        self.content_seed = rng.getrandbits(40)
        self.rows: dict[str, Row] = {}
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


def generate_rows(p: Project, n: int, rng: Random, anchor_us: int) -> None:
    """Create n rows: updated_at walks back from the anchor, ties are planted on purpose."""
    tied = bytearray(n)  # 1 where position i shares updated_at with position i + 1
    for start, end in _tie_groups(n, rng):
        tied[start : end - 1] = b"\x01" * (end - 1 - start)
    mean_gap = max(2, _SPAN_US // US // max(n, 1))
    rnd = rng.random
    sec = anchor_us // US - int(rnd() * 3_600)
    assignees = [None, *(u["user_id"] for u in p.assignees)]
    lo, hi = RATING_RANGES[p.rating_kind]
    specs: list[list[Any]] = []  # Row fields in order, number still 0
    group: list[list[Any]] = []
    for i in range(n):
        fid = seeded_uuid(rng)
        updated = sec * US + int(rnd() * US)
        ufmt = TS_WEIGHTS[int(rnd() * 10)]
        cfmt = TS_WEIGHTS[int(rnd() * 10)]
        x = rnd()
        status = "open" if x < 0.45 else ("in_progress" if x < 0.6 else "done")
        priority = PRIORITIES[int(rnd() * 5)]
        assignee = assignees[int(rnd() * len(assignees))]
        email = None
        if rnd() < 0.85:
            email = f"{pick(rng, _EMAIL_NAMES)}{i}@{pick(rng, _EMAIL_DOMAINS)}"
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
            _settle(group, rnd)
            group = []
            sec -= 1 + int(rnd() * 2 * mean_gap)
    specs.sort(key=lambda f: (f[2], f[0]))  # feedback_number follows created_at
    for number, spec in enumerate(specs, start=1):
        spec[1] = number
        p.rows[spec[0]] = Row(*spec)
    p.next_number = n + 1
    p.keys = sorted((spec[3], spec[0]) for spec in specs)


def _settle(group: list[list[Any]], rnd: Callable[[], float]) -> None:
    """Give a tie group one instant every member's format can show; derive created_at."""
    step = max(TS_PRECISION_US[spec[5]] for spec in group)
    instant = group[0][3] // step * step
    for spec in group:
        spec[3] = instant
        created = instant if rnd() < 0.35 else instant - int(rnd() * 90 * 86_400 * US)
        cstep = TS_PRECISION_US[spec[4]]
        spec[2] = created // cstep * cstep


def render_feedback(p: Project, row: Row, labels: list[dict[str, Any]]) -> dict[str, Any]:
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
        "labels": [dict(labels[i]) for i in row.labels],
        "sentiment": bits.pick(_SENTIMENTS),
        "source_widget_id": None if sub is not None else p.widget_ids[row.number % 2],
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
