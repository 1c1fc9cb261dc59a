"""`flask recon …`: define reconciliations and check their state."""

from flask.cli import AppGroup

from app.recon.models import Reconciliation  # noqa: F401

recon_cli = AppGroup("recon", help="Reconcile two sources of the same positions.")
