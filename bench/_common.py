"""Small helpers shared by the benchmark's processes."""

from __future__ import annotations

import math
import socket
from typing import Any

# The relay runs on the same uvicorn stack and settings as ``desk serve`` (desk/serve.py): uvloop, httptools and
# websockets picked automatically by uvicorn, 64 KiB frames, pings every 20 s, no access log.
UVICORN_OPTIONS: dict[str, Any] = {
    "ws_max_size": 64 * 1024,
    "ws_ping_interval": 20,
    "log_level": "warning",
    "access_log": False,
}

# The target of issue 2, point 11: at 1,000 msg/s, on SQLite and on PostgreSQL.
TARGET_RATE = 1000.0
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(values_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of a list of nanosecond durations."""
    ms = sorted(v / 1e6 for v in values_ns)
    mean = sum(ms) / len(ms) if ms else math.nan
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": ms[-1] if ms else math.nan,
        "mean": mean,
        "count": float(len(ms)),
    }
