"""Company sign-in with OpenID Connect: the settings, the provider's client, and the rules
that turn a provider's answer into one of our users (or a refusal)."""

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from flask import Flask, current_app, session
from joserfc.errors import JoseError
from requests import RequestException

from app.auth.models import Role

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
EXTENSION_KEY = "tm_oidc"
CLIENT_NAME = "oidc"
# A provider's answer the ID token is checked against, beyond Authlib's own checks; a
# minute or two of clock skew between us and the provider is normal.
ID_TOKEN_LEEWAY_SECONDS = 120


class OIDCConfigError(RuntimeError):
    """Company sign-in is configured in a way that cannot work; the message says how."""


@dataclass(frozen=True)
class OIDCSettings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    provider_name: str
    groups_claim: str
    # group name -> the highest role it gives
    role_groups: dict[str, str]
    # None: a user in no mapped group is refused
    default_role: str | None
    timeout_seconds: float

    @property
    def discovery_url(self) -> str:
        return discovery_url(self.issuer)


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


def same_issuer(a: str, b: str) -> bool:
    """True if two issuer URLs name the same issuer (a trailing slash aside)."""
    return a.rstrip("/") == b.rstrip("/")


def _group_list(value) -> list[str]:
    """A group setting as a list: a list already (JSON in the environment) or a comma list."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json.loads(text)
        else:
            return [name.strip() for name in text.split(",") if name.strip()]
    if not isinstance(value, list | tuple):
        raise OIDCConfigError(f"a group list must be a list or a comma list, not {value!r}")
    return [str(name).strip() for name in value if str(name).strip()]


def settings_from_config(config) -> OIDCSettings | None:
    """The OIDC settings of an app's config, None when OIDC_ISSUER is unset.

    Raises OIDCConfigError for settings that cannot work, so the app refuses to start
    instead of failing at the first sign-in.
    """
    issuer = (config.get("OIDC_ISSUER") or "").strip()
    if not issuer:
        return None
    if not issuer.startswith(("https://", "http://")):
        raise OIDCConfigError(f"OIDC_ISSUER must be an http(s) URL, not {issuer!r}.")
    if issuer.startswith("http://") and urlsplit(issuer).hostname not in LOOPBACK_HOSTS:
        # Codes and tokens would cross the network in clear; Authlib refuses it too.
        raise OIDCConfigError(
            f"OIDC_ISSUER must use https (only loopback may use http): {issuer!r}"
        )
    # The environment reader parses JSON, so an all-digit client id arrives as a number.
    client_id = str(config.get("OIDC_CLIENT_ID") or "").strip()
    client_secret = str(config.get("OIDC_CLIENT_SECRET") or "").strip()
    if not client_id or not client_secret:
        raise OIDCConfigError("OIDC_ISSUER is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET too.")
    scopes = " ".join(str(config.get("OIDC_SCOPES") or "").split())
    if "openid" not in scopes.split():
        raise OIDCConfigError(f"OIDC_SCOPES must include openid (it is {scopes!r}).")
    role_groups: dict[str, str] = {}
    # Ascending, so a group listed under two roles gives the higher one.
    for role in Role.ALL:
        for group in _group_list(config.get(f"OIDC_{role.upper()}_GROUPS")):
            role_groups[group] = role
    default_role = (config.get("OIDC_DEFAULT_ROLE") or "").strip().lower() or None
    if default_role is not None and default_role not in Role.ALL:
        raise OIDCConfigError(
            f"OIDC_DEFAULT_ROLE must be one of {', '.join(Role.ALL)} or empty, "
            f"not {default_role!r}."
        )
    if not role_groups and default_role is None:
        raise OIDCConfigError(
            "OIDC is set but no group gives a role and OIDC_DEFAULT_ROLE is empty: "
            "nobody could sign in. Set OIDC_ADMIN_GROUPS / OIDC_OPERATOR_GROUPS / "
            "OIDC_VIEWER_GROUPS or OIDC_DEFAULT_ROLE."
        )
    return OIDCSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        provider_name=str(config.get("OIDC_PROVIDER_NAME") or "your company account"),
        groups_claim=str(config.get("OIDC_GROUPS_CLAIM") or "groups"),
        role_groups=role_groups,
        default_role=default_role,
        timeout_seconds=float(config.get("OIDC_TIMEOUT_SECONDS") or 10),
    )


@dataclass
class Provider:
    """The configured identity provider of one app: its settings and Authlib client."""

    settings: OIDCSettings
    client: FlaskOAuth2App


def build_client(settings: OIDCSettings) -> FlaskOAuth2App:
    """An Authlib client: code flow, PKCE (S256), nonce; discovery is fetched on first use."""
    return FlaskOAuth2App(
        FlaskIntegration(CLIENT_NAME),
        name=CLIENT_NAME,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=settings.discovery_url,
        client_kwargs={
            "scope": settings.scopes,
            "code_challenge_method": "S256",
            "default_timeout": settings.timeout_seconds,
        },
    )


def init_app(app: Flask) -> None:
    """Set up company sign-in when OIDC_ISSUER is configured; no network call here."""
    settings = settings_from_config(app.config)
    if settings is None:
        return
    app.extensions[EXTENSION_KEY] = Provider(settings, build_client(settings))


def provider() -> Provider | None:
    """The current app's identity provider, None when company sign-in is off."""
    return current_app.extensions.get(EXTENSION_KEY)


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in: `reason` for the audit log,
    `message` for the person at the login page."""

    def __init__(self, reason: str, message: str, **detail):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.detail = detail


UNREACHABLE = "The sign-in provider cannot be reached. Try again, or ask an admin."
NOT_COMPLETED = "Sign-in with the provider was not completed. Start again."


def load_metadata(prov: Provider) -> dict:
    """The provider's discovery document, fetched once per process; SignInRefused if it
    cannot be read or names another issuer."""
    try:
        metadata = prov.client.load_server_metadata()
    except (RequestException, ValueError) as exc:
        log.error("oidc discovery failed: url=%s error=%s", prov.settings.discovery_url, exc)
        raise SignInRefused("provider_unreachable", UNREACHABLE) from None
    if not same_issuer(metadata.get("issuer", ""), prov.settings.issuer):
        # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer asked.
        log.error(
            "oidc discovery names issuer %r, configured %r",
            metadata.get("issuer"),
            prov.settings.issuer,
        )
        prov.client.server_metadata.pop("_loaded_at", None)
        raise SignInRefused("issuer_mismatch", UNREACHABLE)
    return metadata


def authorize_redirect(prov: Provider, redirect_uri: str):
    """The redirect to the provider's login page; state, nonce and PKCE verifier are
    kept in the session for the callback."""
    load_metadata(prov)
    # One sign-in in flight per browser: each start would otherwise add its state to
    # the session cookie until it outgrew what browsers keep.
    for key in [key for key in session if key.startswith(f"_state_{CLIENT_NAME}_")]:
        session.pop(key)
    try:
        return prov.client.authorize_redirect(redirect_uri)
    except RequestException as exc:
        log.error("oidc authorization redirect failed: %s", exc)
        raise SignInRefused("provider_unreachable", UNREACHABLE) from None


def complete_sign_in(prov: Provider) -> dict:
    """Check the callback (state, code, ID token) and return the user's claims.

    Authlib checks the state against the session, exchanges the code with the PKCE
    verifier, and validates the ID token's signature, issuer, audience, expiry and
    nonce. Raises SignInRefused saying why not.
    """
    metadata = load_metadata(prov)
    claims_options = {
        "iss": {"essential": True, "value": metadata["issuer"]},
        "aud": {"essential": True, "value": prov.settings.client_id},
        "sub": {"essential": True},
    }
    try:
        token = prov.client.authorize_access_token(
            claims_options=claims_options, leeway=ID_TOKEN_LEEWAY_SECONDS
        )
    except OAuthError as exc:
        # A wrong or used state, the provider's own refusal (?error=access_denied), or a
        # code the token endpoint will not exchange (replayed, expired, another client's).
        reason = "state_mismatch" if exc.error == "mismatching_state" else "provider_refused"
        raise SignInRefused(reason, NOT_COMPLETED, error=str(exc.error)[:100]) from None
    except JoseError as exc:
        # The ID token failed a check: signature, issuer, audience, expiry or nonce.
        raise SignInRefused(
            "id_token_invalid", NOT_COMPLETED, error=f"{exc.error}: {exc.description}"[:200]
        ) from None
    except RequestException as exc:
        log.error("oidc token exchange failed: %s", exc)
        raise SignInRefused("provider_unreachable", UNREACHABLE) from None
    claims = token.get("userinfo")
    if not claims:
        # Without an ID token nothing proves who signed in or that the nonce matched.
        raise SignInRefused("id_token_missing", NOT_COMPLETED)
    claims = dict(claims)
    if groups_from_claims(claims, prov.settings.groups_claim) is None:
        claims.update(_groups_from_userinfo(prov, token, claims))
    return claims


def _groups_from_userinfo(prov: Provider, token: dict, claims: dict) -> dict:
    """The groups claim from the userinfo endpoint, for providers that leave it out of
    the ID token; {} when it is not there either."""
    if not prov.client.server_metadata.get("userinfo_endpoint"):
        return {}
    try:
        info = prov.client.userinfo(token=token)
    except (OAuthError, RequestException, ValueError) as exc:
        log.warning("oidc userinfo failed: %s", exc)
        return {}
    # OpenID Connect Core §5.3.2: a userinfo answer about another subject is ignored.
    if info.get("sub") != claims["sub"]:
        return {}
    name = prov.settings.groups_claim
    found = groups_from_claims(info, name)
    return {} if found is None else {name: found}


def groups_from_claims(claims: dict, claim: str) -> list[str] | None:
    """The user's groups from the claim named `claim` (a dotted path reaches into an
    object when no claim has the whole name), None when the claim is absent."""
    value = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(group) for group in value]
    return None


def role_for(settings: OIDCSettings, groups: list[str] | None) -> str | None:
    """The highest role the groups give, else the default role, else None (refuse)."""
    roles = [settings.role_groups[g] for g in groups or () if g in settings.role_groups]
    if roles:
        return max(roles, key=Role.rank)
    return settings.default_role
