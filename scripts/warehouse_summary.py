"""Print rows per table of the DuckDB warehouse, and what the last run changed.

Usage (any Python with duckdb, e.g. the target-duckdb plugin venv):

    python scripts/warehouse_summary.py --db output/warehouse.duckdb --schema usersnap \
        [--since 2026-01-01T10:00:00] [--previous output/.last_summary.json] \
        [--save output/.last_summary.json] [--json]

--since is the (local, naive) time the run started: rows whose _sdc_batched_at is at or
after it were written by that run (inserted or merged). --previous / --save keep the
per-table counts between runs so the next call can print the difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import duckdb


def summarize(db: Path, schema: str, since: str | None) -> dict[str, Any]:
    """Per-table counts (+ rows written since `since`) and feedback bounds."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = ? ORDER BY table_name",
                [schema],
            ).fetchall()
        ]
        out: dict[str, Any] = {"tables": {}, "db": str(db), "schema": schema}
        for table in tables:
            ident = f'"{schema}"."{table}"'
            cols = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = ? AND table_name = ?",
                    [schema, table],
                ).fetchall()
            }
            rows = con.execute(f"SELECT count(*) FROM {ident}").fetchone()[0]
            info: dict[str, Any] = {"rows": rows}
            if since and "_sdc_batched_at" in cols:
                info["written"] = con.execute(
                    f"SELECT count(*) FROM {ident} WHERE _sdc_batched_at >= ?::TIMESTAMP",
                    [since],
                ).fetchone()[0]
            if "updated_at" in cols:
                mx = con.execute(f"SELECT max(updated_at) FROM {ident}").fetchone()[0]
                info["max_updated_at"] = str(mx) if mx is not None else None
            if table == "feedbacks" and "feedback_id" in cols:
                info["distinct_keys"] = con.execute(
                    f"SELECT count(DISTINCT feedback_id) FROM {ident}"
                ).fetchone()[0]
            out["tables"][table] = info
        return out
    finally:
        con.close()


def render(summary: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """A small fixed-width table."""
    prev_tables = (previous or {}).get("tables", {})
    lines = [f"{'table':<20} {'rows':>7} {'change':>7} {'written':>8}  max updated_at"]
    lines.append("-" * len(lines[0]) + "-" * 12)
    for table, info in summary["tables"].items():
        before = prev_tables.get(table, {}).get("rows")
        change = "" if before is None else f"{info['rows'] - before:+d}"
        written = "" if "written" not in info else str(info["written"])
        lines.append(
            f"{table:<20} {info['rows']:>7} {change:>7} {written:>8}  "
            f"{info.get('max_updated_at') or ''}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, type=Path)
    ap.add_argument("--schema", default="usersnap")
    ap.add_argument("--since", help="run start, local naive ISO time")
    ap.add_argument("--previous", type=Path)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)

    if not args.db.exists():
        print(f"no DuckDB file at {args.db}", file=sys.stderr)
        return 1
    summary = summarize(args.db, args.schema, args.since)
    summary["at"] = dt.datetime.now().isoformat(timespec="seconds")
    previous = None
    if args.previous and args.previous.exists():
        previous = json.loads(args.previous.read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render(summary, previous))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
