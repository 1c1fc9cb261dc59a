"""The API: a break fires inside the ingest request of either side; GET /api/v1/recon reads."""

import pytest

from app.alerts.models import Alert, AlertState
from app.auth.models import Role, User
from app.auth.tokens import create_token
from app.extensions import db
from app.recon.models import ReconState
from tests.conftest import make_user
from tests.recon.helpers import at, define, state

pytestmark = pytest.mark.usefixtures("frozen_clock")


def token(app, username, role, *scopes) -> dict:
    user_id = make_user(app, username, role=role)
    with app.app_context():
        _, secret = create_token(db.session.get(User, user_id), "t", list(scopes))
        db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def rows(*entries):
    return {
        "positions": [
            {"account": account, "asset": asset, "timestamp": at(s).isoformat(), "amount": amount}
            for account, asset, amount, s in entries
        ]
    }


@pytest.mark.parametrize(
    "breaking",
    [("main", "XBT", "4", 10), ("main@binance", "BTC", "6", 10)],
    ids=["book side", "venue side"],
)
def test_a_break_is_firing_when_the_ingest_request_of_either_side_returns(app, breaking):
    bot = token(app, "bot", Role.ADMIN, "ingest")
    client = app.test_client()
    first = rows(("main", "XBT", "5", 0), ("main@binance", "BTC", "5", 0))
    assert client.post("/api/v1/positions", json=first, headers=bot).status_code == 200
    define(app, now=at(1))
    assert state(app) == ReconState.MATCHED
    account = breaking[0]
    other = ("main@binance", "BTC", "5", 10) if account == "main" else ("main", "XBT", "5", 10)
    # The other side confirms its amount first, in its own request: still matched.
    assert client.post("/api/v1/positions", json=rows(other), headers=bot).status_code == 200
    assert state(app) == ReconState.MATCHED
    response = client.post("/api/v1/positions", json=rows(breaking), headers=bot)
    assert response.status_code == 200
    assert state(app) == ReconState.BREAK
    with app.app_context():
        alert = db.session.execute(db.select(Alert)).scalar_one()
        assert (alert.state, alert.account, alert.asset) == (AlertState.FIRING, "main", "XBT")


def test_viewers_read_the_reconciliation_with_a_read_token(app):
    bot = token(app, "bot", Role.ADMIN, "ingest")
    client = app.test_client()
    client.post(
        "/api/v1/positions",
        json=rows(("main", "XBT", "5", 0), ("main@binance", "BTC", "7.50", 0)),
        headers=bot,
    )
    define(app, now=at(1))
    viewer = token(app, "vera", Role.VIEWER, "read")
    response = client.get("/api/v1/recon", headers=viewer)
    assert response.status_code == 200
    body = response.get_json()
    assert body["failing"] == 1
    (asset,) = body["assets"]
    assert asset["reconciliation"] == "binance"
    assert (asset["left_asset"], asset["right_asset"], asset["state"]) == ("XBT", "BTC", "break")
    # Exact decimals as sent, as strings.
    assert (asset["left_amount"], asset["right_amount"], asset["difference"]) == (
        "5",
        "7.50",
        "2.50",
    )
    assert asset["difference_percent"] == "50.000000"
    assert asset["as_of"] == at(0).isoformat().replace("+00:00", "Z")
    assert isinstance(asset["alert_id"], int)


def test_recon_needs_a_token_with_the_read_scope(app):
    client = app.test_client()
    assert client.get("/api/v1/recon").status_code == 401
    ingest_only = token(app, "bot", Role.ADMIN, "ingest")
    assert client.get("/api/v1/recon", headers=ingest_only).status_code == 403


def test_the_openapi_document_describes_recon(app):
    reader = token(app, "vera", Role.VIEWER, "read")
    document = app.test_client().get("/api/v1/openapi.json", headers=reader).get_json()
    operation = document["paths"]["/recon"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReconList"
    }
    assert "state" in document["components"]["schemas"]["ReconAssetOut"]["required"]
    assert [p["name"] for p in operation["parameters"]] == ["state", "reconciliation"]


def test_recon_reads_one_state_or_one_reconciliation_and_refuses_what_is_not_one(app):
    bot = token(app, "bot", Role.ADMIN, "ingest")
    client = app.test_client()
    client.post(
        "/api/v1/positions",
        json=rows(("main", "XBT", "5", 0), ("main@binance", "BTC", "7.50", 0)),
        headers=bot,
    )
    define(app, now=at(1))
    reader = token(app, "vera", Role.VIEWER, "read")

    def assets(query):
        response = client.get(f"/api/v1/recon?{query}", headers=reader)
        assert response.status_code == 200, response.get_json()
        return [(a["reconciliation"], a["state"]) for a in response.get_json()["assets"]]

    assert assets("state=break") == [("binance", "break")]
    assert assets("state=matched") == []
    assert assets("reconciliation=binance") == [("binance", "break")]
    assert assets("reconciliation=other") == []
    for bad in ("state=broken", "state=", "reconciliation=", "colour=red"):
        response = client.get(f"/api/v1/recon?{bad}", headers=reader)
        assert response.status_code == 422, bad
        assert response.get_json()["error"] == "invalid"
