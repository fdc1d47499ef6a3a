"""Desk's message path under open-loop load, beside a bare relay on the same stack.

One command (``make bench``, or ``python -m bench.message_path``) measures the time from a customer socket
(``/ws/chat``) to the staff socket (``/ws/staff``) through the whole message path of a real ``desk serve``
process (the message is persisted, given its ``seq`` and published as ``message.created``), and the same trip
through a bare relay (``bench/_relay.py``: a Starlette app under uvicorn that forwards each customer frame to
an agent socket in the same process, nothing else), in the same run, on SQLite and on PostgreSQL.

Load is open loop at fixed offered rates: sends are due on a fixed clock, whatever happened to the earlier
messages, and each message carries its due time, so latency includes any queueing. The load generator is a
separate process (``bench/_load.py``) from both servers. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from bench._common import TARGET_P50_MS, TARGET_P99_MS, TARGET_RATE, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_DESK_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
STARTUP_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0
BENCH_EMAIL = "bench-supervisor@example.com"


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------
# Server processes


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    log_file: TextIO

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextlib.contextmanager
def _server(name: str, argv: list[str], env: dict[str, str], port: int, workdir: Path) -> Iterator[Server]:
    log_path = workdir / f"{name}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT)
        server = Server(name=name, proc=proc, port=port, log_path=log_path, log_file=log_file)
        try:
            _wait_healthy(server)
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = ""
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise BenchError(
                    f"{server.name} exited with code {server.proc.returncode} while starting:\n{server.log_tail()}"
                )
            try:
                response = client.get(f"{server.http}/healthz")
                if response.status_code == 200:
                    return
                last_error = f"GET /healthz → {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(0.2)
    raise BenchError(f"{server.name} not healthy after {STARTUP_TIMEOUT_S:.0f}s ({last_error}):\n{server.log_tail()}")


def _bin(name: str) -> str:
    """A console script of this virtualenv (next to the running interpreter), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"cannot find the {name!r} command; run `make install` first")
    return found


@contextlib.contextmanager
def relay_server(workdir: Path) -> Iterator[Server]:
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
    )
    with _server("relay", [sys.executable, "-m", "bench._relay", "--port", str(port)], env, port, workdir) as srv:
        yield srv


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database for one run; dropped afterwards. Yields Desk's database URL."""
    import psycopg  # only needed for PostgreSQL runs

    name = f"desk_bench_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"cannot create a PostgreSQL database on {PG_ADMIN_URL}: {exc}") from exc
    try:
        yield PG_DESK_URL.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _desk_env(database_url: str, port: int, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESK_")}
    env.update(
        {
            "DESK_DATABASE_URL": database_url,
            "DESK_HOST": "127.0.0.1",
            "DESK_PORT": str(port),
            "DESK_SECRET_KEY": secrets.token_hex(32),
            "DESK_SECRET_FILE": str(workdir / "desk-secret"),
        }
    )
    return env


def _desk_cli(env: dict[str, str], workdir: Path, args: list[str], stdin: str = "") -> str:
    try:
        proc = subprocess.run(
            [_bin("desk"), *args],
            env=env,
            cwd=workdir,
            input=stdin.encode(),
            capture_output=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`desk {' '.join(args)}` did not finish in {CLI_TIMEOUT_S:.0f}s") from exc
    if proc.returncode != 0:
        raise BenchError(
            f"`desk {' '.join(args)}` failed with code {proc.returncode}:\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout.decode()


def _json_line(output: str, what: str) -> dict[str, Any]:
    """The JSON object a desk command prints (the last line that parses as one)."""
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    with contextlib.suppress(ValueError):
        value = json.loads(output)
        if isinstance(value, dict):
            return value
    raise BenchError(f"{what} did not print a JSON object:\n{output}")


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{what}: expected {status}, got {response.status_code}: {response.text[:2000]}")
    body = response.json()
    if not isinstance(body, dict):
        raise BenchError(f"{what}: expected a JSON object, got {body!r}")
    return body


@dataclass
class DeskSetup:
    staff_url: str
    chat_urls: list[str]


def setup_desk(server: Server, env: dict[str, str], workdir: Path, conversations: int) -> DeskSetup:
    """A supervisor, an integration and N claimed conversations, all through Desk's public interface."""
    password = secrets.token_urlsafe(18)
    _json_line(
        _desk_cli(
            env,
            workdir,
            ["user", "create", "--email", BENCH_EMAIL, "--name", "Bench Supervisor", "--role", "supervisor"],
            stdin=password + "\n",
        ),
        "desk user create",
    )
    integration = _json_line(
        _desk_cli(env, workdir, ["integration", "create", "--name", "bench"]), "desk integration create"
    )
    integration_token = integration.get("token")
    if not isinstance(integration_token, str):
        raise BenchError(f"desk integration create printed no token: {integration}")

    with httpx.Client(base_url=server.http, timeout=HTTP_TIMEOUT_S) as client:
        login = _expect(
            client.post("/api/v1/auth/token", json={"email": BENCH_EMAIL, "password": password}),
            200,
            "POST /api/v1/auth/token",
        )
        staff_token = login["token"]
        as_ai = {"Authorization": f"Bearer {integration_token}"}
        as_staff = {"Authorization": f"Bearer {staff_token}"}
        chat_urls: list[str] = []
        for i in range(conversations):
            created = _expect(
                client.post(
                    "/api/v1/conversations",
                    headers=as_ai,
                    json={
                        "customer": {"external_id": f"bench-{i}", "name": f"Bench customer {i}"},
                        "channel": "web",
                        "metadata": {"bench": True},
                    },
                ),
                201,
                "POST /api/v1/conversations",
            )
            conversation_id = created["id"]
            _expect(
                client.post(
                    "/api/v1/escalations",
                    headers={**as_ai, "Idempotency-Key": str(uuid.uuid4())},
                    json={
                        "conversation_id": conversation_id,
                        "reason": {"code": "user_request", "detail": "benchmark", "confidence": 0.5},
                        "priority": "normal",
                        "summary": "Benchmark conversation.",
                    },
                ),
                201,
                "POST /api/v1/escalations",
            )
            claimed = _expect(
                client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=as_staff),
                200,
                f"POST /api/v1/conversations/{conversation_id}/claim",
            )
            if claimed.get("status") != "assigned":
                raise BenchError(f"claim left conversation {conversation_id} in status {claimed.get('status')!r}")
            token = urllib.parse.quote(created["customer_token"], safe="")
            chat_urls.append(f"{server.ws}/ws/chat?token={token}")
    staff_url = f"{server.ws}/ws/staff?token={urllib.parse.quote(staff_token, safe='')}"
    return DeskSetup(staff_url=staff_url, chat_urls=chat_urls)


# --------------------------------------------------------------------------------------------------------
# Load


def run_load(config: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench._load"],
            input=json.dumps(config).encode(),
            stdout=subprocess.PIPE,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"the load generator did not finish within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise BenchError(f"the load generator failed with code {proc.returncode} (its errors are above)")
    result = json.loads(proc.stdout)
    if not isinstance(result, dict):
        raise BenchError("the load generator printed something other than a JSON object")
    return result


def _load_timeout(args: argparse.Namespace, targets: int) -> float:
    # Each run: its duration, the drain, and as long again to let an overloaded server finish its backlog.
    per_phase = float(args.duration) + 2 * float(args.drain_timeout) + 1.0
    return 60.0 + targets * (len(args.rates) + 1) * per_phase


# --------------------------------------------------------------------------------------------------------
# Report


def _verdict(desk: dict[str, Any]) -> bool:
    lat = desk["latency_ms"]
    exact = desk["lost"] == 0 and desk["duplicates"] == 0 and desk["out_of_seq_order"] == 0
    return bool(exact and lat["p50"] <= TARGET_P50_MS and lat["p99"] <= TARGET_P99_MS)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) and not math.isnan(b) else math.nan


def _ms(stats: dict[str, float] | None, key: str) -> str:
    return "-" if stats is None or math.isnan(stats[key]) else f"{stats[key]:.2f}"


def _times(ratio: float) -> str:
    """A ratio in six characters: 7.3x, 1208x."""
    if math.isnan(ratio):
        return f"{'-':>6}"
    return f"{ratio:>5.1f}x" if ratio < 100 else f"{ratio:>5.0f}x"


def render_table(title: str, rows: list[dict[str, Any]], has_desk: bool) -> str:
    paths = ["desk", "relay"] if has_desk else ["relay"]
    head1 = f"{'offered':>8} "
    head2 = f"{'msg/s':>8} "
    for path in paths:
        label = "Desk" if path == "desk" else "bare relay"
        head1 += f"| {label + ': achieved msg/s, latency ms':<47}"
        head2 += f"| {'achieved':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'lost':>5} "
    if has_desk:
        head1 += f"| {'Desk / relay':<{14}}| {'target':<6}"
        head2 += f"| {'p50':>6} {'p99':>6} | {'':<6}"
    lines = [title, head1.rstrip(), head2.rstrip(), "-" * len(head2.rstrip())]
    for row in rows:
        line = f"{row['offered_rate']:>8.0f} "
        for path in paths:
            r = row[path]
            lat = r["latency_ms"]
            line += (
                f"| {r['achieved_rate']:>8.0f} {lat['p50']:>7.2f} {lat['p90']:>7.2f} {lat['p99']:>7.2f} "
                f"{lat['max']:>7.1f} {r['lost']:>5} "
            )
        if has_desk:
            d, r = row["desk"]["latency_ms"], row["relay"]["latency_ms"]
            verdict = "pass" if _verdict(row["desk"]) else "FAIL"
            line += f"| {_times(_ratio(d['p50'], r['p50']))} {_times(_ratio(d['p99'], r['p99']))} | {verdict}"
        lines.append(line.rstrip())
    if has_desk:
        at_target = [row for row in rows if row["offered_rate"] == TARGET_RATE]
        if at_target:
            ok = _verdict(at_target[0]["desk"])
            lines.append(
                f"target at {TARGET_RATE:.0f} msg/s (p50 ≤ {TARGET_P50_MS:.0f} ms, "
                f"p99 ≤ {TARGET_P99_MS:.0f} ms, nothing lost): {'PASS' if ok else 'FAIL'}"
            )
        else:
            lines.append(f"target rate {TARGET_RATE:.0f} msg/s not among --rates: no verdict")
    notes: list[str] = []
    for row in rows:
        for path in paths:
            r = row[path]
            lag = r["client_send_lag_ms"]
            if lag["p99"] > 2.0:
                notes.append(
                    f"  {path} at {row['offered_rate']:.0f}/s: the client sent late (send lag p99 "
                    f"{lag['p99']:.1f} ms, max {lag['max']:.1f} ms); that lag is inside the latency above"
                )
            notes.extend(f"  {path} at {row['offered_rate']:.0f}/s: {e}" for e in r["errors"][:3])
            if r["duplicates"] or r["out_of_seq_order"]:
                notes.append(
                    f"  {path} at {row['offered_rate']:.0f}/s: {r['duplicates']} duplicates and "
                    f"{r['out_of_seq_order']} messages out of seq order reached the staff socket"
                )
    if has_desk:
        acks = ", ".join(
            f"{row['offered_rate']:.0f}/s {_ms(row['desk']['ack_latency_ms'], 'p50')}"
            f"/{_ms(row['desk']['ack_latency_ms'], 'p99')}"
            for row in rows
        )
        lines.append(f"Desk ack to the customer (message stored), p50/p99 ms: {acks}")
    if notes:
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Main


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from exc
    if not rates or any(r <= 0 or r > 100_000 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive messages per second (at most 100000)")
    return rates


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.message_path",
        description="Customer socket → staff socket latency of Desk's message path beside a bare relay, "
        "under open-loop load at fixed offered rates.",
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=[250.0, 500.0, 1000.0],
        help="msg/s, comma-separated (default 250,500,1000)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per rate and path (default 10)")
    parser.add_argument(
        "--conversations",
        type=int,
        default=50,
        help="claimed conversations, one customer socket each (default 50)",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up per path before measuring (default 2)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for stragglers after the last send, twice as long while they still arrive; "
        "later ones count as lost (default 5)",
    )
    parser.add_argument(
        "--relay-only",
        action="store_true",
        help="measure only the bare relay (checks the client and the machine)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write JSON results to bench/results/")
    args = parser.parse_args(argv)
    if not 1 <= args.conversations <= 1000:
        parser.error("--conversations must be between 1 and 1000")
    if not 0.5 <= args.duration <= 600:
        parser.error("--duration must be between 0.5 and 600 seconds")
    if not 0 <= args.warmup <= 60 or not 1 <= args.drain_timeout <= 120:
        parser.error("--warmup must be 0..60 s and --drain-timeout 1..120 s")
    return args


def save_report(name: str, report: dict[str, Any]) -> Path:
    """Write a benchmark's report as bench/results/<name>-<UTC time>.json; returns where, relative when it can."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(_finite(report), indent=2, allow_nan=False, default=str) + "\n")
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def _finite(value: Any) -> Any:
    """The report with NaN (no samples) written as null, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot (Linux), or None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy(seconds: float = 1.0) -> float | None:
    """The share of the machine's CPU that was busy over the next `seconds` (before the benchmark starts
    anything), or None where /proc/stat is missing."""
    before = _cpu_times()
    time.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "note": "load generator, Desk and relay share this machine's CPUs",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    databases = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if args.relay_only:
        databases = ["none"]
    cpus = os.cpu_count() or 0
    started = time.monotonic()
    header = (
        f"Desk message path: customer socket → staff socket, open loop, {args.conversations} conversations, "
        f"{args.duration:g} s per rate and path, warm-up {args.warmup:g} s.\n"
        f"The client (load generator) and the servers share this {cpus}-core machine; "
        "the client is a separate process."
    )
    print(header, flush=True)
    busy = machine_busy()
    if busy is not None and busy > 0.15:
        print(
            f"WARNING: {busy:.0%} of the CPU was busy before the benchmark started (other processes); "
            "the figures will be noisy.",
            flush=True,
        )
    report: dict[str, Any] = {
        "benchmark": "message_path",
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {**_machine(), "busy_before_start": busy},
        "options": {
            "db": args.db,
            "rates": args.rates,
            "duration_s": args.duration,
            "conversations": args.conversations,
            "warmup_s": args.warmup,
            "drain_timeout_s": args.drain_timeout,
        },
        "target": {"rate": TARGET_RATE, "p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS},
        "databases": {},
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="desk-bench-") as tmp:
        workdir = Path(tmp)
        with relay_server(workdir) as relay:
            relay_target = {
                "name": "relay",
                "kind": "relay",
                "staff_url": f"{relay.ws}/ws/agent",
                "chat_urls": [f"{relay.ws}/ws/chat"] * args.conversations,
            }
            for db in databases:
                try:
                    result = _run_database(db, args, workdir, relay, relay_target)
                except BenchError as exc:
                    failures.append(f"{db}: {exc}")
                    _log(f"\n{db}: the benchmark could not run:\n{exc}\n")
                    report["databases"][db] = {"error": str(exc)}
                    continue
                report["databases"][db] = result
                if result.get("broken"):
                    details = "; ".join(f"{k}: {v}" for k, v in result["broken"].items())
                    failures.append(f"{db}: a socket broke during the run ({details})")
                    for name, tail in result.get("server_log_tails", {}).items():
                        _log(f"--- {name} log (last lines) ---\n{tail}")
                title = {"sqlite": "SQLite", "postgres": "PostgreSQL", "none": "bare relay only"}[db]
                table = render_table(f"\n== {title} ==", result["rates"], has_desk=db != "none")
                print(table, flush=True)
                cpu = result.get("cpu_s", {})
                print("CPU seconds used: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()), flush=True)
                other = cpu.get("other processes", 0.0)
                if other > 0.05 * result.get("wall_s", 0.0) * cpus:
                    print(
                        f"WARNING: other processes used {other:.1f} CPU-seconds during these "
                        f"{result['wall_s']:.0f} s; the figures are disturbed.",
                        flush=True,
                    )
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    report["errors"] = failures
    if not args.no_save:
        print(f"\nresults: {save_report('message_path', report)}")
    print(f"elapsed: {report['elapsed_s']} s")
    if failures:
        print("errors:\n  " + "\n  ".join(f.splitlines()[0] for f in failures))
        return 2
    return 0


def _run_database(
    db: str, args: argparse.Namespace, workdir: Path, relay: Server, relay_target: dict[str, Any]
) -> dict[str, Any]:
    targets: list[dict[str, Any]] = [relay_target]
    label = db
    if db == "none":
        config = _load_config(args, label, targets)
        return _measure(config, args, {"relay": relay})
    with contextlib.ExitStack() as stack:
        if db == "sqlite":
            dbdir = workdir / "sqlite"
            dbdir.mkdir(exist_ok=True)
            database_url = f"sqlite:///{dbdir / 'bench.db'}"
        else:
            database_url = stack.enter_context(postgres_database())
        deskdir = workdir / f"desk-{db}"
        deskdir.mkdir(exist_ok=True)
        port = free_port()
        env = _desk_env(database_url, port, deskdir)
        _log(f"[{db}] starting desk serve on 127.0.0.1:{port}")
        desk = stack.enter_context(_server(f"desk-{db}", [_bin("desk"), "serve"], env, port, deskdir))
        setup_started = time.monotonic()
        setup = setup_desk(desk, env, deskdir, args.conversations)
        took = time.monotonic() - setup_started
        _log(f"[{db}] {args.conversations} conversations created, escalated and claimed in {took:.1f} s")
        targets.append({"name": "desk", "kind": "desk", "staff_url": setup.staff_url, "chat_urls": setup.chat_urls})
        config = _load_config(args, label, targets)
        result = _measure(config, args, {"relay": relay, "desk": desk})
        if desk.proc.poll() is not None:
            raise BenchError(f"desk serve exited with code {desk.proc.returncode} during the run:\n{desk.log_tail()}")
        result["database_url"] = database_url.split("@")[-1] if db == "postgres" else "sqlite (temporary file)"
        return result


def _load_config(args: argparse.Namespace, label: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "label": label,
        "targets": targets,
        "rates": args.rates,
        "duration": args.duration,
        "warmup": args.warmup,
        "warmup_rate": min(args.rates),
        "drain_timeout": args.drain_timeout,
        "settle": 0.5,
    }


def _measure(config: dict[str, Any], args: argparse.Namespace, servers: dict[str, Server]) -> dict[str, Any]:
    before, pg_before = _cpu_snapshot(servers)
    started = time.monotonic()
    result = run_load(config, _load_timeout(args, len(config["targets"])))
    wall = time.monotonic() - started
    after, pg_after = _cpu_snapshot(servers)
    cpu = {name: round(after[name] - before[name], 2) for name in before if name in after}
    postgres = sum(used - pg_before.get(pid, 0.0) for pid, used in pg_after.items())
    if postgres > 0:
        cpu["postgres"] = round(postgres, 2)
    if "machine" in cpu:
        known = sum(v for k, v in cpu.items() if k != "machine")
        cpu["other processes"] = round(max(0.0, cpu.pop("machine") - known), 2)
    result["cpu_s"] = cpu
    result["wall_s"] = round(wall, 1)
    if result.get("broken"):
        result["server_log_tails"] = {name: srv.log_tail() for name, srv in servers.items()}
    return result


def _cpu_snapshot(servers: dict[str, Server]) -> tuple[dict[str, float], dict[int, float]]:
    """CPU seconds used so far: by the machine (user + system), the load generator (reaped children) and each
    server; and by each PostgreSQL process. Linux only; what cannot be read is left out."""
    ticks = os.sysconf("SC_CLK_TCK")
    snapshot: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:4]]
        snapshot["machine"] = sum(fields) / ticks
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot["client"] = children.ru_utime + children.ru_stime
    for name, srv in servers.items():
        used = _process_cpu(srv.proc.pid)
        if used is not None:
            snapshot[name] = used
    postgres: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
                postgres[int(stat.parent.name)] = _stat_cpu(text)
    return snapshot, postgres


def _stat_cpu(text: str) -> float:
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux), or None."""
    try:
        return _stat_cpu(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


if __name__ == "__main__":
    sys.exit(main())
