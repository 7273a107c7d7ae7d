"""API keys and who may do what: scopes (read < write < admin) and model ownership.

A key is `wz_<id>_<secret>`. It is shown once, when created; the database keeps `<id>` (public:
listings, revocation, logs) and the sha256 of the whole key. The secret has 256 random bits,
so a plain hash is enough (a slow password hash only guards low-entropy secrets), and every
request looks its key up afresh, which makes a revocation effective at once on every replica.

Ownership: a model name belongs to the owner of the key that first published it (an upload, or
a warm-up's version: the job records whom it publishes as). Only that owner or an admin adds
versions, moves aliases, tags, describes; only a job's owner or an admin cancels it. Models
without an owner (published with auth off, the starter catalogue) can be changed by admins only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from warmzoo.service.core.config import Settings
from warmzoo.service.core.errors import Reason, WarmzooError
from warmzoo.service.core.scopes import SCOPES, Scope
from warmzoo.service.registry.registry import not_owner
from warmzoo.service.registry.tables import ApiKeyRow, JobRow, ModelRow, utcnow

log = logging.getLogger(__name__)

KEY_RE = re.compile(r"wz_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


@dataclass(frozen=True)
class Principal:
    """Who sends a request: a key's owner and scope, anonymous (`scope` None), or everyone
    at once when auth is off (admin, owning nothing)."""

    owner: str | None
    scope: Scope | None
    key_id: str | None = None

    def allows(self, scope: Scope) -> bool:
        return self.scope is not None and SCOPES.index(self.scope) >= SCOPES.index(scope)


ANONYMOUS = Principal(owner=None, scope=None)
AUTH_OFF = Principal(owner=None, scope="admin")


def unauthorized(message: str, code: str) -> WarmzooError:
    """No usable key. The API adds the Bearer challenge, with RFC 6750's `invalid_token` for the
    codes of a key that was sent but refused (`invalid_key`, `revoked_key`)."""
    return WarmzooError(Reason.UNAUTHENTICATED, message, code=code)


def auth_enabled(settings: Settings) -> bool:
    """An app treats "auto" as on: only `warmzoo serve`, which knows its address, turns it off."""
    return settings.auth != "off"


def resolve_auth(settings: Settings, host: str) -> Settings:
    """`serve`'s reading of auth=auto: off when bound to a loopback address, else on."""
    if settings.auth != "auto":
        return settings
    if not _is_loopback(host):
        return settings.model_copy(update={"auth": "on"})
    log.warning(
        "auth is OFF: anyone who can reach %s may write to this zoo (bound to loopback, WARMZOO_AUTH=auto);"
        " set WARMZOO_AUTH=on to require API keys (`warmzoo keys create`)",
        host,
    )
    return settings.model_copy(update={"auth": "off"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


# -- keys -------------------------------------------------------------------------------------


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_owner_name(owner: str) -> str:
    if not OWNER_RE.fullmatch(owner):
        raise ValueError(f"owner {owner!r}: use 1-100 characters A-Z, a-z, 0-9, '.', '_', '@', '-'")
    return owner


def create_key(session: Session, owner: str, scope: Scope) -> tuple[ApiKeyRow, str]:
    """A new key for `owner`; returns (its row, the key itself, which is never stored)."""
    row = ApiKeyRow(id=secrets.token_hex(6), owner=check_owner_name(owner), scope=scope)
    key = f"wz_{row.id}_{secrets.token_urlsafe(32)}"
    row.secret_sha256 = _digest(key)
    session.add(row)
    session.commit()
    return row, key


def list_keys(session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.owner, ApiKeyRow.created_at)))


def revoke_key(session: Session, key_id: str) -> ApiKeyRow:
    """Refuse the key from now on; raises LookupError for an unknown id."""
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        raise LookupError(f"no API key with id {key_id!r} (`warmzoo keys ls` lists them)")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def authenticate(session: Session, authorization: str) -> Principal:
    """The principal of an `Authorization` header value; 401 unless it is a live key."""
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise unauthorized("the Authorization header must be `Bearer <API key>`", "invalid_key")
    match = KEY_RE.fullmatch(key)
    row = session.get(ApiKeyRow, match.group(1)) if match else None
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(key)):
        raise unauthorized("unknown API key; `warmzoo keys create` makes one", "invalid_key")
    if row.revoked_at is not None:
        raise unauthorized(f"API key {row.id} was revoked; ask for a new one", "revoked_key")
    return Principal(owner=row.owner, scope=row.scope, key_id=row.id)  # type: ignore[arg-type]


# -- what a principal may do ------------------------------------------------------------------


def require(principal: Principal, scope: Scope) -> Principal:
    """401 for an anonymous request, 403 for a key whose scope is too low."""
    if principal.scope is None:
        raise unauthorized(f"this needs an API key with scope {scope}: send `Authorization: Bearer <key>`", "no_key")
    if not principal.allows(scope):
        message = f"API key {principal.key_id} has scope {principal.scope}; this needs {scope}"
        raise WarmzooError(Reason.FORBIDDEN, message, code="insufficient_scope")
    return principal


def check_model_owner(principal: Principal, model: ModelRow) -> None:
    """403 unless the principal owns the model or is an admin."""
    if not (principal.allows("admin") or (model.owner is not None and model.owner == principal.owner)):
        raise not_owner(f"model {model.name!r}", model.owner)


def owns_job(principal: Principal, job: JobRow) -> bool:
    """The job's owner, or an admin (everyone, with auth off)."""
    return principal.allows("admin") or (job.owner is not None and job.owner == principal.owner)


def check_job_owner(principal: Principal, job: JobRow) -> None:
    if not owns_job(principal, job):
        raise not_owner(f"job {job.id}", job.owner)


def publisher(principal: Principal, session: Session, name: str) -> str | None:
    """Whom a new version of `name` is published as: its owner, when the model exists (403 unless
    the principal may add versions to it), else the principal (the name becomes theirs)."""
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None:
        return principal.owner
    check_model_owner(principal, model)
    return model.owner
