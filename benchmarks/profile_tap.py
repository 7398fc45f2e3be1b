"""Profile one tap-usersnap run with cProfile in every thread, merged into one report.

``python -m cProfile`` sees only the main thread, but the tap fetches and parses pages in
worker threads (``tap_usersnap.prefetch``). This wraps ``threading.Thread.run`` so each
thread gets its own profiler (Python 3.11: cProfile hooks are per thread), then merges
them. Against a running sandbox:

    .venv/bin/python benchmarks/profile_tap.py --config config.json [--out /tmp/tap.prof] [--top 25]

or let it start one (3 x 20,000 feedbacks, scenario 1 of bench.py):

    .venv/bin/python benchmarks/profile_tap.py --sandbox [--feedbacks 20000]

The tap's stdout goes to /dev/null and its logs to a file; the report (by self time and by
cumulative time, plus the split between the main thread and the workers) goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def profile_tap(
    config: Path, out: Path, log: Path
) -> tuple[cProfile.Profile, list[cProfile.Profile]]:
    """Run the tap in this process with every thread profiled."""
    workers: list[cProfile.Profile] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile()
        workers.append(profiler)
        profiler.enable()
        try:
            original_run(self)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    from tap_usersnap.tap import TapUsersnap

    main = cProfile.Profile()
    sys.argv = ["tap-usersnap", "--config", str(config)]
    stdout_fd, stderr_fd = os.dup(1), os.dup(2)
    with open(os.devnull, "wb") as devnull, open(log, "wb") as errors:
        sys.stdout.flush()
        os.dup2(devnull.fileno(), 1)
        os.dup2(errors.fileno(), 2)
        started = time.perf_counter()
        try:
            main.enable()
            with contextlib.suppress(SystemExit):
                TapUsersnap.cli()  # pylint: disable=no-value-for-parameter
        finally:
            main.disable()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(stdout_fd, 1)
            os.dup2(stderr_fd, 2)
    print(f"tap run (profiled) {time.perf_counter() - started:.2f} s wall")
    for profiler in workers:  # daemon workers may still wait for work: stop their hooks
        profiler.disable()
    merged = pstats.Stats(main)
    for profiler in workers:
        merged.add(profiler)
    merged.dump_stats(str(out))
    return main, workers


def total_time(profiler: cProfile.Profile) -> float:
    stats = pstats.Stats(profiler)
    return float(stats.total_tt)  # type: ignore[attr-defined]


def _top(stats: pstats.Stats, sort: str, top: int, title: str) -> None:
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    lines = buffer.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    print(f"\n--- {title}: top {top} by {sort} ---")
    print("\n".join(lines[start:]).rstrip())


def report(out: Path, main: cProfile.Profile, workers: list[cProfile.Profile], top: int) -> None:
    print(
        f"self time: main thread {total_time(main):.2f} s, "
        f"{len(workers)} worker thread(s) {sum(total_time(w) for w in workers):.2f} s "
        "(workers' time includes blocking waits)"
    )
    _top(pstats.Stats(main), "tottime", top, "main thread (emits records and state)")
    _top(pstats.Stats(main), "cumulative", top, "main thread (emits records and state)")
    if workers:
        worker_stats = pstats.Stats(workers[0])
        for profiler in workers[1:]:
            worker_stats.add(profiler)
        _top(worker_stats, "tottime", top, "worker threads merged (fetch and parse pages)")
    print(f"\nall threads merged: {out} (open with pstats / snakeviz)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="tap config (a running sandbox)")
    parser.add_argument("--sandbox", action="store_true", help="start a sandbox for the run")
    parser.add_argument(
        "--feedbacks", type=int, default=20_000, help="per project (with --sandbox)"
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "tap.prof")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    if not args.config and not args.sandbox:
        parser.error("give --config or --sandbox")
    workdir = Path(tempfile.mkdtemp(prefix="usersnap-profile-"))
    log = workdir / "tap.stderr.log"
    sandbox = None
    try:
        config = args.config
        if args.sandbox:
            sandbox = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "usersnap-sandbox"),
                    "--port",
                    "0",
                    "--projects",
                    "3",
                    "--feedbacks",
                    str(args.feedbacks),
                    "--seed",
                    "7",
                ],
                stdout=subprocess.PIPE,
            )
            assert sandbox.stdout is not None
            url = json.loads(sandbox.stdout.readline())["url"]
            config = workdir / "config.json"
            config.write_text(
                json.dumps(
                    {
                        "jwt_id": "sandbox-jwt-id",
                        "jwt_secret": "sandbox-jwt-secret-0123456789abcdef",
                        "api_url": url,
                        "page_size": 100,
                        "max_concurrency": 4,
                    }
                )
            )
        main_profile, workers = profile_tap(config, args.out, log)
        report(args.out, main_profile, workers, args.top)
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=15)
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
