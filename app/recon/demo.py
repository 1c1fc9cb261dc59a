"""The demo's reconciled pair: the book's BTC in `main` against what "Binance" reports.

The venue reports every five minutes what the book held then, except for forty minutes
two days ago when it shows a quarter BTC more (a fill the book missed): a break that
opens and resolves inside the seeded week. The week is replayed as ingest would have
evaluated it, snapshot by snapshot (app.recon.preview), through the alert state
machine, so the alert and its history show it.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from app.alerts.models import AlertState, Severity
from app.alerts.state import apply, breaches
from app.db_types import utcnow
from app.extensions import db
from app.positions.ingest import Snapshot, record
from app.positions.models import Position
from app.recon.define import AssetSpec, ReconSpec, save_reconciliation
from app.recon.evaluate import evaluate_reconciliation, record_state
from app.recon.preview import preview_reconciliation
from app.recon.queries import reconciliation_by_name, terms_of
from app.recon.targets import Target

NAME = "main vs Binance"
BOOK, VENUE, ASSET = "main", "main@binance", "BTC"
EVERY = 300
MISSED_FILL = Decimal("0.25")
BREAK_LENGTH = timedelta(minutes=40)


def add_demo_reconciliation(actor, now: datetime | None = None) -> str | None:
    """Seed the venue side, define the pair and replay its week; None if there is no
    main BTC history or the pair exists already. The caller commits."""
    now = now or utcnow()
    if reconciliation_by_name(NAME) is not None:
        return None
    book = {
        at: amount
        for at, amount in db.session.execute(
            select(Position.timestamp, Position.amount)
            .where(Position.account == BOOK, Position.asset == ASSET)
            .order_by(Position.timestamp)
        )
        if int(at.timestamp()) % EVERY == 0
    }
    if len(book) < 2:
        return None
    moments = sorted(book)
    opens = _break_start(moments, now)
    venue = [
        Snapshot(
            VENUE,
            ASSET,
            at,
            book[at] + MISSED_FILL if opens <= at < opens + BREAK_LENGTH else book[at],
        )
        for at in moments
    ]
    record(venue)
    spec = ReconSpec(
        name=NAME,
        left_account=BOOK,
        right_account=VENUE,
        assets=(AssetSpec(ASSET),),
        abs_tolerance=Decimal("0.001"),
        grace_seconds=120,
        # The demo's feeds stop when seeding ends: its pair should not turn unknown
        # ten minutes into a first look.
        left_max_age_seconds=7 * 86400,
        right_max_age_seconds=7 * 86400,
        severity=Severity.CRITICAL,
    )
    recon = save_reconciliation(spec, actor=actor, now=moments[0])
    _replay(recon, moments[0], now)
    evaluate_reconciliation(recon.id, now)
    return NAME


def _break_start(moments: list[datetime], now: datetime) -> datetime:
    """Two days ago at 13:05 UTC, or the middle of a shorter history."""
    wanted = (now - timedelta(days=2)).replace(hour=13, minute=5, second=0, microsecond=0)
    if not moments[0] < wanted < moments[-1] - BREAK_LENGTH:
        wanted = moments[len(moments) // 2]
    return min(moments, key=lambda at: abs(at - wanted))


def _replay(recon, start: datetime, end: datetime) -> None:
    """Write what the week would have recorded, snapshot by snapshot, as ingest would
    have: the changes `flask recon preview` finds, each with its alert transition."""
    asset = recon.assets[0]
    terms = terms_of(recon, asset)
    rule, series = recon.rule, (BOOK, ASSET)
    alert_active = False
    for change in preview_reconciliation(recon, start, end):
        excess = change.comparison.excess
        if breaches(rule, excess, False) or alert_active:
            for moved in apply(rule, change.at, {series}, {series: excess}, refresh=False):
                alert_active = moved.to_state in AlertState.ACTIVE
        record_state(
            Target(terms, rule.id, change.from_state),
            change.comparison,
            change.to_state,
            change.at,
        )
