"""The limits screen: each limit rule's value, utilisation and headroom, nearest first."""

from datetime import timedelta
from decimal import Decimal

import pytest

from app.alerts.models import Alert, AlertRule, AlertState, RuleKind
from app.auth.models import Role
from app.extensions import db
from app.positions.limits import headroom, limit_rows, utilisation
from tests.conftest import ParsedPage, client_as
from tests.positions.helpers import T0, snap, store

NOW = T0 + timedelta(minutes=60)
STALE_AFTER = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kind", "limit", "value", "expected"),
    [
        # Caps: the value grows towards the limit.
        (RuleKind.POSITION_ABOVE, "40", "30", "0.75"),
        (RuleKind.POSITION_ABOVE, "40", "50", "1.25"),
        (RuleKind.POSITION_ABOVE, "40", "-12.5", "0"),  # a short uses none of a long limit
        (RuleKind.NOTIONAL_ABOVE, "3", "1", "0.33333333"),
        (RuleKind.POSITION_BELOW, "-10", "-8", "0.8"),  # a short limit
        (RuleKind.POSITION_BELOW, "-10", "-12.5", "1.25"),
        # Floors: the value falls towards a limit on its own side of zero.
        (RuleKind.POSITION_BELOW, "10", "20", "0.5"),
        (RuleKind.POSITION_BELOW, "10", "10", "1"),
        (RuleKind.POSITION_BELOW, "10", "4", "2.5"),
        (RuleKind.POSITION_ABOVE, "-100", "-200", "0.5"),
    ],
)
def test_utilisation_is_the_share_of_the_limit_in_use(kind, limit, value, expected):
    assert utilisation(kind, Decimal(limit), Decimal(value)) == Decimal(expected)


@pytest.mark.parametrize(
    ("kind", "limit", "value"),
    [
        (RuleKind.POSITION_BELOW, "10", "0"),  # at zero: past the floor, no finite share
        (RuleKind.POSITION_BELOW, "10", "-3"),
        (RuleKind.POSITION_ABOVE, "-100", "5"),
        (RuleKind.POSITION_ABOVE, "0", "5"),  # a limit of zero has no share
        (RuleKind.POSITION_BELOW, "0", "-5"),
    ],
)
def test_utilisation_has_no_value_past_a_floor_or_for_a_zero_limit(kind, limit, value):
    assert utilisation(kind, Decimal(limit), Decimal(value)) is None


@pytest.mark.parametrize(
    ("kind", "limit", "value", "expected"),
    [
        (RuleKind.POSITION_ABOVE, "40", "30", "10"),
        (RuleKind.NOTIONAL_ABOVE, "4000", "1250", "2750"),
        (RuleKind.POSITION_BELOW, "-10", "-12.5", "-2.5"),  # breached: negative
        (RuleKind.POSITION_BELOW, "50", "200", "150"),
    ],
)
def test_headroom_is_how_far_the_value_can_move_before_it_breaches(kind, limit, value, expected):
    assert headroom(kind, Decimal(limit), Decimal(value)) == Decimal(expected)


def rule(name, kind, threshold, asset="*", account="*", **extra):
    return AlertRule(
        name=name, kind=kind, threshold=Decimal(threshold), asset=asset, account=account, **extra
    )


@pytest.fixture
def desk(any_app):
    """Three accounts: a stale one, a missing price, and rules of every limit kind."""
    store(
        any_app,
        [
            snap("main", "BTC", minutes=60, amount="30", price="100"),
            snap("hedge", "BTC", minutes=60, amount="-12.5", price="100"),
            snap("main", "ETH", minutes=60, amount="200", price=None),
            snap("ops", "BTC", minutes=0, amount="5", price="100"),  # an hour old: stale
        ],
    )
    with any_app.app_context():
        rules = [
            rule("BTC long", RuleKind.POSITION_ABOVE, "40", "BTC", clear_threshold=Decimal("35")),
            rule("hedge short", RuleKind.POSITION_BELOW, "-10", "BTC", "hedge"),
            rule("notional cap", RuleKind.NOTIONAL_ABOVE, "4000"),
            rule("main gross", RuleKind.GROSS_EXPOSURE_ABOVE, "3600", account="main"),
            rule("ETH floor", RuleKind.POSITION_BELOW, "50", "ETH", "main"),
            rule("not a limit", RuleKind.CHANGE_OVER_WINDOW, "1", window_seconds=60),
            rule("switched off", RuleKind.POSITION_ABOVE, "1", enabled=False),
        ]
        db.session.add_all(rules)
        db.session.flush()
        db.session.add(
            Alert(rule_id=rules[1].id, account="hedge", asset="BTC", state=AlertState.FIRING)
        )
        db.session.commit()
        return {r.name: r.id for r in rules}


def test_rows_hold_value_utilisation_and_headroom_nearest_to_breach_first(any_app, desk):
    with any_app.app_context():
        rows = limit_rows(NOW, STALE_AFTER)
        got = [
            (
                r.rule.name,
                r.account,
                r.asset,
                r.value,
                r.utilisation,
                r.headroom,
                r.breached,
                r.stale,
                r.unpriced,
                r.state,
            )
            for r in rows
        ]
    D = Decimal
    assert got == [
        (
            "hedge short",
            "hedge",
            "BTC",
            D("-12.5"),
            D("1.25"),
            D("-2.5"),
            True,
            False,
            0,
            "firing",
        ),
        ("main gross", "main", "*", D("3000"), D("0.83333333"), D("600"), False, False, 1, None),
        # Equal utilisation: the smaller headroom first.
        ("BTC long", "main", "BTC", D("30"), D("0.75"), D("10"), False, False, 0, None),
        ("notional cap", "main", "BTC", D("3000"), D("0.75"), D("1000"), False, False, 0, None),
        ("notional cap", "hedge", "BTC", D("1250"), D("0.3125"), D("2750"), False, False, 0, None),
        ("ETH floor", "main", "ETH", D("200"), D("0.25"), D("150"), False, False, 0, None),
        ("BTC long", "ops", "BTC", D("5"), D("0.125"), D("35"), False, True, 0, None),
        ("notional cap", "ops", "BTC", D("500"), D("0.125"), D("3500"), False, True, 0, None),
        ("BTC long", "hedge", "BTC", D("-12.5"), D("0"), D("52.5"), False, False, 0, None),
        # No price, no notional: listed last, saying so.
        ("notional cap", "main", "ETH", None, None, None, False, False, 1, None),
    ]


def test_limits_page_lists_rows_with_bars_units_and_links(any_app, desk, viewer_client):
    response = viewer_client.get("/limits")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = ParsedPage(html)
    rows = [attrs for attrs in page.elements("tr") if "data-rule-id" in attrs]
    assert [(r["data-rule-id"], r["data-series"]) for r in rows][:2] == [
        (str(desk["hedge short"]), "hedge/BTC"),
        (str(desk["main gross"]), "main/*"),
    ]
    assert "breached" in rows[0]["class"]
    assert len(rows) == 10
    meters = page.elements("meter")
    assert [m["value"] for m in meters][:3] == ["1", "0.83333333", "0.75"]
    assert page.shows_as_text("125.0 %")  # the breached short, through the percent filter
    assert page.shows_as_text("83.3 %")
    assert page.shows_as_text("no price")
    assert page.shows_as_text("stale")
    links = {a["href"] for a in page.elements("a")}
    # A viewer cannot edit rules: the link finds the rule in the rules list.
    assert f"/alerts/rules#rule-{desk['hedge short']}" in links
    assert f"/positions/BTC?account=hedge&rule={desk['hedge short']}" in links
    # CSP: no inline styles; bars are <meter> elements.
    assert not any("style" in attrs for _, attrs in page.tags)
    assert "not a limit" not in html and "switched off" not in html


def test_an_operator_links_to_the_rule_edit_page(any_app, desk):
    operator = client_as(any_app, Role.OPERATOR)
    page = ParsedPage(operator.get("/limits").get_data(as_text=True))
    links = {a["href"] for a in page.elements("a")}
    assert f"/alerts/rules/{desk['hedge short']}/edit" in links


def test_live_refresh_gets_the_table_alone(any_app, desk, viewer_client):
    response = viewer_client.get("/limits", headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = ParsedPage(response.get_data(as_text=True))
    assert page.elements("h1") == [] and page.elements("nav") == []
    [region] = page.elements("div")[:1]
    assert (region["id"], region["hx-get"]) == ("limits-live", "/limits")
    keys = [r["data-live-key"] for r in page.elements("tr") if "data-live-key" in r]
    assert keys[0] == f"{desk['hedge short']}/hedge/BTC"
    assert page.elements("tr")[1]["data-live-values"] == "-12.5|firing"


def test_limits_page_without_limit_rules_says_what_a_limit_is(any_app, viewer_client):
    store(any_app, [snap(minutes=0)])
    response = viewer_client.get("/limits")
    assert response.status_code == 200
    assert ParsedPage(response.get_data(as_text=True)).elements("table") == []
    assert b"No limit rules apply" in response.data


def test_limits_page_needs_a_login(client):
    response = client.get("/limits")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]
