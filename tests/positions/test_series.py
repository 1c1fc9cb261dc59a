"""Chart series, alert markers and overview sparklines as JSON."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from app.alerts.models import Alert, AlertRule, AlertTransition
from app.db_types import utcnow
from app.extensions import db
from app.positions import buckets, series, sparklines
from app.positions.models import LatestPosition, Position
from tests.positions.helpers import EXACT_RANKING, ONE, T0, snap, store, store_exact_ranking

JSON = {"Accept": "application/json"}


def epoch(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()


def get_series(client, asset="BTC", **params):
    return client.get(f"/positions/{quote(asset)}/series", query_string=params, headers=JSON)


def test_small_range_returns_raw_rows_with_exact_strings(any_app, viewer_client):
    store(
        any_app,
        [
            snap(minutes=0, amount="0.10000000000000000001", price="3"),
            snap(minutes=1, amount="-2.50", price=None),
            snap(account="hedge", minutes=0, amount="7", price="0.5"),
        ],
    )
    body = get_series(viewer_client).get_json()
    assert body["asset"] == "BTC"
    assert (body["from"], body["to"]) == (None, None)
    assert body["downsampled"] is False
    assert body["bucket_seconds"] is None
    assert body["point_count"] == 3
    assert body["series"] == [
        {"account": "hedge", "points": [[epoch(T0), "7", "3.5"]]},
        {
            "account": "main",
            "points": [
                [epoch(T0), "0.10000000000000000001", "0.30000000000000000003"],
                [epoch(T0 + timedelta(minutes=1)), "-2.50", None],
            ],
        },
    ]
    assert body["markers"] == []


def test_more_rows_than_the_cap_are_downsampled_to_at_most_1000_points(any_app, viewer_client):
    rows = 1_100
    store(
        any_app,
        [
            snap(account=account, at=T0 + timedelta(seconds=i), amount=str(i % 97))
            for account in ("main", "hedge")
            for i in range(rows)
        ],
    )
    assert any_app.config["CHART_MAX_POINTS"] == 1_000
    body = get_series(viewer_client).get_json()
    assert body["downsampled"] is True
    # 2 accounts: 1000 // (4 * 2) = 125 buckets over the 1,099 s the rows span.
    assert body["bucket_seconds"] == pytest.approx(1_099 / 125)
    assert body["point_count"] == sum(len(s["points"]) for s in body["series"])
    assert 250 < body["point_count"] <= 1_000
    for entry in body["series"]:
        times = [point[0] for point in entry["points"]]
        assert times == sorted(times) and len(set(times)) == len(times)
        # The series keeps its very first and last snapshot and its extremes.
        assert times[0] == epoch(T0) and times[-1] == epoch(T0 + timedelta(seconds=rows - 1))
        amounts = {Decimal(point[1]) for point in entry["points"]}
        assert {Decimal(0), Decimal(96)} <= amounts


def test_the_chart_point_budget_is_a_setting(any_app, viewer_client):
    store(
        any_app,
        [
            snap(account=account, at=T0 + timedelta(seconds=i), amount=str(i % 7))
            for account in ("main", "hedge")
            for i in range(300)
        ],
    )
    any_app.config["CHART_MAX_POINTS"] = 600
    body = get_series(viewer_client).get_json()
    assert (body["downsampled"], body["point_count"]) == (False, 600)
    any_app.config["CHART_MAX_POINTS"] = 599
    body = get_series(viewer_client).get_json()
    assert body["downsampled"] is True
    # 599 // (4 * 2) = 74 buckets a line, each with at most four points.
    assert body["bucket_seconds"] == pytest.approx(299 / 74)
    assert body["point_count"] <= 2 * 74 * 4


def brute_force(rows, max_points):
    """(account, epoch micros) of the expected points, computed the plain way."""
    if len(rows) <= max_points:
        return sorted((account, t) for account, t, _ in rows)
    accounts = {account for account, _, _ in rows}
    count = max(1, max_points // (4 * len(accounts)))
    first = min(t for _, t, _ in rows)
    span = max(t for _, t, _ in rows) - first
    groups = defaultdict(list)
    for account, t, amount in rows:
        index = min(count - 1, (t - first) * count // span) if span else 0
        groups[account, index].append((t, amount))
    keep = set()
    for (account, _), members in groups.items():
        keep.add((account, min(members)[0]))
        keep.add((account, max(members)[0]))
        keep.add((account, min(members, key=lambda m: (m[1], m[0]))[0]))
        keep.add((account, min(members, key=lambda m: (m[1].copy_negate(), m[0]))[0]))
    return sorted(keep)


series_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        # A coarse grid (scaled per example): rows often sit exactly on a bucket edge.
        st.integers(min_value=0, max_value=240),
        st.integers(min_value=-3, max_value=3),
    ),
    min_size=16,
    max_size=80,
    unique_by=lambda row: (row[0], row[1]),
)


@settings(
    max_examples=20,
    # Shrinking re-runs the database work many times; the failing example is shown anyway.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=series_rows,
    unit=st.sampled_from([1, 1_000, 1_000_000]),
    max_points=st.sampled_from([12, 16, 24, 100]),
)
# 14 rows, 3 buckets over 13 us: edges at 13/3 and 26/3 us, so rows 4 and 8 close
# buckets 0 and 1 and rows 5 and 9 open the next ones (edges round up).
@example(rows=[("a", step, step) for step in range(14)], unit=1, max_points=12)
def test_buckets_keep_first_last_lowest_and_highest_row(any_app, rows, unit, max_points):
    # Quarter units: many equal amounts, so ties are exercised; exact as floats too.
    rows = [(account, step * unit, Decimal(quarters) / 4) for account, step, quarters in rows]
    with any_app.app_context():
        db.session.execute(db.delete(Position))
        db.session.execute(db.delete(LatestPosition))
        db.session.commit()
    store(
        any_app,
        [
            snap(account=account, at=T0 + timedelta(microseconds=micros), amount=str(amount))
            for account, micros, amount in rows
        ],
    )
    stamped = [(a, buckets.to_micros(T0 + timedelta(microseconds=m)), x) for a, m, x in rows]
    with any_app.app_context():
        got = series.asset_series("BTC", max_points=max_points)
    points = sorted(
        (entry["account"], round(point[0] * 10**6))
        for entry in got["series"]
        for point in entry["points"]
    )
    assert points == brute_force(stamped, max_points)
    assert got["point_count"] == len(points) <= max_points
    assert got["downsampled"] is (len(rows) > max_points)
    by_key = {(a, t): x for a, t, x in stamped}
    for entry in got["series"]:
        for point in entry["points"]:
            assert Decimal(point[1]) == by_key[entry["account"], round(point[0] * 10**6)]


def test_buckets_rank_amounts_exactly_past_double_precision_and_scale(any_app):
    with any_app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite ranks a bucket's rows by their REAL value (downsampled_rows)")
    # One a second; 16 points, 2 accounts: 2 buckets of 10 rows, one a half.
    store_exact_ranking(any_app, timedelta(seconds=1))
    with any_app.app_context():
        got = series.asset_series("BTC", max_points=16)
    points = sorted(
        (entry["account"], round(point[0] * 10**6), point[1])
        for entry in got["series"]
        for point in entry["points"]
    )
    rows = [
        (account, buckets.to_micros(T0 + timedelta(seconds=i)), Decimal(amount))
        for account in ("main", "hedge")
        for i, amount in enumerate(EXACT_RANKING)
    ]
    text = {(account, t): str(amount) for account, t, amount in rows}
    assert [(a, t) for a, t, _ in points] == brute_force(rows, 16)
    assert all(amount == text[account, t] for account, t, amount in points)
    main = {(t, amount) for account, t, amount in points if account == "main"}
    assert (buckets.to_micros(T0 + timedelta(seconds=2)), ONE) in main
    assert (buckets.to_micros(T0 + timedelta(seconds=12)), "-" + ONE) in main


def test_rows_arriving_after_the_count_still_respect_the_cap(any_app, monkeypatch):
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(30)])
    counted = []
    # As if the count ran before 30 snapshots were committed.
    monkeypatch.setattr(series, "_count_up_to", lambda *args: counted.append(args) or 0)
    with any_app.app_context():
        # A range: the whole history counts from the daily rollups instead.
        got = series.asset_series("BTC", start=T0, max_points=12)
    assert counted
    assert got["downsampled"] is True
    assert got["point_count"] <= 12


def test_range_without_data_is_an_empty_200(any_app, viewer_client):
    store(any_app, [snap(minutes=0)])
    response = get_series(
        viewer_client, **{"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["series"] == [] and body["point_count"] == 0 and body["downsampled"] is False
    assert body["from"] == "2030-01-01T00:00:00+00:00"


def test_from_is_inclusive_and_to_exclusive_in_iso_or_epoch_seconds(any_app, viewer_client):
    store(any_app, [snap(minutes=m, amount=str(m)) for m in range(5)])
    as_iso = get_series(
        viewer_client,
        **{
            "from": (T0 + timedelta(minutes=1)).astimezone(UTC).isoformat(),
            "to": "2026-03-01T14:03:00+02:00",  # T0 + 3 minutes
        },
    ).get_json()
    as_epoch = get_series(
        viewer_client,
        **{"from": str(int(epoch(T0)) + 60), "to": str(epoch(T0) + 180.0)},
    ).get_json()
    amounts = [p[1] for p in as_iso["series"][0]["points"]]
    assert amounts == ["1", "2"]
    assert as_epoch["series"] == as_iso["series"]


def test_unencoded_plus_of_an_offset_is_still_read(any_app, viewer_client):
    store(any_app, [snap(minutes=m) for m in range(3)])
    response = viewer_client.get(
        "/positions/BTC/series?from=2026-03-01T13:01:00+01:00", headers=JSON
    )
    assert response.status_code == 200
    assert response.get_json()["point_count"] == 2


def test_account_filter_returns_only_that_account(any_app, viewer_client):
    store(any_app, [snap(account="main"), snap(account="hedge"), snap(account="other")])
    body = get_series(viewer_client, account="hedge").get_json()
    assert [entry["account"] for entry in body["series"]] == ["hedge"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-03-01T12:00:00"}, "to"),  # no offset
        ({"to": "nan"}, "to"),
        ({"from": "1e300"}, "from"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "100", "to": "100"}, "from"),
        ({"from": "9999-12-31T23:59:59-01:00"}, "from"),
        ({"to": "0001-01-01T00:00:00+00:14"}, "to"),
        ({"from": "99999999999999"}, "from"),  # epoch seconds past year 9999
        ({"from": "\uff11\uff10\uff10"}, "from"),  # full-width digits
    ],
)
def test_bad_range_is_a_400_naming_the_parameter(any_app, viewer_client, params, parameter):
    store(any_app, [snap()])
    response = get_series(viewer_client, **params)
    assert response.status_code == 400
    assert response.is_json
    assert response.get_json()["parameter"] == parameter


def test_unknown_asset_is_a_404_json(any_app, viewer_client):
    response = get_series(viewer_client, asset="NOPE")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_asset_with_a_slash_has_its_series_and_keeps_its_history_page(any_app, viewer_client):
    store(any_app, [snap(asset="BTC/USD", amount="4"), snap(asset="BTC", amount="9")])
    body = viewer_client.get("/positions/BTC/USD/series", headers=JSON).get_json()
    assert body["asset"] == "BTC/USD"
    assert body["series"][0]["points"][0][1] == "4"
    history = viewer_client.get("/positions/BTC/USD")
    assert history.status_code == 200 and history.mimetype == "text/html"
    assert viewer_client.get("/positions/series").status_code == 404  # history, not JSON


def add_transitions(app, asset="BTC", account="main", moments=(), state="firing"):
    with app.app_context():
        rule = AlertRule(name=f"limit {account}", kind="position_above", threshold=Decimal(1))
        rule.severity = "critical"
        alert = Alert(rule=rule, account=account, asset=asset, state=state)
        for i, at in enumerate(moments):
            alert.transitions.append(
                AlertTransition(
                    from_state="normal",
                    to_state=state,
                    value=Decimal("1.000000000000000000001") + i,
                    at=at,
                )
            )
        db.session.add(rule)
        db.session.commit()


def test_markers_are_the_assets_transitions_in_range(any_app, viewer_client):
    store(any_app, [snap(minutes=m) for m in range(3)] + [snap(asset="ETH")])
    add_transitions(any_app, moments=[T0 + timedelta(minutes=m) for m in (-5, 1, 2)])
    add_transitions(any_app, account="hedge", moments=[T0 + timedelta(minutes=1)])
    add_transitions(any_app, asset="ETH", moments=[T0 + timedelta(minutes=1)])
    body = get_series(viewer_client, **{"from": str(epoch(T0))}).get_json()
    # Oldest first; transitions at the same moment in the order they were stored.
    assert [(m["account"], m["time"]) for m in body["markers"]] == [
        ("main", epoch(T0) + 60),
        ("hedge", epoch(T0) + 60),
        ("main", epoch(T0) + 120),
    ]
    last = body["markers"][-1]
    assert last == {
        "time": epoch(T0) + 120,
        "state": "firing",
        "rule": "limit main",
        "account": "main",
        "value": "3.000000000000000000001",
        "severity": "critical",
    }
    only_hedge = get_series(viewer_client, account="hedge").get_json()["markers"]
    assert [m["account"] for m in only_hedge] == ["hedge"]


def test_markers_keep_the_newest_when_over_the_limit(any_app):
    store(any_app, [snap()])
    add_transitions(any_app, moments=[T0 + timedelta(minutes=m) for m in range(5)])
    with any_app.app_context():
        markers = series.alert_markers("BTC", limit=2)
    assert [m["time"] for m in markers] == [epoch(T0) + 180, epoch(T0) + 240]


def test_anonymous_json_request_gets_401_and_a_page_request_the_login(any_app):
    store(any_app, [snap()])
    client = any_app.test_client()
    for path in ("/positions/BTC/series", "/overview/sparklines"):
        response = client.get(path, headers=JSON)
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
        assert client.get(path).status_code == 302


def test_viewer_gets_series_and_sparklines(any_app, viewer_client):
    store(any_app, [snap()])
    assert get_series(viewer_client).status_code == 200
    assert viewer_client.get("/overview/sparklines", headers=JSON).status_code == 200


def test_sparklines_keep_the_last_snapshot_of_each_half_hour_of_the_last_day(any_app):
    now = datetime(2026, 3, 2, 12, 10, tzinfo=UTC)
    start = sparklines.window_start(now)
    assert start == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    store(
        any_app,
        [snap(at=now - timedelta(hours=30), amount="99")]  # older than the window
        + [snap(at=start + timedelta(minutes=m), amount=str(m)) for m in range(0, 24 * 60, 10)]
        + [snap(account="hedge", asset="ETH", at=now - timedelta(days=3))],
    )
    with any_app.app_context():
        lines = sparklines.sparklines(now)
    assert [(line["account"], line["asset"]) for line in lines] == [
        ("main", "BTC"),
        ("hedge", "ETH"),
    ]
    points = lines[0]["points"]
    assert len(points) == 48
    assert points[0] == [epoch(start + timedelta(minutes=20)), "20"]
    assert points[-1][1] == str(24 * 60 - 10)
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert lines[1]["points"] == []


def test_sparklines_route_answers_every_latest_position(any_app, viewer_client):
    now = utcnow()
    store(any_app, [snap(at=now - timedelta(minutes=5), amount="2.50"), snap(asset="ETH", at=now)])
    body = viewer_client.get("/overview/sparklines", headers=JSON).get_json()
    assert body["series"] == [
        {
            "account": "main",
            "asset": "BTC",
            "points": [[epoch(now - timedelta(minutes=5)), "2.50"]],
        },
        {"account": "main", "asset": "ETH", "points": [[epoch(now), "1.5"]]},
    ]


def add_limit_rules():
    """BTC rules (one with a clear level), an account's, another asset's, a gross one."""
    rules = [
        AlertRule(
            name="BTC long",
            kind="position_above",
            asset="BTC",
            threshold=Decimal("40.5"),
            clear_threshold=Decimal("35"),
        ),
        AlertRule(
            name="hedge short",
            kind="position_below",
            asset="*",
            account="hedge",
            threshold=Decimal("-10"),
        ),
        AlertRule(name="notional cap", kind="notional_above", threshold=Decimal("4000.25")),
        AlertRule(name="ETH long", kind="position_above", asset="ETH", threshold=Decimal("1")),
        AlertRule(name="gross", kind="gross_exposure_above", threshold=Decimal("9000")),
        AlertRule(name="off", kind="position_above", threshold=Decimal("1"), enabled=False),
        AlertRule(name="stale", kind="stale_feed", threshold=Decimal("60")),
    ]
    db.session.add_all(rules)
    db.session.commit()
    return {rule.name: rule.id for rule in rules}


def test_chart_document_carries_the_limit_lines_that_apply_to_the_asset(any_app, viewer_client):
    store(any_app, [snap(minutes=0), snap(account="hedge", minutes=0)])
    with any_app.app_context():
        ids = add_limit_rules()
    lines = get_series(viewer_client).get_json()["limits"]
    assert lines == [
        {
            "label": "BTC long",
            "value": "40.5",
            "metric": "amount",
            "kind": "limit",
            "rule_id": ids["BTC long"],
        },
        {
            "label": "BTC long",
            "value": "35",
            "metric": "amount",
            "kind": "clear",
            "rule_id": ids["BTC long"],
        },
        {
            "label": "hedge short · hedge",
            "value": "-10",
            "metric": "amount",
            "kind": "limit",
            "rule_id": ids["hedge short"],
        },
        {
            "label": "notional cap",
            "value": "4000.25",
            "metric": "notional",
            "kind": "limit",
            "rule_id": ids["notional cap"],
        },
    ]
    # The account filter drops another account's rule.
    main = get_series(viewer_client, account="main").get_json()["limits"]
    assert {line["rule_id"] for line in main} == {ids["BTC long"], ids["notional cap"]}
    # ?rule= keeps one rule's lines; a gross exposure rule is drawn only when asked for.
    one = get_series(viewer_client, rule=ids["notional cap"]).get_json()["limits"]
    assert [line["label"] for line in one] == ["notional cap"]
    gross = get_series(viewer_client, rule=ids["gross"]).get_json()["limits"]
    assert [(line["value"], line["metric"]) for line in gross] == [("9000", "notional")]
    assert get_series(viewer_client, rule=ids["stale"]).get_json()["limits"] == []


def test_a_rule_parameter_that_is_not_an_id_is_a_400(any_app, viewer_client):
    store(any_app, [snap(minutes=0)])
    response = get_series(viewer_client, rule="1 OR 1")
    assert response.status_code == 400
    assert response.get_json()["parameter"] == "rule"


def test_spans_are_when_the_assets_alerts_fired(any_app, viewer_client):
    store(any_app, [snap(minutes=0), snap(account="hedge", minutes=0)])
    with any_app.app_context():
        ids = add_limit_rules()
        at = {m: T0 + timedelta(minutes=m) for m in (10, 20, 40, 50)}
        main = Alert(rule_id=ids["BTC long"], account="main", asset="BTC", state="firing")
        main.transitions = [
            AlertTransition(from_state="normal", to_state="firing", at=at[10]),
            AlertTransition(from_state="firing", to_state="resolved", at=at[20]),
            AlertTransition(from_state="resolved", to_state="firing", at=at[40]),
        ]
        hedge = Alert(rule_id=ids["hedge short"], account="hedge", asset="BTC", state="pending")
        hedge.transitions = [AlertTransition(from_state="normal", to_state="pending", at=at[50])]
        db.session.add_all([main, hedge])
        db.session.commit()
    spans = get_series(viewer_client).get_json()["spans"]
    assert spans == [
        {
            "from": at[10].isoformat(),
            "to": at[20].isoformat(),
            "label": "BTC long · main",
            "kind": "firing",
        },
        {"from": at[40].isoformat(), "to": None, "label": "BTC long · main", "kind": "firing"},
    ]
    # A span ended before the range is left out; one still open is kept.
    later = get_series(viewer_client, **{"from": (T0 + timedelta(minutes=30)).isoformat()})
    assert [span["from"] for span in later.get_json()["spans"]] == [at[40].isoformat()]
    # Another rule's spans are dropped by ?rule=.
    other = get_series(viewer_client, rule=ids["hedge short"]).get_json()["spans"]
    assert other == []
