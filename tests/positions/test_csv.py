"""CSV import and export: `flask positions import/export` and the history page's download."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from app.auth.models import User
from app.extensions import db
from app.positions import cli, csv_io
from app.positions.ingest import Snapshot
from app.positions.models import LatestPosition, Position
from tests.positions.helpers import T0, snap, store

HEADER = "account,asset,timestamp,amount,price\r\n"


def write(tmp_path, content: str | bytes, name="positions.csv"):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def run_import(app, path):
    return app.test_cli_runner().invoke(args=["positions", "import", str(path)])


def run_export(app, *options) -> str:
    result = app.test_cli_runner().invoke(args=["positions", "export", *options])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.decode()


def stored(app) -> list[tuple]:
    """Every snapshot as text, in export order."""
    with app.app_context():
        positions = db.session.execute(
            db.select(Position).order_by(Position.asset, Position.timestamp, Position.id)
        ).scalars()
        return [
            (
                p.account,
                p.asset,
                p.timestamp.isoformat(),
                format(p.amount, "f"),
                None if p.price is None else format(p.price, "f"),
            )
            for p in positions
        ]


def clear(app):
    with app.app_context():
        db.session.execute(db.delete(Position))
        db.session.execute(db.delete(LatestPosition))
        db.session.commit()


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


GOOD_FILE = (
    "\ufeff"  # a byte-order mark, as spreadsheets write
    + HEADER
    + "main,BTC,2026-03-01T12:00:00Z,0.1,0.30000000000000004\r\n"
    + "main,BTC,2026-03-01T13:00:00.250000+01:00,-3,\r\n"
    + "\r\n"
    + 'hedge,"ETH, wrapped",2026-03-01T12:00:00.000001Z,1.000000000000000001,2E+3\r\n'
)


def test_import_stores_every_line_exactly_and_updates_latest(any_app, tmp_path):
    result = run_import(any_app, write(tmp_path, GOOD_FILE))
    assert result.exit_code == 0, result.output
    assert "Inserted 3, duplicates 0." in result.stdout
    assert stored(any_app) == [
        ("main", "BTC", "2026-03-01T12:00:00+00:00", "0.1", "0.30000000000000004"),
        ("main", "BTC", "2026-03-01T12:00:00.250000+00:00", "-3", None),
        (
            "hedge",
            "ETH, wrapped",
            "2026-03-01T12:00:00.000001+00:00",
            "1.000000000000000001",
            "2000",
        ),
    ]
    with any_app.app_context():
        latest = db.session.get(LatestPosition, ("main", "BTC"))
        assert (latest.amount, latest.price) == (Decimal("-3"), None)


def test_reimporting_the_same_file_adds_nothing(any_app, tmp_path):
    path = write(tmp_path, GOOD_FILE)
    assert run_import(any_app, path).exit_code == 0
    before = stored(any_app)
    again = run_import(any_app, path)
    assert again.exit_code == 0, again.output
    assert "Inserted 0, duplicates 3." in again.stdout
    assert stored(any_app) == before


GOOD_LINES = HEADER + "main,BTC,2026-03-01T12:00:00Z,1,2\r\n\r\n"  # lines 1-3


@pytest.mark.parametrize(
    "bad_line, column, problem",
    [
        ("main,BTC,2026-03-01T12:05:00Z,1", "price", "is missing"),
        ("main,BTC,2026-03-01T12:05:00Z,1.2.3,", "amount", "not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z,NaN,", "amount", "'NaN' is not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z,1,Infinity", "price", "not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z,-inf,", "amount", "not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z,1_000,", "amount", "not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z, 1,", "amount", "not a finite decimal"),
        ("main,BTC,2026-03-01T12:05:00Z,1e999999999,", "amount", "exponent"),
        ("main,BTC,2026-03-01T12:05:00Z,,1", "amount", "is empty"),
        ("main,BTC,2026-03-01T12:05:00,1,", "timestamp", "has no timezone"),
        ("main,BTC,2026-03-01,1,", "timestamp", "has no timezone"),
        ("main,BTC,yesterday,1,", "timestamp", "is not ISO 8601"),
        ("main,BTC,2026-03-01T12:05:00.1234567Z,1,", "timestamp", "more precision"),
        ("main,BTC,2100-01-01T00:00:00Z,1,", "timestamp", "2100-01-01T00:00:00Z is in the future"),
        ("main,BTC,1969-12-31T23:59:59Z,1,", "timestamp", "before 1970-01-01T00:00:00Z"),
        ("main,BTC,0001-01-01T00:00:00+00:14,1,", "timestamp", "out of range"),
        ("main,BTC,9999-12-31T23:59:59-01:00,1,", "timestamp", "out of range"),
        ("main,BTC,2026-03-01T12:05:00Z,\uff11\uff12\uff13,", "amount", "digits 0-9"),
        ("main,BTC,2026-03-01T12:05:00Z,\u0661\u0662\u0663,", "amount", "digits 0-9"),
        ("main,BTC,2026-03-01T12:05:00Z,1,1.\uff15", "price", "digits 0-9"),
        (",BTC,2026-03-01T12:05:00Z,1,", "account", "is empty"),
        ("main, BTC,2026-03-01T12:05:00Z,1,", "asset", "without leading or trailing spaces"),
        ('"ma\nin",BTC,2026-03-01T12:05:00Z,1,', "account", "must be printable"),
        ("m" * 65 + ",BTC,2026-03-01T12:05:00Z,1,", "account", "longer than 64"),
    ],
)
def test_bad_line_exits_non_zero_naming_line_and_column_and_stores_nothing(
    any_app, tmp_path, bad_line, column, problem
):
    result = run_import(any_app, write(tmp_path, GOOD_LINES + bad_line + "\r\n"))
    assert result.exit_code == 1
    assert f"line 4, column '{column}'" in result.stderr
    assert problem in result.stderr
    assert "Nothing was stored." in result.stderr
    assert stored(any_app) == []


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "line 1: the file is empty"),
        ("main,BTC,2026-03-01T12:00:00Z,1,2\r\n", "line 1: unknown column 'main'"),
        ("account,asset,timestamp,amount\r\n", "line 1, column 'price': missing from the header"),
        ("account,asset,timestamp,amount,price,note\r\n", "unknown column 'note'"),
        (
            "account,asset,asset,timestamp,amount,price\r\n",
            "line 1, column 'asset': appears twice",
        ),
        (GOOD_LINES + "main,BTC,2026-03-01T12:05:00Z,1,,x\r\n", "line 4: 6 values"),
        (
            GOOD_LINES.encode() + b"main,BTC,2026-03-01T12:05:00Z,\xff,\r\n",
            "line 4: not UTF-8 text",
        ),
        (GOOD_LINES + 'main,"BTC"x,2026-03-01T12:05:00Z,1,\r\n', "line 4: not valid CSV"),
    ],
)
def test_bad_header_or_file_is_refused_naming_the_line(any_app, tmp_path, content, message):
    result = run_import(any_app, write(tmp_path, content))
    assert result.exit_code == 1
    assert message in result.stderr
    assert stored(any_app) == []


def test_header_may_name_the_columns_in_any_order(app, tmp_path):
    content = "Price, Amount ,timestamp,asset,account\r\n,7,2026-03-01T12:00:00Z,BTC,main\r\n"
    assert run_import(app, write(tmp_path, content)).exit_code == 0
    assert stored(app) == [("main", "BTC", "2026-03-01T12:00:00+00:00", "7", None)]


def test_bad_line_keeps_earlier_batches_and_nothing_of_its_own(any_app, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "BATCH_SIZE", 2)
    lines = [f"main,BTC,2026-03-01T12:0{m}:00Z,{m},\r\n" for m in range(3)]
    content = HEADER + "".join(lines) + "main,BTC,2026-03-01T12:09:00Z,oops,\r\n"
    result = run_import(any_app, write(tmp_path, content))
    assert result.exit_code == 1
    assert "line 5, column 'amount'" in result.stderr
    assert "Lines up to 3 were stored (inserted 2, duplicates 0)" in result.stderr
    # Line 4 was good but belongs to the failing batch.
    assert [row[3] for row in stored(any_app)] == ["0", "1"]


def test_conflict_with_a_stored_snapshot_exits_non_zero_and_keeps_nothing_of_the_batch(
    any_app, tmp_path
):
    store(any_app, [snap(amount="1.5", price="100")])
    content = (
        HEADER
        + "main,BTC,2026-03-01T12:01:00Z,9,\r\n"
        + "main,BTC,2026-03-01T13:00:00+01:00,2.5,100\r\n"  # the stored key, in UTC+1
    )
    result = run_import(any_app, write(tmp_path, content))
    assert result.exit_code == 1
    assert "1 snapshots differ" in result.stderr
    assert "line 3: 'main' 'BTC' 2026-03-01T12:00:00Z" in result.stderr
    assert stored(any_app) == [("main", "BTC", "2026-03-01T12:00:00+00:00", "1.5", "100")]


def test_conflict_between_two_lines_of_the_file_names_both(any_app, tmp_path):
    content = (
        HEADER
        + "main,BTC,2026-03-01T12:00:00Z,1,\r\n"
        + "main,BTC,2026-03-01T12:00:00Z,1,5\r\n"  # same key, a price this time
    )
    result = run_import(any_app, write(tmp_path, content))
    assert result.exit_code == 1
    assert "lines 2, 3: 'main' 'BTC' 2026-03-01T12:00:00Z" in result.stderr
    assert stored(any_app) == []


ROUND_TRIP_VALUES = [
    ("0.1", "0.2"),
    ("0.30000000000000004", "0.30000000000000004"),
    ("123456789.123456789012345678", "0.000000000000000001"),
    ("-3", None),
    ("1.500", "100.10"),
    ("0", None),
]


def test_export_then_import_round_trips_exactly(any_app, tmp_path):
    snapshots = [
        snap(account=account, minutes=i, amount=amount, price=price)
        for i, (amount, price) in enumerate(ROUND_TRIP_VALUES)
        for account in ("main", "hedge")
    ]
    snapshots.append(
        snap(asset="ETH", at=T0 + timedelta(microseconds=7), amount="-0.5", price=None)
    )
    store(any_app, snapshots)
    exported = run_export(any_app)
    rows = parse(exported)
    assert rows[0] == ["account", "asset", "timestamp", "amount", "price"]
    # One moment's snapshots of a batch are stored by account, whatever order they came in.
    assert rows[1] == ["hedge", "BTC", "2026-03-01T12:00:00Z", "0.1", "0.2"]
    assert rows[2] == ["main", "BTC", "2026-03-01T12:00:00Z", "0.1", "0.2"]
    assert [r[3:] for r in rows[1:-1:2]] == [[a, p or ""] for a, p in ROUND_TRIP_VALUES]
    assert rows[-1] == ["main", "ETH", "2026-03-01T12:00:00.000007Z", "-0.5", ""]
    assert exported.endswith("\r\n") and len(rows) == 14

    before = stored(any_app)
    clear(any_app)
    result = run_import(any_app, write(tmp_path, exported))
    assert result.exit_code == 0, result.output
    assert "Inserted 13, duplicates 0." in result.stdout
    assert stored(any_app) == before
    assert run_export(any_app) == exported


def test_export_filters_by_asset_account_and_time(any_app):
    store(
        any_app,
        [
            snap(account=account, asset=asset, minutes=m, amount=f"{m}")
            for asset in ("ETH", "BTC")
            for account in ("a", "b")
            for m in range(5)
        ],
    )
    everything = parse(run_export(any_app))[1:]
    assert len(everything) == 20
    assert [r[1] for r in everything] == ["BTC"] * 10 + ["ETH"] * 10
    assert [r[2] for r in everything[:4]] == [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:01:00Z",
        "2026-03-01T12:01:00Z",
    ]
    only_eth = parse(run_export(any_app, "--asset", "ETH"))[1:]
    assert {r[1] for r in only_eth} == {"ETH"} and len(only_eth) == 10
    filtered = parse(
        run_export(
            any_app,
            "--account",
            "b",
            "--from",
            "2026-03-01T13:01:00+01:00",
            "--to",
            "2026-03-01T12:04Z",
        )
    )[1:]
    assert [(r[0], r[1], r[3]) for r in filtered] == [
        ("b", asset, m) for asset in ("BTC", "ETH") for m in ("1", "2", "3")
    ]
    assert parse(run_export(any_app, "--asset", "DOGE")) == [list(csv_io.COLUMNS)]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--from", "2026-03-01T12:00"], "has no timezone"),
        (["--to", "soon"], "is not ISO 8601"),
        (["--from", "9999-12-31T23:59:59-01:00"], "out of range"),
        (["--from", "2026-03-02T00:00Z", "--to", "2026-03-01T00:00Z"], "must be before --to"),
    ],
)
def test_export_refuses_bad_time_options(app, runner, options, message):
    result = runner.invoke(args=["positions", "export", *options])
    assert result.exit_code == 2
    assert message in result.stderr


def test_export_pages_through_equal_timestamps_without_gaps_or_repeats(any_app):
    store(
        any_app,
        [
            snap(account=f"acct{a}", minutes=m, amount=f"{m}.{a}")
            for m in range(3)
            for a in range(5)
        ],
    )
    with any_app.app_context():
        paged = [r.amount for r in csv_io.export_rows(asset="BTC", page_size=2)]
        whole = [r.amount for r in csv_io.export_rows(asset="BTC", page_size=1000)]
    assert len(paged) == 15 and paged == whole
    assert paged == sorted(paged)


def test_export_text_comes_in_page_sized_chunks(app, monkeypatch):
    monkeypatch.setattr(csv_io, "EXPORT_PAGE_SIZE", 2)
    store(app, [snap(minutes=m) for m in range(5)])
    with app.app_context():
        chunks = list(csv_io.csv_chunks(csv_io.export_rows()))
    assert [chunk.count("\r\n") for chunk in chunks] == [3, 2, 1]


def test_each_command_has_help(runner):
    for args in (["positions"], ["positions", "import"], ["positions", "export"]):
        result = runner.invoke(args=[*args, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
    help_text = runner.invoke(args=["positions", "import", "--help"]).stdout
    assert "Store the snapshots of a CSV file" in help_text


# --- the web download ---------------------------------------------------------------


def test_download_streams_the_filtered_range_as_an_attachment(any_app, viewer_client):
    with any_app.app_context():
        db.session.execute(db.update(User).values(timezone="Asia/Tokyo"))
        db.session.commit()
    store(
        any_app,
        [
            snap(account=account, minutes=m, amount=f"-{m}")
            for account in ("a", "b")
            for m in range(5)
        ]
        + [snap(asset="ETH")],
    )
    # 21:01 to 21:03 in Tokyo is 12:01 to 12:03 UTC.
    response = viewer_client.get(
        "/positions.csv?asset=BTC&account=a&from=2026-03-01T21:01&to=2026-03-01T21:03"
    )
    assert response.status_code == 200
    assert response.is_streamed
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment; filename=positions-BTC-a.csv"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data(as_text=True) == (
        HEADER + "a,BTC,2026-03-01T12:01:00Z,-1,100\r\n" + "a,BTC,2026-03-01T12:02:00Z,-2,100\r\n"
    )
    everything = parse(viewer_client.get("/positions.csv?asset=BTC").get_data(as_text=True))
    assert len(everything) == 11 and {r[1] for r in everything[1:]} == {"BTC"}


def test_history_page_links_to_the_download_of_its_filters(any_app, viewer_client):
    store(any_app, [snap(account="a")])
    html = viewer_client.get("/positions/BTC?account=a&from=2026-03-01T12:00").get_data(
        as_text=True
    )
    assert 'href="/positions.csv?asset=BTC&amp;account=a&amp;from=2026-03-01T12:00"' in html
    assert "Download CSV" in html


@pytest.mark.parametrize(
    "query, status, message",
    [
        ("asset=DOGE", 404, "No data for DOGE"),
        ("", 400, "Name the asset"),
        ("asset=BTC&from=yesterday", 400, "must look like 2026-01-31 14:00"),
        ("asset=BTC&from=2026-03-02T00:00&to=2026-03-01T00:00", 400, "must be before"),
        ("asset=BTC&from=9999-12-31T23:59:59-01:00", 400, "out of range"),
        ("asset=BTC&to=0001-01-01T00:00:00%2B00:14", 400, "out of range"),
    ],
)
def test_download_refuses_unknown_asset_and_bad_filters(
    any_app, viewer_client, query, status, message
):
    store(any_app, [snap()])
    response = viewer_client.get(f"/positions.csv?{query}")
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)


def test_download_needs_a_login(any_app):
    store(any_app, [snap()])
    response = any_app.test_client().get("/positions.csv?asset=BTC")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example","x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    '<script>"a,b"</script>',
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_download_neutralises_formula_names_but_keeps_numbers(any_app, viewer_client, name):
    store(any_app, [snap(account=name, asset=name, amount="-3", price="-0.5")])
    response = viewer_client.get(f"/positions.csv?asset={quote(name, safe='')}")
    assert response.status_code == 200
    [header, row] = parse(response.get_data(as_text=True))
    assert header == list(csv_io.COLUMNS)
    shown = "'" + name if name[0] in "=+-@" else name
    assert row == [shown, shown, "2026-03-01T12:00:00Z", "-3", "-0.5"]
    filename = response.headers["Content-Disposition"].split("filename=")[1]
    assert filename.strip('"').startswith("positions-")
    assert all(c.isalnum() or c in '._-"' for c in filename)
    # The CLI export stays raw, so it imports back to the same names.
    assert parse(run_export(any_app))[1][:2] == [name, name]


def test_unknown_hostile_asset_is_escaped_on_the_404_page(any_app, viewer_client):
    response = viewer_client.get(f"/positions.csv?asset={quote('<script>x</script>')}")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert str(escape("<script>x</script>")) in html and "<script>x" not in html


# --- the property ------------------------------------------------------------------

NAMES = st.sampled_from(["main", "hedge", "=cmd|' /C calc'!A0", 'quote"comma,', "ünï €", "-1"])
DECIMALS = st.integers(min_value=0, max_value=18).flatmap(
    lambda places: st.decimals(
        min_value=-(10**15),
        max_value=10**15,
        places=places,
        allow_nan=False,
        allow_infinity=False,
    )
)
SNAPSHOTS = st.lists(
    st.builds(
        Snapshot,
        account=NAMES,
        asset=NAMES,
        timestamp=st.datetimes(
            min_value=datetime(1970, 1, 1),
            max_value=datetime(2026, 1, 1),  # later ones are refused once in the future
            timezones=st.just(UTC),
        ),
        amount=DECIMALS,
        price=st.none() | DECIMALS,
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda s: s.key,
)


def text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def expected_csv(snapshots: list[Snapshot]) -> str:
    """The export, written out independently: by asset, then time, then account.

    One batch stores one moment's snapshots by account, whatever order they came in.
    """

    def moment(t: datetime) -> str:
        text = t.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{t.microsecond:06d}Z" if t.microsecond else "Z")

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["account", "asset", "timestamp", "amount", "price"])
    for s in sorted(snapshots, key=lambda s: (s.asset, s.timestamp, s.account)):
        price = "" if s.price is None else format(s.price, "f")
        writer.writerow([s.account, s.asset, moment(s.timestamp), format(s.amount, "f"), price])
    return out.getvalue()


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(snapshots=SNAPSHOTS)
def test_any_decimals_and_times_round_trip_exactly_through_export_and_import(
    app, tmp_path, snapshots
):
    clear(app)
    store(app, snapshots)
    exported = run_export(app)
    assert exported == expected_csv(snapshots)

    clear(app)
    result = run_import(app, write(tmp_path, exported))
    assert result.exit_code == 0, result.output
    assert f"Inserted {len(snapshots)}, duplicates 0." in result.stdout
    assert run_export(app) == exported
    with app.app_context():
        back = {
            (p.account, p.asset, p.timestamp): (format(p.amount, "f"), text(p.price))
            for p in db.session.execute(db.select(Position)).scalars()
        }
    assert back == {s.key: (format(s.amount, "f"), text(s.price)) for s in snapshots}
