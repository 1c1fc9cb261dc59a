"""Peak memory of `flask positions export`: a million rows cost no more than ten thousand.

This measures memory, not speed: each export runs in its own process and its peak
resident set size (VmHWM, as wait4 reports it) is compared with the other's.
Takes about half a minute, most of it exporting the million rows.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.extensions import db
from tests.conftest import build_app

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="reads peak RSS with os.wait4 (Linux)"),
    pytest.mark.timeout(300),
]

PROJECT = Path(__file__).resolve().parents[2]
BIG, SMALL = 1_000_000, 10_000
# What the bigger export may add to the peak: far less than its rows would take in memory.
ALLOWED_GROWTH_KB = 30 * 1024


def bulk_load(path: Path, counts: dict[str, int]) -> None:
    """Create the schema, then write rows straight into `position` (faster than ingest)."""
    app = build_app(f"sqlite:///{path}")
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    with connection:
        for asset, count in counts.items():
            connection.executemany(
                "INSERT INTO position (account, asset, timestamp, amount, price, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                _rows(asset, count),
            )
    connection.close()


def _rows(asset: str, count: int):
    # The stored formats of app/db_types.py: decimals as text, naive UTC text times.
    for i in range(count):
        day, rest = divmod(i, 86_400)
        hour, rest = divmod(rest, 3_600)
        minute, second = divmod(rest, 60)
        moment = f"2026-01-{day + 1:02d} {hour:02d}:{minute:02d}:{second:02d}.000000"
        yield ("main", asset, moment, f"{i}.{i % 997:03d}", "65000.25", moment)


def export_in_subprocess(database: Path, asset: str, stderr_path: Path) -> tuple[int, int]:
    """Run the export in a fresh process; return (lines written, peak RSS in KiB)."""
    env = {
        **os.environ,
        "TRADINGMONITOR_CONFIG": "development",
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "memory-test-secret-key-0123456789abcdef",
    }
    command = [sys.executable, "-m", "flask", "--app", "app", "positions", "export"]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--asset", asset],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        lines = 0
        with process.stdout:
            while chunk := process.stdout.read(1 << 20):
                lines += chunk.count(b"\n")
        # wait4 gives this child's own peak, unlike RUSAGE_CHILDREN's running maximum.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, stderr_path.read_text()
    return lines, usage.ru_maxrss


def test_exporting_a_million_rows_keeps_peak_memory_flat(tmp_path):
    database = tmp_path / "big.sqlite3"
    bulk_load(database, {"BTC": BIG, "ETH": SMALL})

    small_lines, small_peak = export_in_subprocess(database, "ETH", tmp_path / "small.err")
    big_lines, big_peak = export_in_subprocess(database, "BTC", tmp_path / "big.err")

    print(
        f"\npeak RSS: {SMALL:,} rows {small_peak / 1024:.1f} MiB, "
        f"{BIG:,} rows {big_peak / 1024:.1f} MiB, "
        f"growth {(big_peak - small_peak) / 1024:+.1f} MiB"
    )
    assert (small_lines, big_lines) == (SMALL + 1, BIG + 1)  # rows plus the header
    assert big_peak < small_peak + ALLOWED_GROWTH_KB
