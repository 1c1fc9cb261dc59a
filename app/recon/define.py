"""Defining reconciliations: the one place the page and `flask recon` save and delete them.

Each reconciliation owns an alert rule (kind recon_break) that carries its breaks
through the alert engine; saving keeps the rule in step and evaluates the assets at
once, so the page shows their state straight away. The caller commits.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select

from app.admin.audit import Action, record_event
from app.alerts.models import ANY, Alert, AlertRule, Channel, RuleKind, Severity
from app.db_types import format_decimal, utcnow
from app.extensions import db
from app.recon.evaluate import evaluate_reconciliation
from app.recon.models import DEFAULT_MAX_AGE_SECONDS, ReconAsset, Reconciliation


class DefinitionError(ValueError):
    """A reconciliation that cannot be saved as given; the message says why."""


@dataclass(frozen=True)
class AssetSpec:
    """One asset as defined: its name on each side, multiplier and own tolerances."""

    left_asset: str
    right_asset: str | None = None  # None: the same name on both sides
    multiplier: Decimal = Decimal(1)
    abs_tolerance: Decimal | None = None
    rel_tolerance_percent: Decimal | None = None


@dataclass(frozen=True)
class ReconSpec:
    """A reconciliation as defined (what the form and the CLI collect)."""

    name: str
    left_account: str
    right_account: str
    assets: tuple[AssetSpec, ...]
    left_label: str = "book"
    right_label: str = "venue"
    abs_tolerance: Decimal | None = None
    rel_tolerance_percent: Decimal | None = None
    grace_seconds: int = 0
    left_max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    right_max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    enabled: bool = True
    severity: str = Severity.CRITICAL
    # Where the rule notifies; None keeps the channels it has.
    channel_ids: tuple[int, ...] | None = None


def check(spec: ReconSpec) -> None:
    """Raise DefinitionError for a definition that cannot mean anything."""
    if not spec.name.strip():
        raise DefinitionError("A reconciliation needs a name.")
    if not spec.left_account or not spec.right_account:
        raise DefinitionError("Both accounts are needed.")
    if spec.left_account == spec.right_account:
        raise DefinitionError("The two sides must be different accounts.")
    if not spec.assets:
        raise DefinitionError("Name at least one asset to reconcile.")
    if spec.severity not in Severity.ALL:
        raise DefinitionError(f"Severity must be one of {', '.join(Severity.ALL)}.")
    if spec.grace_seconds < 0:
        raise DefinitionError("The grace period cannot be negative.")
    if spec.left_max_age_seconds <= 0 or spec.right_max_age_seconds <= 0:
        raise DefinitionError("Maximum ages must be positive.")
    _check_tolerances(spec.abs_tolerance, spec.rel_tolerance_percent, "default")
    lefts, rights = set(), set()
    for asset in spec.assets:
        right = asset.right_asset or asset.left_asset
        if not asset.left_asset:
            raise DefinitionError("An asset needs a name.")
        if asset.left_asset in lefts or right in rights:
            raise DefinitionError(f"{asset.left_asset} is listed twice.")
        lefts.add(asset.left_asset)
        rights.add(right)
        if not asset.multiplier.is_finite() or asset.multiplier <= 0:
            raise DefinitionError(f"{asset.left_asset}: the multiplier must be positive.")
        _check_tolerances(asset.abs_tolerance, asset.rel_tolerance_percent, asset.left_asset)


def _check_tolerances(absolute: Decimal | None, relative: Decimal | None, where: str) -> None:
    for value, what in ((absolute, "absolute"), (relative, "relative")):
        if value is not None and (not value.is_finite() or value < 0):
            raise DefinitionError(f"{where}: the {what} tolerance must be zero or more.")


def save_reconciliation(
    spec: ReconSpec,
    existing: Reconciliation | None = None,
    actor=None,
    now: datetime | None = None,
) -> Reconciliation:
    """Create (or update `existing`) with its assets and alert rule, audit, evaluate."""
    check(spec)
    now = now or utcnow()
    clash = db.session.execute(
        select(Reconciliation.id).where(Reconciliation.name == spec.name)
    ).scalar_one_or_none()
    if clash is not None and (existing is None or clash != existing.id):
        raise DefinitionError(f"A reconciliation named {spec.name!r} exists already.")
    recon = existing or Reconciliation()
    creating = existing is None
    moved = not creating and recon.left_account != spec.left_account
    for name in (
        "name",
        "left_account",
        "left_label",
        "right_account",
        "right_label",
        "abs_tolerance",
        "rel_tolerance_percent",
        "grace_seconds",
        "left_max_age_seconds",
        "right_max_age_seconds",
        "enabled",
        "severity",
    ):
        setattr(recon, name, getattr(spec, name))
    if creating:
        db.session.add(recon)
    removed = _sync_assets(recon, spec.assets)
    rule = _sync_rule(recon, spec.channel_ids)
    db.session.flush()
    if rule.id is not None and (moved or removed):
        # Alerts of assets no longer reconciled (or of the old left account) would
        # otherwise stay open with nothing to resolve them.
        gone = delete(Alert).where(Alert.rule_id == rule.id)
        if not moved:
            gone = gone.where(Alert.asset.in_(sorted(removed)))
        db.session.execute(gone)
    record_event(
        Action.RECON_CREATE if creating else Action.RECON_UPDATE,
        target=f"recon:{recon.id}",
        detail=describe(recon),
        actor=actor,
    )
    evaluate_reconciliation(recon.id, now)
    return recon


def _sync_assets(recon: Reconciliation, specs: tuple[AssetSpec, ...]) -> set[str]:
    """Update, add and remove assets to match the specs; return the left names removed."""
    by_left = {asset.left_asset: asset for asset in recon.assets}
    wanted = {spec.left_asset for spec in specs}
    removed = set(by_left) - wanted
    for name in removed:
        recon.assets.remove(by_left[name])
    if removed:
        # Free the removed rows' unique names before a kept asset takes one over.
        db.session.flush()
    for spec in specs:
        asset = by_left.get(spec.left_asset)
        if asset is None:
            asset = ReconAsset(left_asset=spec.left_asset)
            recon.assets.append(asset)
        asset.right_asset = spec.right_asset or spec.left_asset
        asset.multiplier = spec.multiplier
        asset.abs_tolerance = spec.abs_tolerance
        asset.rel_tolerance_percent = spec.rel_tolerance_percent
    return removed


def _sync_rule(recon: Reconciliation, channel_ids: tuple[int, ...] | None) -> AlertRule:
    """The reconciliation's alert rule, created or brought in step with it."""
    rule = recon.rule
    if rule is None:
        rule = AlertRule(kind=RuleKind.RECON_BREAK, asset=ANY, threshold=Decimal(0))
        db.session.add(rule)
        recon.rule = rule
    rule.name = f"Reconciliation {recon.name}"[:120]
    rule.account = recon.left_account
    rule.pending_seconds = recon.grace_seconds
    rule.severity = recon.severity
    rule.enabled = recon.enabled
    rule.description = (
        f"{recon.left_account} ({recon.left_label}) against {recon.right_account} "
        f"({recon.right_label}). The value is how far the difference goes beyond "
        "tolerance; none means a side is missing or stale."
    )
    if channel_ids is not None:
        rule.channels = list(
            db.session.execute(select(Channel).where(Channel.id.in_(channel_ids))).scalars()
        )
    return rule


def delete_reconciliation(recon: Reconciliation, actor=None) -> None:
    """Delete a reconciliation with its assets, history, alert rule and alerts."""
    detail = describe(recon)
    target = f"recon:{recon.id}"
    if recon.rule is not None:
        db.session.delete(recon.rule)
    db.session.delete(recon)
    record_event(Action.RECON_DELETE, target=target, detail=detail, actor=actor)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def describe(recon: Reconciliation) -> dict:
    """The definition as plain JSON (audit detail, `flask recon list --json`)."""
    return {
        "name": recon.name,
        "left_account": recon.left_account,
        "left_label": recon.left_label,
        "right_account": recon.right_account,
        "right_label": recon.right_label,
        "abs_tolerance": _text(recon.abs_tolerance),
        "rel_tolerance_percent": _text(recon.rel_tolerance_percent),
        "grace_seconds": recon.grace_seconds,
        "left_max_age_seconds": recon.left_max_age_seconds,
        "right_max_age_seconds": recon.right_max_age_seconds,
        "enabled": recon.enabled,
        "severity": recon.severity,
        "channels": [] if recon.rule is None else [c.name for c in recon.rule.channels],
        "assets": [
            {
                "left_asset": asset.left_asset,
                "right_asset": asset.right_asset,
                "multiplier": _text(asset.multiplier),
                "abs_tolerance": _text(asset.abs_tolerance),
                "rel_tolerance_percent": _text(asset.rel_tolerance_percent),
            }
            for asset in recon.assets
        ],
    }
