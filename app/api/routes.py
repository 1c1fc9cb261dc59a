"""The JSON API: parse, call the positions room, serialise."""

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from app.api.errors import ApiError
from app.api.openapi import openapi_document
from app.api.parsing import json_body, validate
from app.api.schemas import (
    AssetOut,
    HistoryQuery,
    PositionBatch,
    PositionOut,
    ReconAssetOut,
    ReconQuery,
    iso_utc,
)
from app.auth.access import requires_token
from app.auth.models import ApiToken, Scope
from app.auth.tokens import TokenError, bearer_secret, hash_secret
from app.db_types import format_decimal, utcnow
from app.extensions import db, limiter
from app.ops.errors import is_database_unavailable
from app.ops.metrics import count_ingest
from app.positions import queries
from app.positions.ingest import Snapshot, record
from app.recon import queries as recon_queries
from app.recon.models import ReconState

bp = Blueprint("api", __name__)


def _rate_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _rate_limit_key() -> str:
    """Count per stored token, or per address for a request without one."""
    # The secret as authentication reads it: the same token spelt another way in the
    # header (`bearer`, two spaces) is the same count, not a fresh one. A made-up
    # secret counts against the address: a fresh one per request must not be a fresh
    # limit per request.
    try:
        digest = hash_secret(bearer_secret())
    except TokenError:
        return f"address:{request.remote_addr}"
    try:
        known = db.session.execute(
            db.select(ApiToken.id).where(ApiToken.token_hash == digest)
        ).scalar_one_or_none()
    except SQLAlchemyError as error:
        if not is_database_unavailable(error):
            raise
        # Flask-Limiter would take a raising key for a dead counter store and count in
        # memory from then on. Count this one by address; the token check that follows
        # meets the same fault and answers 503.
        db.session.rollback()
        known = None
    return f"address:{request.remote_addr}" if known is None else f"token:{known}"


bp.register_error_handler(ApiError, lambda exc: exc.response())
limiter.limit(_rate_limit, key_func=_rate_limit_key)(bp)


def _text(value) -> str | None:
    return None if value is None else format_decimal(value)


@bp.route("/positions", methods=["POST"])
@requires_token(Scope.INGEST)
def post_positions():
    """Store a batch of snapshots, all or nothing."""
    batch = validate(PositionBatch, json_body())
    token = g.api_token
    accounts = {row.account for row in batch.positions}
    forbidden = sorted(account for account in accounts if not token.may_write(account))
    if forbidden:
        raise ApiError(
            403, "forbidden", f"This token may not write account(s): {', '.join(forbidden)}."
        )
    result = record(
        Snapshot(row.account, row.asset, row.timestamp, row.amount, row.price)
        for row in batch.positions
    )
    if result.conflicts:
        db.session.rollback()
        count_ingest(conflicts=len(result.conflicts))
        return jsonify(
            error="conflict",
            message=f"{len(result.conflicts)} snapshot(s) differ from stored ones with the "
            "same account, asset and timestamp; nothing was stored.",
            conflicts=[
                {"account": a, "asset": s, "timestamp": iso_utc(t)} for a, s, t in result.conflicts
            ],
        ), 409
    db.session.commit()
    count_ingest(inserted=result.inserted, duplicates=result.duplicates)
    return jsonify(inserted=result.inserted, duplicates=result.duplicates, conflicts=0)


@bp.route("/positions", methods=["GET"])
@requires_token(Scope.READ)
def get_positions():
    """One page of an asset's snapshots, newest first."""
    query = validate(HistoryQuery, request.args.to_dict())
    try:
        cursor = queries.Cursor.decode(query.cursor) if query.cursor else None
    except queries.BadCursor as exc:
        raise ApiError(400, "bad_cursor", str(exc)) from None
    page = queries.history_page(
        query.asset,
        account=query.account,
        start=query.from_,
        end=query.to,
        cursor=cursor,
        limit=query.limit,
    )
    return jsonify(
        positions=[
            PositionOut(
                account=p.account,
                asset=p.asset,
                timestamp=iso_utc(p.timestamp),
                amount=_text(p.amount),
                price=_text(p.price),
            ).model_dump()
            for p in page.rows
        ],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@bp.route("/assets", methods=["GET"])
@requires_token(Scope.READ)
def get_assets():
    """The latest position of every (account, asset) with its age."""
    now = utcnow()
    assets = []
    for latest in queries.latest_positions():
        assets.append(
            AssetOut(
                account=latest.account,
                asset=latest.asset,
                timestamp=iso_utc(latest.timestamp),
                amount=_text(latest.amount),
                price=_text(latest.price),
                notional=_text(latest.notional),
                age_seconds=round((now - latest.timestamp).total_seconds(), 3),
            ).model_dump()
        )
    return jsonify(assets=assets)


def _moment(value) -> str | None:
    return None if value is None else iso_utc(value)


@bp.route("/recon", methods=["GET"])
@requires_token(Scope.READ)
def get_recon():
    """Every reconciled asset (or those in one state or reconciliation), breaks first."""
    query = validate(ReconQuery, request.args.to_dict())
    rows = recon_queries.recon_rows(query.reconciliation, state=query.state)
    rows = [row for row in rows if row.enabled]
    assets = [
        ReconAssetOut(
            reconciliation=row.name,
            left_account=row.left_account,
            left_label=row.left_label,
            right_account=row.right_account,
            right_label=row.right_label,
            left_asset=row.left_asset,
            right_asset=row.right_asset,
            multiplier=_text(row.multiplier),
            state=row.state,
            state_since=iso_utc(row.state_since),
            as_of=_moment(row.as_of),
            left_amount=_text(row.left_amount),
            left_at=_moment(row.left_at),
            right_amount=_text(row.right_amount),
            right_compared=_text(row.right_compared),
            right_at=_moment(row.right_at),
            difference=_text(row.difference),
            difference_percent=_text(row.difference_percent),
            alert_id=row.alert_id,
        ).model_dump()
        for row in rows
    ]
    failing = sum(row.state in ReconState.FAILING for row in rows)
    return jsonify(assets=assets, failing=failing)


@bp.route("/openapi.json", methods=["GET"])
@requires_token(Scope.READ)
def openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(openapi_document())
