"""`flask auth …`: check the company sign-in (OpenID Connect) configuration."""

import click
import requests
from flask import current_app
from flask.cli import AppGroup

from app.auth.models import Role
from app.auth.oidc import OIDCConfigError, same_issuer, settings_from_config

auth_cli = AppGroup("auth", help="Check how people sign in.")

CALLBACK_PATH = "/login/oidc/callback"


def _fetch_discovery(url: str, timeout: float) -> dict:
    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise click.ClickException(f"Cannot fetch {url}: {exc}") from None
    if response.status_code != 200:
        raise click.ClickException(f"{url} answered HTTP {response.status_code}, not 200.")
    try:
        document = response.json()
    except ValueError:
        raise click.ClickException(f"{url} did not answer JSON.") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"{url} did not answer a JSON object.")
    return document


def _listed(document: dict, key: str) -> str:
    values = document.get(key)
    if not values:
        return "(not advertised)"
    return ", ".join(str(v) for v in values)


@auth_cli.command("oidc-check")
def oidc_check():
    """Fetch the provider's discovery document and print what sign-in will use."""
    try:
        settings = settings_from_config(current_app.config)
    except OIDCConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings is None:
        raise click.ClickException(
            "Company sign-in is off: set TRADINGMONITOR_OIDC_ISSUER (and the client id and "
            "secret) first."
        )
    document = _fetch_discovery(settings.discovery_url, settings.timeout_seconds)
    problems = []
    issuer = document.get("issuer", "")
    if not same_issuer(issuer, settings.issuer):
        problems.append(f"the document names issuer {issuer!r}, not {settings.issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not document.get(key):
            problems.append(f"no {key}")
    methods = document.get("code_challenge_methods_supported") or []
    claims = document.get("claims_supported") or []

    def show(label: str, value: str) -> None:
        click.echo(f"{label + ':':<24}{value}")

    show("Discovery", settings.discovery_url)
    show("Issuer", issuer or "(missing)")
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        show(key, document.get(key) or "(missing)")
    show("Scopes supported", _listed(document, "scopes_supported"))
    show("Claims supported", _listed(document, "claims_supported"))
    show("ID token algorithms", _listed(document, "id_token_signing_alg_values_supported"))
    show("PKCE methods", _listed(document, "code_challenge_methods_supported"))
    if "S256" not in methods:
        click.echo(
            "  note: S256 is not advertised; sign-in sends it anyway (most providers take it)."
        )
    show("Scopes asked", settings.scopes)
    if not claims:
        advertised = "unknown (the provider lists no claims)"
    elif settings.groups_claim in claims:
        advertised = "yes"
    else:
        advertised = "NO (check the provider's claim mapping)"
    show("Groups claim", f"{settings.groups_claim} (advertised: {advertised})")
    for role in reversed(Role.ALL):
        groups = sorted(g for g, r in settings.role_groups.items() if r == role)
        if groups:
            show(f"  {role} from groups", ", ".join(groups))
    show("Default role", settings.default_role or "none: users in no mapped group are refused")
    base = (current_app.config.get("PUBLIC_URL") or "https://<your host>").rstrip("/")
    show("Redirect URI", f"{base}{CALLBACK_PATH} (register it at the provider)")
    if problems:
        raise click.ClickException("Discovery is not usable: " + "; ".join(problems) + ".")
    click.echo("OK: the provider's discovery document is usable.")
