"""The demo seeds a reconciled pair whose break opens and resolves inside the seeded days."""

from app.alerts.models import Alert, AlertRule, AlertState, AlertTransition, RuleKind
from app.extensions import db
from app.recon.models import Reconciliation, ReconState, ReconTransition


def test_seed_demo_adds_a_pair_with_a_break_that_opens_and_resolves(app, runner):
    result = runner.invoke(
        args=["seed", "demo", "--days", "3", "--assets", "BTC", "--accounts", "main"]
    )
    assert result.exit_code == 0, result.output
    assert "Demo reconciliation: main vs Binance" in result.output
    with app.app_context():
        recon = db.session.execute(db.select(Reconciliation)).scalar_one()
        changes = [
            (t.to_state, t.at)
            for t in db.session.execute(
                db.select(ReconTransition).order_by(ReconTransition.id)
            ).scalars()
        ]
        assert [state for state, _ in changes] == [
            ReconState.MATCHED,
            ReconState.PENDING,
            ReconState.BREAK,
            ReconState.MATCHED,
        ]
        assert changes[1][1] < changes[3][1]
        alert = db.session.execute(
            db.select(Alert).join(AlertRule).where(AlertRule.kind == RuleKind.RECON_BREAK)
        ).scalar_one()
        assert alert.state == AlertState.RESOLVED
        assert alert.fired_at == changes[2][1] and alert.resolved_at == changes[3][1]
        history = (
            db.session.execute(
                db.select(AlertTransition.to_state).where(AlertTransition.alert_id == alert.id)
            )
            .scalars()
            .all()
        )
        assert history == [AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED]
        assert recon.assets[0].state == ReconState.MATCHED
    status = runner.invoke(args=["recon", "status"])
    assert status.exit_code == 0, status.output
    # Safe to run twice: the pair is not added again.
    again = runner.invoke(
        args=["seed", "demo", "--days", "3", "--assets", "BTC", "--accounts", "main"]
    )
    assert again.exit_code == 0, again.output
    assert "Demo reconciliation" not in again.output
