"""Timestamps as epoch microseconds, rendered in the API's inconsistent ISO 8601 variants."""

from __future__ import annotations

import datetime as dt
import time

US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Timestamp variants: (fraction digits, suffix). The real API is not consistent either.
_TS_VARIANTS: tuple[tuple[int, str], ...] = (
    (0, "Z"),
    (1, "Z"),
    (3, "Z"),
    (6, "Z"),
    (6, "+00:00"),
    (0, "+00:00"),
)
TS_PRECISION_US = tuple(10 ** (6 - digits) for digits, _ in _TS_VARIANTS)
TS_WEIGHTS = (0, 1, 2, 3, 3, 3, 3, 3, 4, 5)  # mostly microseconds, all variants present
MICRO_VARIANTS = (3, 4)  # used for "now": they keep every microsecond


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
