"""`flask db backup`: an online copy of the SQLite database."""

import sqlite3

from tests.conftest import build_app
from tests.positions.helpers import snap, store


def test_backup_copies_every_row_and_passes_integrity_check(app, tmp_path):
    store(app, [snap(minutes=m, amount=f"0.{m}00000000000000000001") for m in range(50)])
    target = tmp_path / "backup.sqlite3"

    result = app.test_cli_runner().invoke(args=["db", "backup", str(target)])

    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output
    with sqlite3.connect(target) as conn:
        amounts = [
            row[0] for row in conn.execute("SELECT amount FROM position ORDER BY timestamp")
        ]
    assert len(amounts) == 50
    assert amounts[1] == "0.100000000000000000001"
    assert not (tmp_path / "backup.sqlite3.partial").exists()


def test_backup_dry_run_copies_nothing(app, tmp_path):
    target = tmp_path / "backup.sqlite3"

    result = app.test_cli_runner().invoke(args=["db", "backup", str(target), "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "Dry run: nothing copied." in result.output
    assert not target.exists()


def test_backup_refuses_to_overwrite_without_force(app, tmp_path):
    target = tmp_path / "backup.sqlite3"
    target.write_text("an older backup")
    runner = app.test_cli_runner()

    refused = runner.invoke(args=["db", "backup", str(target)])
    assert refused.exit_code == 1
    assert "--force" in refused.output
    assert target.read_text() == "an older backup"

    forced = runner.invoke(args=["db", "backup", str(target), "--force"])
    assert forced.exit_code == 0, forced.output
    assert target.read_bytes().startswith(b"SQLite format 3")


def test_backup_of_postgresql_points_to_pg_dump(postgres_url, tmp_path):
    app = build_app(postgres_url)

    result = app.test_cli_runner().invoke(args=["db", "backup", str(tmp_path / "x")])

    assert result.exit_code == 1
    assert "pg_dump" in result.output
    assert not (tmp_path / "x").exists()
