"""Benchmark of tap-usersnap against its sandbox: CPU, memory, latency and incremental syncs.

    .venv/bin/python benchmarks/bench.py                 # every scenario, ~6-8 minutes
    .venv/bin/python benchmarks/bench.py --quick         # smaller sizes, under 2 minutes
    .venv/bin/python benchmarks/bench.py --scenario cpu  # or memory, stalled, latency, ranges, ...

The sandbox (``usersnap-sandbox``) and the tap each run as their own process, so the
sandbox's CPU never shares a GIL with what is measured. Wall time comes from
``time.perf_counter`` around the child, peak RSS and CPU time from ``os.wait4`` of it.
Timed runs alternate between tap and bare client (ABBA order), and medians are reported,
to cancel the drift of a shared machine. Prints one markdown table per scenario.

This is not a test: it always exits 0 unless a run itself fails (non-zero exit code).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-usersnap")
SANDBOX = str(BIN / "usersnap-sandbox")
BARE = [sys.executable, str(HERE / "bare_client.py")]
JWT_ID = "sandbox-jwt-id"
JWT_SECRET = "sandbox-jwt-secret-0123456789abcdef"
MIB = 1024 * 1024

# Targets
CPU_RATIO_TARGET = 0.9
RSS_TARGET_MIB = 150.0
RSS_FLAT_TOLERANCE = 0.10  # the large run may use at most 10 % (or 10 MiB) more
STALLED_RSS_TARGET_MIB = 100.0
RANGES_RATIO_TARGET = 0.35
LATENCY_RATIO_TARGET = 0.35
UNCHANGED_REQUESTS_TARGET = 2


# --------------------------------------------------------------------------- processes


@dataclass
class Run:
    """One child process: wall seconds, CPU seconds (user+sys), peak RSS in MiB."""

    wall: float
    cpu: float
    rss_mib: float


class Sandbox:
    """``usersnap-sandbox`` as a separate process, plus its /_sandbox/ control routes."""

    def __init__(self, *args: str, workdir: Path) -> None:
        self.args = [SANDBOX, "--port", "0", "--seed", "7", *args]
        self.log = open(workdir / "sandbox.log", "ab")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.root = ""

    def __enter__(self) -> Sandbox:
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError(f"sandbox did not start: {' '.join(self.args)}")
        self.url = json.loads(line)["url"]
        self.root = self.url.rsplit("/v0.1", 1)[0]
        self.startup = time.perf_counter() - started
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def control(self, method: str, path: str, body: dict[str, t.Any] | None = None) -> t.Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, t.Any]:
        return t.cast("dict[str, t.Any]", self.control("GET", "/_sandbox/stats"))

    def reset_requests(self) -> None:
        self.control("POST", "/_sandbox/reset_requests", {})

    def requests(self) -> list[list[t.Any]]:
        return t.cast("list[list[t.Any]]", self.control("GET", "/_sandbox/requests"))


def run_child(cmd: list[str], stdout: Path | None, stderr: Path) -> Run:
    """Run ``cmd`` to completion; its stdout goes to a file or /dev/null."""
    with (
        open(stdout if stdout else os.devnull, "wb") as out,
        open(stderr, "wb") as err,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = stderr.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n" + "\n".join(tail))
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


class Bench:
    """Shared helpers: a work directory, config files, tap and bare runs."""

    def __init__(self, workdir: Path, verbose: bool) -> None:
        self.workdir = workdir
        self.verbose = verbose
        self._n = 0

    def note(self, message: str) -> None:
        if self.verbose:
            print(f"  .. {message}", file=sys.stderr, flush=True)

    def config(self, sandbox: Sandbox, **extra: t.Any) -> Path:
        self._n += 1
        path = self.workdir / f"config-{self._n}.json"
        config = {
            "jwt_id": JWT_ID,
            "jwt_secret": JWT_SECRET,
            "api_url": sandbox.url,
            "page_size": 100,
            "max_concurrency": 4,
            **extra,
        }
        path.write_text(json.dumps(config))
        return path

    def tap(self, config: Path, state: Path | None = None, stdout: Path | None = None) -> Run:
        cmd = [TAP, "--config", str(config)]
        if state is not None:
            cmd += ["--state", str(state)]
        run = run_child(cmd, stdout, self.workdir / "tap.stderr.log")
        self.note(f"tap  {run.wall:7.2f} s  cpu {run.cpu:6.2f} s  rss {run.rss_mib:6.1f} MiB")
        return run

    def bare(self, config: Path, stdout: Path | None = None) -> Run:
        run = run_child([*BARE, "--config", str(config)], stdout, self.workdir / "bare.stderr.log")
        self.note(f"bare {run.wall:7.2f} s  cpu {run.cpu:6.2f} s  rss {run.rss_mib:6.1f} MiB")
        return run


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(title: str, header: list[str], rows: list[list[t.Any]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()


def last_state(path: Path) -> tuple[dict[str, t.Any], dict[str, int]]:
    """The value of the last STATE message, and RECORD counts per stream."""
    state: dict[str, t.Any] = {}
    records: dict[str, int] = {}
    with open(path, "rb") as lines:
        for line in lines:
            if b'"STATE"' in line[:40]:
                state = json.loads(line)["value"]
            elif b'"RECORD"' in line[:40]:
                stream = json.loads(line)["stream"]
                records[stream] = records.get(stream, 0) + 1
    return state, records


def feedback_requests(log: list[list[t.Any]], project_ids: list[str]) -> dict[str, int]:
    """Feedback list requests per project id in the sandbox's request log."""
    counts = dict.fromkeys(project_ids, 0)
    for _method, path, _status in log:
        parts = path.split("?", 1)[0].split("/")
        # /v0.1/projects/{project_id}/feedbacks
        if len(parts) == 5 and parts[2] == "projects" and parts[4] == "feedbacks":
            counts[parts[3]] = counts.get(parts[3], 0) + 1
    return counts


# --------------------------------------------------------------------------- scenarios


def scenario_cpu(bench: Bench, quick: bool, pairs: int) -> None:
    projects, per_project = 3, (3_000 if quick else 20_000)
    with Sandbox(
        "--projects", str(projects), "--feedbacks", str(per_project), workdir=bench.workdir
    ) as sb:
        bench.note(f"cpu: sandbox {projects}x{per_project} up in {sb.startup:.1f} s")
        config = bench.config(sb)
        # Warm-up (discarded): imports into the page cache, the sandbox's first renders, and
        # the record count from the bare client's output.
        counted = bench.workdir / "bare-count.jsonl"
        bench.bare(config, stdout=counted)
        with open(counted, "rb") as lines:
            records = sum(1 for _ in lines)
        counted.unlink()
        taps: list[Run] = []
        bares: list[Run] = []
        for i in range(pairs):
            if i % 2 == 0:
                taps.append(bench.tap(config))
                bares.append(bench.bare(config))
            else:
                bares.append(bench.bare(config))
                taps.append(bench.tap(config))
    ratios = [tap.wall / bare.wall for tap, bare in zip(taps, bares, strict=True)]
    cpu_ratios = [tap.cpu / bare.cpu for tap, bare in zip(taps, bares, strict=True)]
    ratio = statistics.median(ratios)

    def row(name: str, runs: list[Run]) -> list[t.Any]:
        wall = statistics.median(r.wall for r in runs)
        return [
            name,
            f"{wall:.2f}",
            f"{statistics.median(r.cpu for r in runs):.2f}",
            f"{records / wall:,.0f}",
            f"{max(r.rss_mib for r in runs):.1f}",
        ]

    table(
        f"1. CPU-bound: {projects} x {per_project:,} feedbacks ({records:,} records), "
        f"no latency, {pairs} alternating pairs",
        ["run", "wall s (median)", "cpu s (median)", "records/s", "peak RSS MiB (max)"],
        [row("tap", taps), row("bare client", bares)],
    )
    print(
        f"\nratio tap/bare wall: median **{ratio:.2f}** "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"cpu-time ratio median {statistics.median(cpu_ratios):.2f}) "
        f"target <= {CPU_RATIO_TARGET} -> **{verdict(ratio <= CPU_RATIO_TARGET)}**"
    )


def scenario_memory(bench: Bench, quick: bool, runs: int, with_bare: bool) -> None:
    small, large = (3_000, 30_000) if quick else (20_000, 200_000)
    sizes = ",".join([str(small)] * 3 + [str(large)] * 3)
    with Sandbox("--feedbacks", sizes, workdir=bench.workdir) as sb:
        bench.note(f"memory: sandbox 3x{small} + 3x{large} up in {sb.startup:.1f} s")
        ids = [pid for pid, n in sb.stats()["projects"].items() if n in (small, large)]
        counts = sb.stats()["projects"]
        small_ids = [pid for pid in ids if counts[pid] == small]
        large_ids = [pid for pid in ids if counts[pid] == large]
        small_config = bench.config(sb, project_ids=small_ids)
        large_config = bench.config(sb, project_ids=large_ids)
        small_runs: list[Run] = []
        large_runs: list[Run] = []
        for i in range(runs):
            order = [(small_config, small_runs), (large_config, large_runs)]
            for config, results in order if i % 2 == 0 else order[::-1]:
                results.append(bench.tap(config))
        bare_large = bench.bare(large_config) if with_bare else None
    rss_small = max(r.rss_mib for r in small_runs)
    rss_large = max(r.rss_mib for r in large_runs)
    growth = rss_large - rss_small
    flat = growth <= max(10.0, RSS_FLAT_TOLERANCE * rss_small)
    large_wall = statistics.median(r.wall for r in large_runs)
    n_small, n_large = 3 * small, 3 * large
    table(
        f"2. Memory: tap peak RSS at {n_small:,} vs {n_large:,} feedbacks ({runs} run(s) each)",
        ["feedbacks", "tap peak RSS MiB", "tap wall s", "feedbacks/s", "bare RSS MiB / wall s"],
        [
            [
                f"{n_small:,}",
                f"{rss_small:.1f}",
                f"{statistics.median(r.wall for r in small_runs):.2f}",
                f"{n_small / statistics.median(r.wall for r in small_runs):,.0f}",
                "",
            ],
            [
                f"{n_large:,}",
                f"{rss_large:.1f}",
                f"{large_wall:.2f}",
                f"{n_large / large_wall:,.0f}",
                f"{bare_large.rss_mib:.1f} / {bare_large.wall:.2f}"
                if bare_large
                else "(--memory-bare)",
            ],
        ],
    )
    print(
        f"\npeak RSS {rss_large:.1f} MiB (target < {RSS_TARGET_MIB:.0f}) -> "
        f"**{verdict(rss_large < RSS_TARGET_MIB)}**; growth x10 records {growth:+.1f} MiB "
        f"(flat: <= max(10 MiB, 10 %)) -> **{verdict(flat)}**"
        + (
            f"; tap/bare wall at {n_large:,}: {large_wall / bare_large.wall:.2f}"
            if bare_large
            else ""
        )
    )


def run_stalled(cmd: list[str], stall_seconds: float, stderr: Path) -> Run:
    """Run ``cmd`` behind a target that reads nothing for ``stall_seconds``, then everything."""
    with open(stderr, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        time.sleep(stall_seconds)
        while proc.stdout.read(1 << 20):
            pass
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} exited {os.waitstatus_to_exitcode(status)}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def scenario_stalled(bench: Bench, quick: bool) -> None:
    """Many small projects behind a target that stalls: buffered pages must stay bounded."""
    projects, per_project, stall = (100, 200, 5.0) if quick else (300, 200, 20.0)
    with Sandbox(
        "--projects", str(projects), "--feedbacks", str(per_project), workdir=bench.workdir
    ) as sb:
        bench.note(f"stalled: sandbox {projects}x{per_project} up in {sb.startup:.1f} s")
        config = bench.config(sb)
        sb.reset_requests()
        run = run_stalled([TAP, "--config", str(config)], stall, bench.workdir / "tap.stderr.log")
        served = sb.stats()["requests"]
    bench.note(f"tap  {run.wall:7.2f} s  cpu {run.cpu:6.2f} s  rss {run.rss_mib:6.1f} MiB")
    table(
        f"2b. Memory behind a stalled target: {projects} x {per_project} feedbacks, "
        f"target reads nothing for {stall:.0f} s",
        ["peak RSS MiB", "requests served", "wall s", f"target < {STALLED_RSS_TARGET_MIB:.0f} MiB"],
        [
            [
                f"{run.rss_mib:.1f}",
                served,
                f"{run.wall:.2f}",
                verdict(run.rss_mib < STALLED_RSS_TARGET_MIB),
            ]
        ],
    )


def chain_requests(projects: int, per_project: int, page_size: int = 100) -> int:
    """Requests of a sequential read in one chain a project: projects, pages, 2 lists each."""
    return 1 + projects * (max(1, -(-per_project // page_size)) + 2)


def scenario_ranges(bench: Bench, runs: int) -> None:
    """Large projects at 100 ms a request, against one cursor chain a project, in sequence."""
    latency_ms = 100
    rows: list[list[t.Any]] = []
    for projects, per_project in ((1, 20_000), (8, 3_000)):
        with Sandbox(
            "--projects",
            str(projects),
            "--feedbacks",
            str(per_project),
            "--latency-ms",
            str(latency_ms),
            workdir=bench.workdir,
        ) as sb:
            config = bench.config(sb)
            walls, served = [], []
            for _ in range(runs):
                sb.reset_requests()
                walls.append(bench.tap(config).wall)
                served.append(sb.stats()["requests"])
        floor = chain_requests(projects, per_project) * latency_ms / 1000
        wall = statistics.median(walls)
        rows.append(
            [
                f"{projects} x {per_project:,}",
                f"{floor:.1f}",
                max(served),
                f"{wall:.2f}",
                f"{wall / floor:.3f}",
                verdict(wall / floor <= RANGES_RATIO_TARGET),
            ]
        )
    table(
        f"3b. Large projects: {latency_ms} ms a request, default settings (median of {runs})",
        [
            "projects x feedbacks",
            "one chain a project, in sequence: s",
            "requests served",
            "wall s",
            "wall/chain",
            f"target <= {RANGES_RATIO_TARGET}",
        ],
        rows,
    )


def scenario_latency(bench: Bench, runs: int) -> None:
    projects, per_project, latency_ms = 20, 500, 100
    rows: list[list[t.Any]] = []
    with Sandbox(
        "--projects",
        str(projects),
        "--feedbacks",
        str(per_project),
        "--latency-ms",
        str(latency_ms),
        workdir=bench.workdir,
    ) as sb:
        settings = [
            ("default (max_concurrency=4)", {}, runs),
            ("max_concurrency=1", {"max_concurrency": 1}, 1),
        ]
        for label, extra, repeat in settings:
            config = bench.config(sb, **extra)
            walls, ratios, counts = [], [], []
            for _ in range(repeat):
                sb.reset_requests()
                run = bench.tap(config)
                n_requests = sb.stats()["requests"]
                floor = n_requests * latency_ms / 1000
                walls.append(run.wall)
                ratios.append(run.wall / floor)
                counts.append(n_requests)
            ratio = statistics.median(ratios)
            n_requests = max(counts)
            rows.append(
                [
                    label,
                    n_requests,
                    f"{n_requests * latency_ms / 1000:.1f}",
                    f"{statistics.median(walls):.2f}",
                    f"{ratio:.3f}",
                    verdict(ratio <= LATENCY_RATIO_TARGET) if not extra else "(contrast)",
                ]
            )
    table(
        f"3. Latency-bound: {projects} x {per_project} feedbacks, {latency_ms} ms a request "
        f"(default: median of {runs})",
        [
            "tap settings",
            "requests",
            "sequential floor s",
            "wall s",
            "wall/floor",
            f"target <= {LATENCY_RATIO_TARGET}",
        ],
        rows,
    )


def scenario_incremental(bench: Bench, with_latency: bool) -> None:
    projects, per_project, changes, latency_ms = 20, 500, 50, 100
    rows: list[list[t.Any]] = []
    with Sandbox(
        "--projects", str(projects), "--feedbacks", str(per_project), workdir=bench.workdir
    ) as sb:
        ids = list(sb.stats()["projects"])
        changed = ids[0]
        config = bench.config(sb)
        out = bench.workdir / "full.jsonl"
        sb.reset_requests()
        full = bench.tap(config, stdout=out)
        state, records = last_state(out)
        n_full = len(sb.requests())
        rows.append(
            [
                "full sync",
                f"{full.wall:.2f}",
                n_full,
                records.get("feedbacks", 0),
                "-",
                "-",
                "-",
            ]
        )
        phases = [("incremental, no latency", 0)]
        if with_latency:
            phases.append((f"incremental, {latency_ms} ms latency", latency_ms))
        all_ok = True
        for label, latency in phases:
            state_path = bench.workdir / "state.json"
            state_path.write_text(json.dumps(state))
            sb.control("POST", "/_sandbox/faults", {"latency_ms": latency})
            sb.control("POST", "/_sandbox/change", {"project_id": changed, "k": changes})
            sb.reset_requests()
            out = bench.workdir / "incremental.jsonl"
            run = bench.tap(config, state=state_path, stdout=out)
            log = sb.requests()
            state, records = last_state(out)
            per_project_requests = feedback_requests(log, ids)
            unchanged = [per_project_requests[pid] for pid in ids if pid != changed]
            ok = max(unchanged) <= UNCHANGED_REQUESTS_TARGET
            all_ok = all_ok and ok
            floor = len(log) * latency / 1000
            wall = f"{run.wall:.2f}" + (
                f" (floor {floor:.1f}, ratio {run.wall / floor:.2f})" if latency else ""
            )
            rows.append(
                [
                    label,
                    wall,
                    len(log),
                    records.get("feedbacks", 0),
                    per_project_requests[changed],
                    f"{min(unchanged)}-{max(unchanged)} (mean {statistics.mean(unchanged):.2f})",
                    verdict(ok),
                ]
            )
    table(
        f"4. Incremental: {projects} x {per_project} feedbacks, {changes} changed in 1 project",
        [
            "sync",
            "wall s",
            "API requests",
            "feedback records",
            "feedback reqs, changed project",
            "feedback reqs per unchanged project",
            f"unchanged <= {UNCHANGED_REQUESTS_TARGET}",
        ],
        rows,
    )


# --------------------------------------------------------------------------- main


def environment() -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Python {platform.python_version()} | singer-sdk {version('singer-sdk')} | "
        f"tap-usersnap {version('tap-usersnap')} | requests {version('requests')} | "
        f"msgspec {version('msgspec')} | {platform.system()} {platform.release()} | "
        f"nproc {os.cpu_count()} | {cpu}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario",
        choices=["cpu", "memory", "stalled", "latency", "ranges", "incremental", "all"],
        default="all",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument(
        "--pairs", type=int, default=None, help="tap/bare pairs (cpu; default 5, quick 2)"
    )
    parser.add_argument("--memory-runs", type=int, default=1, help="tap runs per size (memory)")
    parser.add_argument(
        "--memory-bare", action="store_true", help="also run the bare client on the large size"
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=None,
        help="default-settings runs (latency; default 3, quick 1)",
    )
    parser.add_argument(
        "--no-incremental-latency", action="store_true", help="skip the 100 ms incremental sync"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (configs, logs, outputs)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every run to stderr")
    args = parser.parse_args(argv)
    pairs = args.pairs or (2 if args.quick else 5)
    latency_runs = args.latency_runs or (1 if args.quick else 3)

    workdir = Path(tempfile.mkdtemp(prefix="usersnap-bench-"))
    bench = Bench(workdir, args.verbose)
    started = time.perf_counter()
    print(f"## tap-usersnap benchmark{' (--quick)' if args.quick else ''}\n")
    print(environment())
    about = run_child([TAP, "--about"], None, workdir / "about.log")  # also warms the imports
    about = run_child([TAP, "--about"], None, workdir / "about.log")
    print(
        f"tap start-up (`tap-usersnap --about`): {about.wall:.2f} s wall, {about.rss_mib:.0f} MiB"
    )
    wanted = (
        {"cpu", "memory", "stalled", "latency", "ranges", "incremental"}
        if args.scenario == "all"
        else {args.scenario}
    )
    try:
        if "cpu" in wanted:
            scenario_cpu(bench, args.quick, pairs)
        if "memory" in wanted:
            scenario_memory(bench, args.quick, args.memory_runs, args.memory_bare)
        if "stalled" in wanted:
            scenario_stalled(bench, args.quick)
        if "latency" in wanted:
            scenario_latency(bench, latency_runs)
        if "ranges" in wanted:
            scenario_ranges(bench, latency_runs)
        if "incremental" in wanted:
            scenario_incremental(bench, not args.no_incremental_latency)
    finally:
        if args.keep:
            print(f"\n(work directory kept: {workdir})", file=sys.stderr)
        else:
            for path in sorted(workdir.iterdir()):
                path.unlink()
            workdir.rmdir()
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
