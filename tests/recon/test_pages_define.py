"""Defining reconciliations on the page: admins change them, everyone else only looks."""

import re
from decimal import Decimal

import pytest

from app.admin.models import AuditEvent
from app.auth.models import Role
from app.extensions import db
from app.recon.forms import MAX_ASSET_LINES
from app.recon.models import Reconciliation
from tests.conftest import client_as, csrf_token_from
from tests.recon.test_pages import save

NEW = "/recon/definitions/new"


def form_data(client, path=NEW, **overrides) -> dict:
    """A complete, valid form: BTC mapped to XBT with a multiplier, ETH as it is."""
    data = {
        "csrf_token": csrf_token_from(client, path),
        "name": "binance",
        "left_account": "main",
        "left_label": "book",
        "right_account": "main@binance",
        "right_label": "exchange",
        "tolerance_abs": "",
        "tolerance_rel": "0.5",
        "grace_seconds": "60",
        "left_max_age_seconds": "600",
        "right_max_age_seconds": "900",
        "severity": "critical",
        "enabled": "y",
        "assets-0-asset": "BTC",
        "assets-0-right_asset": "XBT",
        "assets-0-multiplier": "0.000000000000000001",
        "assets-0-tolerance_abs": "0.0001",
        "assets-0-tolerance_rel": "",
        "assets-1-asset": "ETH",
        "assets-2-asset": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def stored(app, name="binance") -> Reconciliation | None:
    with app.app_context():
        recon = db.session.execute(
            db.select(Reconciliation).where(Reconciliation.name == name)
        ).scalar_one_or_none()
        if recon is not None:
            recon.assets  # noqa: B018 (loaded before the session ends)
            db.session.expunge_all()
        return recon


def audit_actions(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [
            (e.action, e.actor_name)
            for e in db.session.execute(db.select(AuditEvent).order_by(AuditEvent.id)).scalars()
        ]


@pytest.fixture
def defined(app):
    return save(app, "desk", "main", "main@venue", [{"left_asset": "BTC"}])


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
def test_viewers_and_operators_see_the_definitions_but_cannot_change_them(app, defined, role):
    client = client_as(app, role)
    page = client.get("/recon/definitions")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-recon="desk"' in html
    assert "Admins define them." in html
    assert "/recon/definitions/new" not in html and "/edit" not in html and "/delete" not in html
    assert client.get(NEW).status_code == 403
    assert client.get(f"/recon/definitions/{defined}/edit").status_code == 403
    token = csrf_token_from(client, "/recon/definitions")
    assert client.post(NEW, data={"csrf_token": token, "name": "x"}).status_code == 403
    delete = client.post(f"/recon/definitions/{defined}/delete", data={"csrf_token": token})
    assert delete.status_code == 403
    assert stored(app, "desk") is not None and stored(app, "x") is None


def test_admin_defines_a_reconciliation_with_mapping_multiplier_and_tolerances(any_app):
    admin = client_as(any_app, Role.ADMIN, "ada")
    response = admin.post(NEW, data=form_data(admin))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/recon/definitions#recon-")
    recon = stored(any_app)
    assert (recon.left_account, recon.right_account) == ("main", "main@binance")
    assert (recon.left_label, recon.right_label) == ("book", "exchange")
    assert recon.abs_tolerance is None and recon.rel_tolerance_percent == Decimal("0.5")
    assert (recon.grace_seconds, recon.left_max_age_seconds, recon.right_max_age_seconds) == (
        60,
        600,
        900,
    )
    assets = {a.left_asset: a for a in recon.assets}
    assert set(assets) == {"BTC", "ETH"}
    assert assets["BTC"].right_asset == "XBT"
    assert assets["BTC"].multiplier == Decimal("0.000000000000000001")
    assert assets["BTC"].abs_tolerance == Decimal("0.0001")
    assert assets["ETH"].right_asset == "ETH" and assets["ETH"].multiplier == 1
    assert ("recon.create", "ada") in audit_actions(any_app)
    listing = admin.get("/recon/definitions").get_data(as_text=True)
    assert "0.000000000000000001" in listing and "±0.5 %" in listing


def test_bad_numbers_are_refused_next_to_their_field_and_nothing_typed_is_lost(app):
    admin = client_as(app, Role.ADMIN)
    data = form_data(
        admin,
        **{
            "assets-0-multiplier": "1,5",
            "tolerance_rel": "\N{ARABIC-INDIC DIGIT ONE}",
            "grace_seconds": "soon",
        },
    )
    response = admin.post(NEW, data=data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="form-problem"' in html and "Nothing was saved" in html
    assert html.count('aria-invalid="true"') == 3
    assert "is not a finite decimal number" in html
    # Every value typed is still in the form, the bad ones included.
    for value in ("binance", "main@binance", "exchange", "XBT", "1,5", "0.0001", "ETH", "soon"):
        assert f'value="{value}"' in html, value
    assert stored(app) is None


def test_a_definition_that_cannot_mean_anything_is_explained_and_kept(app):
    admin = client_as(app, Role.ADMIN)
    response = admin.post(NEW, data=form_data(admin, right_account="main"))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert re.search(r'id="form-problem">[^<]*different accounts', html)
    assert 'value="XBT"' in html and 'value="0.000000000000000001"' in html
    assert stored(app) is None
    no_assets = form_data(
        admin,
        **{
            "assets-0-asset": "",
            "assets-0-right_asset": "",
            "assets-0-multiplier": "",
            "assets-0-tolerance_abs": "",
            "assets-1-asset": "",
        },
    )
    response = admin.post(NEW, data=no_assets)
    assert response.status_code == 400
    assert "at least one asset" in response.get_data(as_text=True)


def test_a_second_reconciliation_with_the_same_name_is_refused(app, defined):
    admin = client_as(app, Role.ADMIN)
    response = admin.post(NEW, data=form_data(admin, name="desk"))
    assert response.status_code == 400
    assert "exists already" in response.get_data(as_text=True)


def test_without_a_csrf_token_nothing_is_stored(app, defined):
    admin = client_as(app, Role.ADMIN)
    data = form_data(admin)
    del data["csrf_token"]
    assert admin.post(NEW, data=data).status_code == 400
    assert admin.post(f"/recon/definitions/{defined}/delete").status_code == 400
    assert stored(app) is None and stored(app, "desk") is not None


def test_admin_edits_a_reconciliation_and_its_assets(app, defined):
    admin = client_as(app, Role.ADMIN, "ada")
    path = f"/recon/definitions/{defined}/edit"
    html = admin.get(path).get_data(as_text=True)
    assert 'value="desk"' in html and 'value="main@venue"' in html
    assert re.search(r'name="assets-0-asset"[^>]*value="BTC"', html)
    data = form_data(
        admin,
        path,
        name="desk",
        right_account="main@venue",
        **{"assets-0-asset": "BTC", "assets-0-right_asset": "", "assets-0-multiplier": "2"},
    )
    assert admin.post(path, data=data).status_code == 302
    recon = stored(app, "desk")
    assets = {a.left_asset: a for a in recon.assets}
    assert assets["BTC"].multiplier == 2 and assets["BTC"].right_asset == "BTC"
    assert "ETH" in assets
    assert ("recon.update", "ada") in audit_actions(app)


def test_admin_deletes_a_reconciliation(app, defined):
    admin = client_as(app, Role.ADMIN, "ada")
    token = csrf_token_from(admin, "/recon/definitions")
    response = admin.post(f"/recon/definitions/{defined}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert stored(app, "desk") is None
    assert ("recon.delete", "ada") in audit_actions(app)
    assert admin.get(f"/recon/definitions/{defined}/edit").status_code == 404


def test_a_long_asset_list_is_kept_as_it_is_when_the_settings_are_saved(app):
    many = [{"left_asset": f"A{n:03d}"} for n in range(MAX_ASSET_LINES)]
    recon = save(app, "wide", "main", "main@venue", many)
    admin = client_as(app, Role.ADMIN)
    path = f"/recon/definitions/{recon}/edit"
    html = admin.get(path).get_data(as_text=True)
    assert 'id="assets-elsewhere"' in html and "assets-0-asset" not in html
    assert f"{MAX_ASSET_LINES} assets" in html
    data = form_data(admin, path, name="wide", right_account="main@venue", grace_seconds="90")
    data = {k: v for k, v in data.items() if not k.startswith("assets-")}
    assert admin.post(path, data=data).status_code == 302
    stored_recon = stored(app, "wide")
    assert stored_recon.grace_seconds == 90
    assert len(stored_recon.assets) == MAX_ASSET_LINES
