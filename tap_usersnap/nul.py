"""NUL characters (U+0000) in API text: PostgreSQL can store them in neither text nor jsonb.

People paste anything into a feedback widget. One NUL in any nested string makes
target-postgres fail every run for good (its own ``sanitize_null_text_characters`` reaches
top-level columns and their direct children only), so the tap replaces each NUL with U+FFFD,
the loaders' convention, before any record leaves it.
"""

from __future__ import annotations

import typing as t

#: How a NUL looks in a JSON body: a body without it cannot hold one (JSON forbids raw NULs).
ESCAPED_NUL = b"\\u0000"
_NUL = "\x00"
_REPLACEMENT = "\ufffd"


def replace_nul(value: t.Any) -> tuple[t.Any, int]:
    """Return ``value`` with every NUL in its strings, keys included, replaced; and the count."""
    if isinstance(value, str):
        count = value.count(_NUL)
        return (value.replace(_NUL, _REPLACEMENT) if count else value), count
    if isinstance(value, list):
        total = 0
        items = []
        for item in value:
            clean, count = replace_nul(item)
            items.append(clean)
            total += count
        return items, total
    if isinstance(value, dict):
        total = 0
        fields = {}
        for key, item in value.items():
            clean_key, key_count = replace_nul(key)
            clean, count = replace_nul(item)
            fields[clean_key] = clean
            total += key_count + count
        return fields, total
    return value, 0
